// One repetition of the decision-cost trial (issue 13, item 4): what deciding
// a new connection costs, by policy, at a steady rate of new connections.
// Two hosts (tools/cluster.ts); the client dials h0 only, and h0 keeps every
// connection (hash: a table of h0 alone, as when h1 is down; load: h1 is live,
// so every SYN is decided on both hosts' loads, and a threshold no load
// reaches keeps it): nothing is forwarded, and what dpr adds is the decision
// path alone. h1's processes are not counted. The client opens connections on a
// schedule (tools/loadgen.ts, open loop), so every variant sees the same
// arrivals, and the `none` variants (no rules, no daemon) give the cost of the
// connections themselves.
//
// Two views. The test bed's CPU per connection is the honest one: every
// thread of every process in its namespaces (client, web server, daemon),
// from /proc/PID/task/*/schedstat (ns). On veth the whole handshake runs in
// whichever context sends a packet, so with dpr the kernel's SYN handling,
// the SYN-ACK and even the client's answer run in the daemon's thread (its
// verdict lets the SYN on), without dpr in the client's: only the bed's
// total moves by what dpr adds, and it does not count what other work on a
// shared machine does (/proc/stat would). The daemon's own threads, net of
// its idle CPU measured just before, show where dpr's part goes.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Cluster, hostAddress } from '../tools/cluster';
import type { LoadSpec, LoadSummary } from '../tools/loadgen';
import type { Testbed } from '../test/support/netns';
import { waitForLine } from '../test/support/lines';

const LOADGEN = path.resolve(__dirname, '..', 'tools', 'loadgen.js');

export interface DecisionCostVariant {
  /** none: no rules, no daemon. */
  policy: 'none' | 'hash' | 'load';
  /** New connections a second. */
  rate: number;
}

export interface DecisionCostSize {
  seconds: number;
  idleSeconds: number;
}

export interface DecisionCostSample {
  connections: number;
  errors: number;
  /** The test bed's CPU per connection (client, web server, daemon), µs. */
  bedUsPerConnection: number;
  /** The daemon's CPU per connection, net of its idle cost, µs (0 without dpr). */
  daemonUsPerConnection: number;
  /** Its idle cost, ms of CPU a second. */
  idleMsPerSecond: number;
  /** New connections the entry queue decided over the run. */
  decided: number;
  load: LoadSummary;
}

// The daemon as installed: the schema's heartbeat and liveness defaults.
// A load threshold no run reaches: every connection is decided, and kept.
const DAEMON_CONFIG = { peers: { heartbeatMs: 100, deadAfterMs: 300 }, load: { threshold: 1_000_000 } };

/** CPU nanoseconds of every thread of `pid` so far. */
export function processCpuNs(pid: number): number {
  let total = 0;
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      total += Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // the thread ended
    }
  }
  return total;
}

/** CPU nanoseconds of every process in the bed's namespaces so far, h1's left out (it only stands by). */
function bedCpuNs(bed: Testbed): number {
  let total = 0;
  for (const host of bed.hosts.filter((h) => h !== 'h1')) {
    const pids = execFileSync('ip', ['netns', 'pids', bed.ns(host)], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
    for (const pid of pids) {
      try {
        total += processCpuNs(pid);
      } catch {
        // it ended
      }
    }
  }
  return total;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Runs the load with the client process alive before and after it, so its CPU is in both readings. */
async function measuredLoad(cluster: Cluster, spec: LoadSpec, read: () => void): Promise<LoadSummary> {
  const child = cluster.bed.spawn('client', [process.execPath, LOADGEN, JSON.stringify(spec), '--held'], { stdio: ['pipe', 'pipe', 'pipe'] });
  try {
    await waitForLine(child, (l) => l === 'ready', 10_000, 'load generator');
    read();
    const summary = waitForLine(child, (l) => l.startsWith('{'), 120_000, 'load generator');
    child.stdin!.write('go\n');
    const line = await summary;
    read();
    return JSON.parse(line) as LoadSummary;
  } finally {
    child.stdin!.end();
  }
}

export async function runDecisionCost(v: DecisionCostVariant, size: DecisionCostSize): Promise<DecisionCostSample> {
  const dpr = v.policy !== 'none';
  // hash: h1 weighs 0, so h0's table names h0 alone and every connection stays (no forwarding cost in the figure).
  const cluster = await Cluster.create({
    hosts: 2, policy: dpr ? v.policy as 'hash' | 'load' : 'hash', dpr, slots: 4096, serviceMs: 0, tag: 'dc', config: DAEMON_CONFIG,
    ...(v.policy === 'hash' ? { weights: [1, 0] } : {}),
  });
  try {
    cluster.bed.sysctl('client', 'net.ipv4.ip_local_port_range', '1024 65535');
    const pid = dpr ? cluster.daemonPid(0) : undefined;
    if (dpr && pid === undefined) throw new Error('decision-cost: no daemon');
    const cpu = (): number => (pid === undefined ? 0 : processCpuNs(pid));
    // Warm-up: the first connections build the JIT's and the kernel's caches.
    await cluster.load({ targets: [{ address: hostAddress(0) }], requests: Math.min(500, v.rate), concurrency: 16, rate: v.rate });
    await sleep(500);
    const idle0 = cpu();
    const idleT0 = performance.now();
    await sleep(size.idleSeconds * 1000);
    const idleNsPerMs = (cpu() - idle0) / (performance.now() - idleT0);
    const newFlows = (): number => (dpr ? cluster.status(0).entry!.newFlows.local + cluster.status(0).entry!.newFlows.forwarded : 0);
    const before = newFlows();
    const readings: Array<{ bed: number; daemon: number; at: number }> = [];
    const load = await measuredLoad(cluster, { targets: [{ address: hostAddress(0) }], requests: v.rate * size.seconds, concurrency: 64, rate: v.rate },
      () => readings.push({ bed: bedCpuNs(cluster.bed), daemon: cpu(), at: performance.now() }));
    const [r0, r1] = readings as [typeof readings[0], typeof readings[0]];
    const daemonNs = r1.daemon - r0.daemon - idleNsPerMs * (r1.at - r0.at);
    const decided = newFlows() - before;
    const n = Math.max(1, load.ok);
    return {
      connections: load.ok,
      errors: load.errors,
      bedUsPerConnection: (r1.bed - r0.bed) / 1000 / n,
      daemonUsPerConnection: dpr ? daemonNs / 1000 / n : 0,
      idleMsPerSecond: idleNsPerMs / 1000,
      decided,
      load,
    };
  } finally {
    await cluster.destroy();
  }
}
