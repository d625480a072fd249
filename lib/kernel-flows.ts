// What the kernel knows of forwarded flows in the kernel modes, for `dpr
// status`, /metrics and drain: the entries of each peer's ipset and the
// packets the kernel routed by them (the counters of the DPR_ENTRY rules
// that jump to DPR_TO<id>), each family the hosts have (the
// dpr6_to<id> sets and ip6tables' DPR_ENTRY for IPv6). Read with the ipset and iptables tools: asked
// for by operators and scrapes (about 5 ms), never per packet or per flow.
import { execFileSync } from 'node:child_process';
import { hasIpv4, hasIpv6, type DprConfig } from './config';
import { peerSet, SET_PREFIX, SET_PREFIX6 } from './kernel-path';

export interface KernelPeerFlows {
  id: number;
  /** Entries in the peer's set: flows routed to it in the kernel, closing ones until their timeout. */
  entries: number;
  /** Packets (and bytes) the kernel routed to it by those entries since the rules were installed. */
  packets: number;
  bytes: number;
}

export interface KernelFlows {
  entries: number;
  packets: number;
  byPeer: KernelPeerFlows[];
}

const run = (cmd: string, args: string[]): string => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** null in `rewrite` mode, or when the rules or sets are not there (not installed). */
export function readKernelFlows(c: Readonly<DprConfig>): KernelFlows | null {
  if (c.mode === 'rewrite') return null;
  try {
    const counters = new Map<number, [number, number]>();
    for (const tool of [...(hasIpv4(c) ? ['iptables'] : []), ...(hasIpv6(c) ? ['ip6tables'] : [])]) {
      for (const line of run(tool, ['-w', '-t', 'raw', '-L', 'DPR_ENTRY', '-v', '-x', '-n']).split('\n')) {
        const m = /^\s*(\d+)\s+(\d+)\s+DPR_TO(\d+)\s/.exec(line);
        if (!m) continue;
        const [p, b] = counters.get(Number(m[3])) ?? [0, 0];
        counters.set(Number(m[3]), [p + Number(m[1]), b + Number(m[2])]);
      }
    }
    // One call for every set's header: `Name: ...` then `Number of entries: ...`.
    const entriesOf = new Map<string, number>();
    let name = '';
    for (const line of run('ipset', ['-t', 'list']).split('\n')) {
      if (line.startsWith('Name: ')) name = line.slice(6).trim();
      const m = /^Number of entries: (\d+)/.exec(line);
      if (m) entriesOf.set(name, Number(m[1]));
    }
    const byPeer = (c.hosts ?? []).filter((h) => h.id !== c.self).map((h) => {
      const [packets, bytes] = counters.get(h.id) ?? [0, 0];
      const entries = (entriesOf.get(peerSet(h.id)) ?? 0) + (entriesOf.get(peerSet(h.id, SET_PREFIX6)) ?? 0);
      return { id: h.id, entries, packets, bytes };
    });
    return { entries: byPeer.reduce((a, p) => a + p.entries, 0), packets: byPeer.reduce((a, p) => a + p.packets, 0), byPeer };
  } catch {
    return null;
  }
}

/**
 * Drain: forwarded flows still open in the kernel, taken as the entries whose
 * timeout is above the closing one (a FIN or RST shortens an entry to at most
 * that; traffic lengthens it to the established one). An entry idle for
 * longer than established - closing timeout counts as closed too.
 */
export function openKernelFlows(c: Readonly<DprConfig>, peers: readonly number[]): number {
  const closingS = Math.ceil(c.flows.closingTimeoutMs / 1000);
  const synS = Math.ceil(c.flows.synTimeoutMs / 1000);
  let open = 0;
  for (const set of peers.flatMap((id) => [peerSet(id, SET_PREFIX), peerSet(id, SET_PREFIX6)])) {
    let text: string;
    try {
      text = run('ipset', ['list', set]);
    } catch {
      continue;
    }
    for (const m of text.matchAll(/ timeout (\d+)$/gm)) {
      const left = Number(m[1]);
      if (left > Math.max(closingS, synS)) open++;
    }
  }
  return open;
}
