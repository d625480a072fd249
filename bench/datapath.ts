// One repetition of the data-path trial: how many packets per second one
// NFQUEUE consumer (dpr's addon or the plain C consumer) gives verdicts to,
// on the same rules and the same packets.
//
// Topology (198.18.0.0/15 only, in namespaces made and removed here):
//   snd 198.18.0.10 --- bridge --- host 198.18.0.1
// Rewritten packets go to 198.18.0.2, which the host routes to a blackhole:
// the cheapest drop after the kernel has taken the verdict and routed.
//
// Why backlogs and not a steady flood: the veth delivers in the sender's
// softirq, so the sender's core also pays the kernel's enqueue work, and on
// this 2-core machine it then offers ~280k SYN/s, less than dpr consumes (a
// first version measured exactly the sender). So, per cycle, the consumer is
// stopped (SIGSTOP), the sender fills the queue, and on SIGCONT the consumer
// drains it alone on its core while the harness watches queue_total fall in
// /proc/PID/net/netfilter/nfnetlink_queue. The queue is never empty until the
// end of a cycle: the overload the consumer must survive. The first cycle
// meets every flow for the first time (flow inserts), later ones find them.
//
// The machine is shared (other work may take the consumer's core), so each
// drain is also divided by the CPU time the consumer's threads got
// (/proc/PID/task/*/schedstat): packets per CPU-second is what a dedicated
// core would do, and it is the number the trial compares. The kernel's
// verdict work (reinject, rules, routing) runs in the consumer's sendmsg, so
// it is in that CPU time too.
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { Testbed } from '../test/support/netns';
import { DATAPATH } from './datapath-config';

export type Consumer = 'dpr' | 'c' | 'none';
export type Mode = 'rewrite' | 'accept';

export interface DatapathVariant {
  name: string;
  description: string;
  consumer: Consumer;
  mode: Mode;
  /** IP version of the SYNs and the rules (absent: 4). */
  family?: 4 | 6;
}

export interface DatapathSize {
  /** Fill-and-drain cycles per repetition (no queue: the sender sends as many backlogs at once). */
  cycles: number;
}

export interface Cycle {
  backlog: number;
  /** Verdicts per second of wall-clock time over the middle of the drain, and that span. */
  pps: number;
  packets: number;
  seconds: number;
  /** The whole backlog over the CPU time the consumer used to drain it. */
  cpuPps: number;
  cpuSeconds: number;
  /** Time the consumer was runnable but waited for its core: how much the machine's other work got in the way. */
  waitSeconds: number;
  senderPps: number;
}

export interface DatapathSample {
  /** Verdicts per consumer CPU-second over all cycles (no queue: packets per CPU-second of the sender, which also runs the receive path). */
  cpuPps: number;
  /** Verdicts per wall-clock second over the middles of the drains (no queue: packets dropped per second). */
  pps: number;
  /** Packets the CPU rate was taken over. */
  packets: number;
  cpuSeconds: number;
  waitSeconds: number;
  cycles: Cycle[];
  /** Packets that did not wait in the queue: fail-open overflow to the local stack, kernel drops. */
  bypassed: { failOpen: number; queueDropped: number; userDropped: number };
  /** The consumer's own report: its counts, and for dpr the stats() snapshot. */
  consumer: unknown;
}

interface SenderReport {
  sent: number;
  seconds: number;
  pps: number;
  errors: number;
  cpuSeconds: number;
}

const ROOT = path.resolve(__dirname, '..', '..');
export const BIN = {
  plainConsumer: path.join(ROOT, 'build', 'bench', 'plain_consumer'),
  synFlood: path.join(ROOT, 'build', 'bench', 'syn_flood'),
  dprConsumer: path.join(ROOT, 'dist', 'bench', 'datapath-dpr.js'),
};

const SENDER = '198.18.0.10';
const SENDER6 = '2001:2::10';
const QUEUE_NUM = 0;
// The consumer gets a core to itself; the harness and the sender share the other.
const SENDER_CPU = '0';
const CONSUMER_CPU = '1';
// The kernel here holds at most 65536 packets per queue whatever maxlen says
// (measured); that is the backlog. Its messages take ~832 B of skb truesize
// each in the receive buffer (54.5 MB), so the buffer is made big enough.
export const BACKLOG = 65_536;
const MAX_LEN = BACKLOG;
const RCVBUF = 1 << 26;
// The rate is taken between these fractions of the drain, away from the
// consumer waking up and from the last, partial batch.
const WINDOW = { from: 0.9, to: 0.1 } as const;
const SAMPLE_MS = 1;
const DRAIN_TIMEOUT_MS = 30_000;
const mark = `0x${DATAPATH.forwardMark.toString(16)}`;

/**
 * The entry chain of DESIGN.md §4, reduced to what the bench needs. No
 * --queue-bypass: with a consumer bound nothing may skip the queue except
 * what the consumer's own fail-open flag lets past when the queue is full.
 * The INPUT drop stops the local path (and fail-open overflow) cheaply,
 * before a TCP reset would load the sender's core.
 */
function rules(consumer: Consumer, family: 4 | 6): string {
  const service = `-p tcp -d ${family === 6 ? DATAPATH.self6 : DATAPATH.self} --dport ${DATAPATH.servicePort}`;
  const target = consumer === 'none' ? '-j DROP' : `-j NFQUEUE --queue-num ${QUEUE_NUM}`;
  return [
    '*raw',
    `-A PREROUTING -m mark --mark ${mark}/${mark} -j CT --notrack`,
    `-A PREROUTING -m mark --mark ${mark}/${mark} -j ACCEPT`,
    `-A PREROUTING ${service} ${target}`,
    'COMMIT',
    '*filter',
    `-A INPUT ${service} -j DROP`,
    'COMMIT',
    '',
  ].join('\n');
}

function buildBed(consumer: Consumer, family: 4 | 6): Testbed {
  const bed = Testbed.create(
    [
      { name: 'snd', addrs: [`${SENDER}/24`] },
      { name: 'host', addrs: [`${DATAPATH.self}/24`] },
    ],
    'b',
  );
  // Forwarding on: a blackhole route then drops silently (no ICMP back).
  bed.sysctl('host', 'net.ipv4.ip_forward', 1);
  bed.sysctl('host', 'net.ipv4.conf.all.rp_filter', 0);
  bed.sysctl('host', 'net.ipv4.conf.eth0.rp_filter', 0);
  bed.exec('host', ['ip', 'route', 'add', 'blackhole', `${DATAPATH.peer}/32`]);
  if (family === 6) {
    // The same shape in IPv6 (nodad: usable at once).
    bed.exec('snd', ['ip', 'addr', 'add', `${SENDER6}/64`, 'dev', 'eth0', 'nodad']);
    bed.exec('host', ['ip', 'addr', 'add', `${DATAPATH.self6}/64`, 'dev', 'eth0', 'nodad']);
    bed.sysctl('host', 'net.ipv6.conf.all.forwarding', 1);
    bed.exec('host', ['ip', '-6', 'route', 'add', 'blackhole', `${DATAPATH.peer6}/128`]);
    bed.exec('host', ['ip6tables-restore', '--noflush'], rules(consumer, 6));
    bed.exec('snd', ['ping', '-6', '-c', '1', '-W', '2', DATAPATH.self6]);
    return bed;
  }
  bed.exec('host', ['iptables-restore', '--noflush'], rules(consumer, 4));
  // Resolve the neighbour first: SYNs queued behind ARP would be dropped.
  bed.exec('snd', ['ping', '-c', '1', '-W', '2', DATAPATH.self]);
  return bed;
}

function consumerArgv(v: DatapathVariant): string[] {
  const pin = ['taskset', '-c', CONSUMER_CPU];
  const queue = ['--queue', `${QUEUE_NUM}`, '--maxlen', `${MAX_LEN}`, '--rcvbuf', `${RCVBUF}`];
  if (v.consumer === 'c') {
    return [...pin, BIN.plainConsumer, ...queue, '--mode', v.mode, '--to', DATAPATH.peer,
      '--port', `${DATAPATH.peerPortBase}`, '--mark', mark];
  }
  return [...pin, process.execPath, BIN.dprConsumer, ...queue, '--path', v.mode === 'rewrite' ? 'rewrite' : 'local',
    '--family', String(v.family ?? 4)];
}

interface Running {
  child: ChildProcess;
  pid: number;
  lines: string[];
  stderr: () => string;
}

/** Starts the consumer and resolves once it printed "ready" (the queue is bound). */
async function startConsumer(bed: Testbed, v: DatapathVariant): Promise<Running> {
  // `ip netns exec` and `taskset` exec in place: the pid is the consumer's.
  const child = bed.spawn('host', consumerArgv(v));
  const lines: string[] = [];
  let err = '';
  let buffered = '';
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (d: Buffer) => {
      const parts = (buffered + d.toString()).split('\n');
      buffered = parts.pop() ?? '';
      lines.push(...parts);
      if (parts.includes('ready')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`consumer exited (${code}) before ready: ${err.trim()}`)));
    setTimeout(() => reject(new Error(`consumer not ready after 10 s: ${err.trim()}`)), 10_000).unref();
  });
  return { child, pid: child.pid!, lines, stderr: () => err };
}

async function stopConsumer(c: Running): Promise<Record<string, unknown>> {
  const exited = once(c.child, 'exit');
  c.child.kill('SIGCONT');  // a stopped process would keep SIGTERM pending
  c.child.kill('SIGTERM');
  const [code] = (await exited) as [number | null];
  const last = c.lines.filter((l) => l.startsWith('{')).pop();
  if (code !== 0 || last === undefined) throw new Error(`consumer exited ${code} without a report: ${c.stderr().trim()}`);
  return JSON.parse(last) as Record<string, unknown>;
}

/** Sends `count` SYNs over BACKLOG distinct 4-tuples, always starting from the same first one. */
async function flood(bed: Testbed, count: number, family: 4 | 6): Promise<SenderReport> {
  const [dst, src] = family === 6 ? [DATAPATH.self6, '2001:2::1:0'] : [DATAPATH.self, '198.18.0.16'];
  const argv = ['taskset', '-c', SENDER_CPU, BIN.synFlood, '--dst', dst, '--dport', `${DATAPATH.servicePort}`,
    '--src', src, '--flows', `${BACKLOG}`, '--count', `${count}`, '--seconds', '20'];
  const child = bed.spawn('snd', argv);
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`syn_flood exited ${code}: ${err.trim()}`);
  return JSON.parse(out.trim()) as SenderReport;
}

interface QueueProc {
  total: number;
  dropped: number;
  userDropped: number;
}

/** Queue 0 as the kernel sees it, read through the consumer's own network namespace. */
function queueProc(pid: number): QueueProc {
  const line = readFileSync(`/proc/${pid}/net/netfilter/nfnetlink_queue`, 'utf8').trim().split('\n')[0] ?? '';
  const f = line.trim().split(/\s+/).map(Number);
  return { total: f[2] ?? 0, dropped: f[5] ?? 0, userDropped: f[6] ?? 0 };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Time on CPU and time waiting for one, summed over the process's threads, in ns. */
function schedNs(pid: number): { run: number; wait: number } {
  let run = 0;
  let wait = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const [r, w] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ').map(Number);
      run += r ?? 0;
      wait += w ?? 0;
    } catch {
      // the thread ended between readdir and read: it ran no more
    }
  }
  return { run, wait };
}

/** queue_total once the last SYN has been enqueued (the sender returns before its softirq work ends). */
async function settledBacklog(pid: number): Promise<number> {
  let last = -1;
  for (let i = 0; i < 100; i++) {
    const now = queueProc(pid).total;
    if (now === last) return now;
    last = now;
    await sleep(20);
  }
  return last;
}

interface Point {
  ns: bigint;
  total: number;
}

/** Resumes the consumer and records queue_total until the queue is empty. */
async function drainCurve(c: Running): Promise<Point[]> {
  const points: Point[] = [{ ns: process.hrtime.bigint(), total: queueProc(c.pid).total }];
  c.child.kill('SIGCONT');
  const deadline = Date.now() + DRAIN_TIMEOUT_MS;
  while (points[points.length - 1]!.total > 0) {
    if (Date.now() > deadline) throw new Error(`queue not drained after ${DRAIN_TIMEOUT_MS} ms`);
    await sleep(SAMPLE_MS);
    points.push({ ns: process.hrtime.bigint(), total: queueProc(c.pid).total });
  }
  return points;
}

/** Verdicts per second between the WINDOW fractions of the backlog. */
function drainRate(points: Point[]): { pps: number; packets: number; seconds: number } {
  const start = points[0]!.total;
  const a = points.find((p) => p.total <= start * WINDOW.from);
  const b = [...points].reverse().find((p) => p.total >= start * WINDOW.to);
  if (a === undefined || b === undefined || b.ns <= a.ns) return { pps: 0, packets: 0, seconds: 0 };
  const seconds = Number(b.ns - a.ns) / 1e9;
  return { pps: (a.total - b.total) / seconds, packets: a.total - b.total, seconds };
}

/** Packets counted by the first rule of `chain` that ends in `target`. */
function ruleCount(bed: Testbed, table: string, chain: string, target: string, family: 4 | 6): number {
  const out = bed.exec('host', [family === 6 ? 'ip6tables' : 'iptables', '-t', table, '-L', chain, '-v', '-x', '-n']);
  const row = out.split('\n').map((l) => l.trim().split(/\s+/)).find((f) => f[2] === target);
  return row ? Number(row[0]) : 0;
}

/** Stop, fill, resume, drain: one backlog's worth of verdicts, timed. */
async function cycle(bed: Testbed, consumer: Running, family: 4 | 6): Promise<Cycle> {
  consumer.child.kill('SIGSTOP');
  const sender = await flood(bed, BACKLOG, family);
  const backlog = await settledBacklog(consumer.pid);
  const before = schedNs(consumer.pid);
  const rate = drainRate(await drainCurve(consumer));
  const after = schedNs(consumer.pid);
  const cpuSeconds = (after.run - before.run) / 1e9;
  return {
    backlog,
    ...rate,
    cpuPps: cpuSeconds > 0 ? backlog / cpuSeconds : 0,
    cpuSeconds,
    waitSeconds: (after.wait - before.wait) / 1e9,
    senderPps: sender.pps,
  };
}

const sum = (cycles: Cycle[], f: (c: Cycle) => number) => cycles.reduce((n, c) => n + f(c), 0);

async function measureQueued(bed: Testbed, v: DatapathVariant, size: DatapathSize): Promise<DatapathSample> {
  const consumer = await startConsumer(bed, v);
  const cycles: Cycle[] = [];
  let proc: QueueProc;
  let report: Record<string, unknown>;
  try {
    for (let i = 0; i < size.cycles; i++) cycles.push(await cycle(bed, consumer, v.family ?? 4));
    proc = queueProc(consumer.pid);
  } finally {
    report = await stopConsumer(consumer);
  }
  // Locally accepted packets reach INPUT too; only the rest is overflow.
  const atInput = ruleCount(bed, 'filter', 'INPUT', 'DROP', v.family ?? 4);
  const accepted = v.mode === 'accept' ? Number(report['packets']) : 0;
  const cpuSeconds = sum(cycles, (c) => c.cpuSeconds);
  const wallSeconds = sum(cycles, (c) => c.seconds);
  return {
    cpuPps: cpuSeconds > 0 ? sum(cycles, (c) => c.backlog) / cpuSeconds : 0,
    pps: wallSeconds > 0 ? sum(cycles, (c) => c.packets) / wallSeconds : 0,
    packets: sum(cycles, (c) => c.backlog),
    cpuSeconds,
    waitSeconds: sum(cycles, (c) => c.waitSeconds),
    cycles,
    bypassed: { failOpen: Math.max(0, atInput - accepted), queueDropped: proc.dropped, userDropped: proc.userDropped },
    consumer: report,
  };
}

async function measureKernelOnly(bed: Testbed, size: DatapathSize, family: 4 | 6): Promise<DatapathSample> {
  const sender = await flood(bed, BACKLOG * size.cycles, family);
  const dropped = ruleCount(bed, 'raw', 'PREROUTING', 'DROP', family);
  const pps = dropped / sender.seconds;
  const cpuPps = dropped / sender.cpuSeconds;
  return {
    cpuPps,
    pps,
    packets: dropped,
    cpuSeconds: sender.cpuSeconds,
    waitSeconds: 0,
    cycles: [{ backlog: 0, pps, packets: dropped, seconds: sender.seconds, cpuPps, cpuSeconds: sender.cpuSeconds,
      waitSeconds: 0, senderPps: sender.pps }],
    bypassed: { failOpen: 0, queueDropped: 0, userDropped: 0 },
    consumer: null,
  };
}

/** Builds the bed, measures one variant once, removes the bed even on failure. */
export async function runDatapath(v: DatapathVariant, size: DatapathSize): Promise<DatapathSample> {
  const bed = buildBed(v.consumer, v.family ?? 4);
  try {
    return v.consumer === 'none' ? await measureKernelOnly(bed, size, v.family ?? 4) : await measureQueued(bed, v, size);
  } finally {
    await bed.destroy();
  }
}
