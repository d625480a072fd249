// The cluster every packet fixture is written against and the names of the
// engine set-ups a fixture can pick. Plain data, no addon: the fixture
// generator uses it without loading native code. Host ids 0..2 exist; id 3 is
// a hole (address 0), so a peer port naming it must be refused. The cluster is
// dual-stack: every engine but 'entry-ipv4-only' has IPv6 addresses too.

export const SERVICE = ['198.18.0.10', '198.18.0.11', '198.18.0.12', null] as const;
export const CLUSTER = ['198.19.0.10', '198.19.0.11', '198.19.0.12', null] as const;
export const SERVICE_PORTS = [80, 443] as const;
export const PEER_PORT_BASE = 20000;
export const FORWARD_MARK = 0x100;
export const SERVE_MARK = 0x200;
export const CLIENT = '198.18.100.7';
// The same hosts' IPv6 addresses (RFC 5180's benchmarking prefix); id 3 is a hole here too.
export const SERVICE6 = ['2001:2::10', '2001:2::11', '2001:2::12', null] as const;
export const CLUSTER6 = ['2001:2:0:1::10', '2001:2:0:1::11', '2001:2:0:1::12', null] as const;
export const CLIENT6 = '2001:2:0:100::7';
export const OUTSIDER = '198.18.200.9';

/** P(origin, k) of DESIGN.md section 3. */
export function peerPort(origin: number, k: number): number {
  return PEER_PORT_BASE + origin * SERVICE_PORTS.length + k;
}

export function addr(list: readonly (string | null)[], id: number): string {
  const a = list[id];
  if (a === undefined || a === null) throw new Error(`no host ${id}`);
  return a;
}

export type EngineName =
  | 'entry-hash-to-peer' // host 0, hash table naming host 1 for every client
  | 'entry-hash-local'   // host 0, hash table naming host 0 (itself)
  | 'entry-load-busy'    // host 0, load policy, table naming host 1: busy (50), host 1 idle, so new flows go to 1
  | 'entry-load-idle'    // the same, this host idle too: new flows stay
  | 'entry-draining'     // as entry-hash-to-peer, but draining: new flows stay local
  | 'serve'              // host 1 as serving host
  | 'serve-macs'         // host 1, peers on one segment: host 0's MAC is PEER_MACS[0], host 2's unknown
  | 'entry-ipv4-only';   // as entry-hash-to-peer, on a cluster without IPv6 addresses

export const ENGINE_NAMES: readonly EngineName[] = [
  'entry-hash-to-peer', 'entry-hash-local', 'entry-load-busy', 'entry-load-idle', 'entry-draining', 'serve', 'serve-macs',
  'entry-ipv4-only',
];

/** The neighbour table of 'serve-macs': host 0's MAC; host 2 not resolved yet. */
export const PEER_MACS = ['02:00:5e:10:00:10', null, null] as const;
export const OTHER_MAC = '02:00:5e:10:00:99';
