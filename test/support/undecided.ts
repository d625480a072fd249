// Why an entry host decided fewer new connections than a load tool opened:
// a SYN that met a flow already in the table (a reused client port:
// syn_on_flow, or none when that flow is still in SYN_SEEN), one past
// queues.synLimit (DPR_ENTRY's ACCEPT after the hashlimit rule), one the
// kernel let by because the queue or its socket was full (the entry queue
// fails open: enobufs, the kernel's own nfnetlink_queue counters). Printed in
// the failure message of the tests that count decisions, since the failure
// has been seen only on a starved machine.
import type { DaemonStatus } from '../../lib/daemon';
import { hostName, type Cluster } from '../../tools/cluster';

/** `key +delta` of every number in `now` that differs from `was` ('none' if none did). */
export function moved(was: object, now: object): string {
  const w = was as Record<string, unknown>;
  return Object.entries(now as Record<string, unknown>)
    .filter(([k, v]) => typeof v === 'number' && v !== w[k])
    .map(([k, v]) => `${k} +${(v as number) - ((w[k] as number | undefined) ?? 0)}`)
    .join(', ') || 'none';
}

export function whyUndecided(cluster: Cluster, host: number, was: DaemonStatus, now: DaemonStatus, iptables = 'iptables'): string {
  const ns = hostName(host);
  const entry = cluster.bed.exec(ns, [iptables, '-t', 'raw', '-L', 'DPR_ENTRY', '-v', '-x', '-n']);
  const nfq = cluster.bed.exec(ns, ['cat', '/proc/net/netfilter/nfnetlink_queue']);
  return `notes ${moved(was.entry!.notes, now.entry!.notes)}; queue ${moved(was.entry!.queue, now.entry!.queue)}; ` +
    `DPR_ENTRY:\n${entry}\nnfnetlink_queue (number, portid, waiting, mode, range, queue dropped, user dropped, last id, 1):\n${nfq}`;
}
