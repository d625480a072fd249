// Per-packet anomalies become log lines at a bounded rate: every interval, the
// growth of the native counters that should stay still (malformed packets,
// packets that fit no flow, netlink errors, failed socket lookups) is logged as one
// warning per queue, never a line per packet.
import type { Logger } from './log';
import type { QueueStats } from './native';

type Counts = Record<string, number>;

/** The counters worth a warning when they grow, flattened to one record. */
export function anomalyCounts(q: QueueStats): Counts {
  const out: Counts = {};
  for (const [k, v] of Object.entries(q.malformed)) out[`malformed.${k}`] = v;
  for (const k of ['no_flow', 'table_full', 'bad_origin'] as const) out[`note.${k}`] = q.notes[k];
  for (const k of ['recvErrors', 'enobufs', 'sendErrors', 'verdictErrors', 'sockDiagErrors'] as const) out[`queue.${k}`] = q.queue[k];
  return out;
}

export class AnomalyLog {
  private last = new Map<string, Counts>();
  constructor(private readonly log: Logger) {}

  /** Logs what grew since the previous call, if anything. */
  check(queue: string, stats: QueueStats | null): void {
    if (!stats) return;
    const now = anomalyCounts(stats);
    const before = this.last.get(queue);
    this.last.set(queue, now);
    if (!before) return;
    const grown: Counts = {};
    for (const [k, v] of Object.entries(now)) if (v > (before[k] ?? 0)) grown[k] = v - (before[k] ?? 0);
    if (Object.keys(grown).length) this.log.warn('packet anomalies since the last report', { queue, ...grown });
  }
}
