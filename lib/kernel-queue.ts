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

/**
 * Packets that entered the queue's hook but never reached its consumer:
 * `hits` (how many the NFQUEUE rules sent, e.g. their iptables counters) less
 * what the consumer received, what the kernel dropped and what still waits.
 * While a consumer is bound with fail-open and a queue rule has
 * --queue-bypass, what is left is what the kernel let through because the
 * queue (or the socket) was full. Never negative.
 */
export function unqueued(hits: number, received: number, q: KernelQueue): number {
  return Math.max(0, hits - received - q.queueDropped - q.userDropped - q.queueTotal);
}

/**
 * Ids the kernel handed out that the consumer never saw: packets built into a
 * message the socket could not take (fail-open lets them through). This
 * misses packets that met a full queue (they take no id); see unqueued().
 */
export function undelivered(received: number, q: KernelQueue): number {
  return Math.max(0, q.idSequence - received - q.queueDropped - q.userDropped - q.queueTotal);
}
