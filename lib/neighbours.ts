// The peers' MAC addresses, for a serving host on one L2 segment with its
// peers (peers.routersBetween 0): it accepts a forwarded packet only from the
// MAC of the entry host that the packet's peer port names. They come from
// the kernel's neighbour table of the family heartbeats go over
// (peers.family), where a peer just heard is sure to be: IPv4's
// /proc/net/arp of this network namespace (a file read, no process to
// start), or IPv6's through rtnetlink (one dump, native), keyed by the
// peers' cluster6 addresses. Read when a peer comes up and on the daemon's
// report tick at most once a second (no timer of their own: an idle daemon
// wakes as little as it can), and go to the engines only when they change.
import { readFileSync } from 'node:fs';
import type { HostEntry } from './config-schema';
import { listNeighbours6 } from './native';

export const ARP_FILE = '/proc/net/arp';
/** ATF_COM: the entry holds a resolved address (REACHABLE, STALE, DELAY, PROBE, PERMANENT). */
const ATF_COM = 0x2;

/** Resolved IPv4 neighbours: address -> MAC (lower case, colon separated). */
export function parseArp(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n').slice(1)) {
    const [ip, , flags, mac] = line.trim().split(/\s+/);
    if (!ip || !mac || !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(mac)) continue;
    if ((Number(flags) & ATF_COM) === 0 || mac === '00:00:00:00:00:00') continue;
    out.set(ip, mac.toLowerCase());
  }
  return out;
}

/** A neighbour table: read() gives address -> MAC (null: unreadable), address() the host's address in it. */
export interface NeighbourSource {
  read(): ReadonlyMap<string, string> | null;
  address(h: HostEntry): string;
}

/** IPv4's table, by the hosts' cluster addresses. */
export const arpNeighbours = (file = ARP_FILE): NeighbourSource => ({
  read: () => {
    try {
      return parseArp(readFileSync(file, 'utf8'));
    } catch {
      return null;
    }
  },
  address: (h) => h.cluster ?? '',
});

/** IPv6's table, by the hosts' cluster6 addresses (canonical, as the config holds them). */
export const ndNeighbours = (list = listNeighbours6): NeighbourSource => ({
  read: () => {
    try {
      return new Map(list().map((n) => [n.address, n.mac]));
    } catch {
      return null;
    }
  },
  address: (h) => h.cluster6 ?? '',
});

/** 6 bytes per host id (0..max id): the MAC of each peer's cluster address (or `address`), zeros where unknown (and for this host). */
export function peerMacTable(hosts: readonly HostEntry[], self: number, neighbours: ReadonlyMap<string, string>, address = (h: HostEntry) => h.cluster ?? ''): Uint8Array {
  const table = new Uint8Array((Math.max(...hosts.map((h) => h.id)) + 1) * 6);
  for (const h of hosts) {
    const mac = h.id === self ? undefined : neighbours.get(address(h));
    if (mac) table.set(mac.split(':').map((b) => parseInt(b, 16)), h.id * 6);
  }
  return table;
}

export class PeerMacs {
  private last = '';
  private readAt = -Infinity;

  constructor(
    private hosts: readonly HostEntry[],
    private readonly self: number,
    private readonly push: (macs: Uint8Array) => void,
    private readonly source = arpNeighbours(),
  ) {}

  /** A reload changed the hosts (those retired included: their packets still arrive). */
  setHosts(hosts: readonly HostEntry[]): void {
    this.hosts = hosts;
    this.refresh();
  }

  /** Reads the table unless it was read less than `minAgeMs` ago; pushes the MACs if any changed. */
  refresh(minAgeMs = 0): void {
    const now = performance.now();
    if (now - this.readAt < minAgeMs) return;
    this.readAt = now;
    const neighbours = this.source.read();
    // Unreadable (no /proc): nothing known, peers' packets stay dropped (counted peer_mac_unknown).
    if (!neighbours) return;
    const table = peerMacTable(this.hosts, this.self, neighbours, this.source.address);
    const key = Buffer.from(table).toString('hex');
    if (key === this.last) return;
    this.last = key;
    this.push(table);
  }
}
