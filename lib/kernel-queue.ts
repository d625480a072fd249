// The kernel's own view of this namespace's NFQUEUE queues, from
// /proc/net/netfilter/nfnetlink_queue. It shows what the daemon cannot see
// from user space: packets the kernel dropped before they reached us, and
// (with the daemon's own packet count) packets it let through unrouted while
// the queue was full (fail-open), which it does not count anywhere itself.
import { readFileSync } from 'node:fs';

export const KERNEL_QUEUE_FILE = '/proc/net/netfilter/nfnetlink_queue';

/** One line of the file (net/netfilter/nfnetlink_queue.c, seq_show). */
export interface KernelQueue {
  queueNum: number;
  /** Netlink port id of the bound socket (0: nobody bound). */
  peerPortId: number;
  /** Packets waiting for a verdict now. */
  queueTotal: number;
  copyMode: number;
  copyRange: number;
  /** Dropped because the queue was full and fail-open was off. */
  queueDropped: number;
  /** Dropped because the netlink socket's buffer was full and fail-open was off. */
  userDropped: number;
  /**
   * The last packet id handed out. Ids go to every packet the kernel builds a
   * message for, also the ones it then cannot deliver to a full socket (and,
   * with fail-open, lets through); on a full queue no id is taken.
   */
  idSequence: number;
}

/** Parses the file's text; lines that do not have the known shape are skipped. */
export function parseKernelQueues(text: string): KernelQueue[] {
  const out: KernelQueue[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/).map(Number);
    if (f.length < 8 || f.slice(0, 8).some((n) => !Number.isInteger(n) || n < 0)) continue;
    out.push({
      queueNum: f[0]!, peerPortId: f[1]!, queueTotal: f[2]!, copyMode: f[3]!, copyRange: f[4]!,
      queueDropped: f[5]!, userDropped: f[6]!, idSequence: f[7]!,
    });
  }
  return out;
}

/** This namespace's queues (the file is per network namespace); [] when the module is not loaded. */
export function readKernelQueues(file = KERNEL_QUEUE_FILE): KernelQueue[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return parseKernelQueues(text);
}

/** What is known of one queue at one moment, for failedOpen(). */
export interface QueueSample {
  /** Packets the queue's NFQUEUE rules sent so far (nfqueueHits()). */
  hits: number;
  /** Packets the consumer received so far (dpr: queue.batchPackets + queue.startupAccepted). */
  received: number;
  kernel: KernelQueue;
}

/**
 * Packets the kernel let through unqueued between two samples: what the rules
 * sent less what the consumer received, what the kernel dropped and what
 * still waits. While a consumer stays bound with fail-open (and SYNs have
 * --queue-bypass), that is what overflowed: packets the kernel passed on
 * because the queue (or the socket) was full. The kernel counts these
 * nowhere; on a full queue it does not even take a packet id. Never negative;
 * exact when nothing waits at either sample, else a lower bound (queue_total
 * also counts packets the consumer has read and not yet given a verdict).
 */
export function failedOpen(before: QueueSample, after: QueueSample): number {
  const accounted = (s: QueueSample): number => s.received + s.kernel.queueDropped + s.kernel.userDropped + s.kernel.queueTotal;
  return Math.max(0, after.hits - before.hits - (accounted(after) - accounted(before)));
}

/**
 * Ids the kernel handed out that the consumer never saw and the kernel did
 * not count as dropped: packets built into a message the socket could not
 * take, which fail-open let through. Misses packets that met a full queue
 * (they take no id; see failedOpen()). A lower bound while packets wait.
 */
export function undelivered(received: number, q: KernelQueue): number {
  return Math.max(0, q.idSequence - received - q.userDropped - q.queueTotal);
}

/** One rule of `iptables-save -c` with its counters. */
export interface RuleCounter {
  table: string;
  chain: string;
  /** The rule as iptables-save prints it, after `-A CHAIN `. */
  rule: string;
  packets: number;
  bytes: number;
}

/** Parses `iptables-save -c` (every table it prints). */
export function parseRuleCounters(text: string): RuleCounter[] {
  const out: RuleCounter[] = [];
  let table = '';
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) table = line.slice(1).trim();
    const m = /^\[(\d+):(\d+)\] -A (\S+) ?(.*)$/.exec(line);
    if (m) out.push({ table, chain: m[3]!, rule: m[4]!, packets: Number(m[1]), bytes: Number(m[2]) });
  }
  return out;
}

/**
 * Packets the NFQUEUE rules of the given chains sent, by queue number: what
 * the kernel tried to queue, whether or not the queue took it.
 */
export function nfqueueHits(rules: readonly RuleCounter[], chains: readonly string[]): Map<number, number> {
  const hits = new Map<number, number>();
  for (const r of rules) {
    if (!chains.includes(r.chain) || !/-j NFQUEUE\b/.test(r.rule)) continue;
    const num = Number(/--queue-num (\d+)/.exec(r.rule)?.[1] ?? 0);
    hits.set(num, (hits.get(num) ?? 0) + r.packets);
  }
  return hits;
}
