// One repetition of the scale-out trial (issue 13, item 5), the paper's
// central argument: N hosts, each a real web server (Debian's nginx) whose
// CPU, together with its dpr daemon's, is capped by a cgroup of its own, so a
// host's capacity is its CPU share and routing work competes with serving.
// In front of them: nothing (each wrk process dials one host: round-robin
// DNS, the partition every ratio is taken to), dpr on every host (hash or
// load policy), or HAProxy in a namespace of its own, capped like a host (a
// central balancer on a host-sized machine) or uncapped (one with the whole
// machine). Arrivals are balanced over the hosts' addresses, so what grows
// or flattens with N is capacity and routing cost, not skew (the cluster
// trial covers skew).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Cluster, hostAddress, hostName } from '../tools/cluster';
import { CpuCap, type CapSpec } from './cgroup';
import { startHaproxy } from './cluster-mix';
import { machineBusySeconds, machineTicks } from './machine-cpu';
import { startNginx, writeFiles } from './nginx';
import { cpuSeconds, cpuTicks } from './ns-cpu';
import { runWrkAll, summarizeWrk, WRK_SCRIPTS, type WrkJob, type WrkSummary } from './wrk';

export type ScaleRouter = 'none' | 'dpr-hash' | 'dpr-load' | 'dpr-direct-hash' | 'dpr-direct-load' | 'haproxy-capped' | 'haproxy';

export interface ScaleOutVariant {
  router: ScaleRouter;
  hosts: number;
  /** No CPU caps: the hosts take what the machine has (the cpu trial: machine CPU per request at full load). */
  uncapped?: boolean;
}

export interface ScaleOutSize {
  seconds: number;
  warmupSeconds: number;
}

export const SCALE_OUT = {
  hostCounts: [2, 4, 8],
  /** 10% of one core per host (see the trial's set-up for why). */
  cap: { quotaUs: 2000, periodUs: 20_000 } satisfies CapSpec,
  /** wrk connections per host (closed loop): enough to keep a capped host busy. */
  connectionsPerHost: 12,
  front: '198.18.0.100',
  loadThreshold: 2,
} as const;

export interface ScaleOutSample extends WrkSummary {
  hosts: number;
  /** Busy CPU of the whole machine (/proc/stat) over the measured run, per request. */
  machineCpuMsPerRequest: number;
  /** CPU used inside the caps (hosts, and HAProxy when capped), per request. */
  cappedCpuMsPerRequest: number;
  /** CPU per process kind over the run (dpr, web, wrk, haproxy), from ns-cpu.ts. */
  cpuSeconds: Record<string, number>;
  /** Share of CFS periods in which the hosts' caps ran out (1: the caps bound all the time). */
  hostThrottledShare: number;
  /** The same for a capped HAProxy. */
  balancerThrottledShare: number;
  /** Share of responses the busiest host served (1/N is even). */
  busiestShare: number;
  /** The machine's busy cores over the measured run, all processes. */
  machineCores: number;
  /** Cores the hosts' and HAProxy's processes used (not wrk: it starts and ends inside the run), kernel work in their context included. */
  bedCores: number;
  /** What a host's cap spent with no load at all (its daemon's timers, heartbeats, snapshots), in cores. */
  idleHostCores: number;
}

/** How long a host's idle cost is measured, before any load. */
const IDLE_MS = 2000;

function jobs(v: ScaleOutVariant, seconds: number): WrkJob[] {
  const central = v.router.startsWith('haproxy');
  return Array.from({ length: v.hosts }, (_, i) => ({
    address: central ? SCALE_OUT.front : hostAddress(i),
    connections: SCALE_OUT.connectionsPerHost,
    seconds,
    script: WRK_SCRIPTS.specweb96,
    args: [String(i + 1), 'gzip'],
    timeoutSeconds: 5,
  }));
}

interface Bed {
  cluster: Cluster;
  hostCaps: CpuCap[];
  balancerCap: CpuCap | null;
}

async function build(v: ScaleOutVariant, dir: string): Promise<Bed> {
  const files = writeFiles(dir);
  const dpr = v.router.startsWith('dpr');
  const direct = v.router.startsWith('dpr-direct');
  const central = v.router.startsWith('haproxy');
  const cluster = await Cluster.create({
    hosts: v.hosts,
    dpr,
    policy: v.router.endsWith('load') ? 'load' : 'hash',
    tag: 'bso',
    // `direct` mode: the cluster addresses on a back network of their own, as the mode needs.
    ...(direct ? { networks: 'split' as const } : {}),
    // The daemon as installed (schema defaults: heartbeat 200 ms, snapshots
    // every 5 s), not tools/cluster.ts's quicker test settings: its idle
    // work is paid from the host's cap.
    config: { load: { threshold: SCALE_OUT.loadThreshold }, peers: { heartbeatMs: 200, deadAfterMs: 1000 }, flows: { snapshotMs: 5000 }, ...(direct ? { mode: 'direct' } : {}) },
    extraHosts: central ? [{ name: 'lb', address: SCALE_OUT.front }] : [],
    web: (bed, id) => startNginx(bed, hostName(id), id, dir, files),
  });
  const bed: Bed = { cluster, hostCaps: [], balancerCap: null };
  try {
    cluster.bed.sysctl('client', 'net.ipv4.ip_local_port_range', '1024 65535');
    if (central) {
      cluster.bed.sysctl('lb', 'net.ipv4.ip_local_port_range', '1024 65535');
      await startHaproxy(cluster, dir, v.hosts);
    }
    // Each host's nginx (master and worker) and daemon, with all their threads.
    for (let id = 0; id < (v.uncapped ? 0 : v.hosts); id++) {
      const cap = CpuCap.create('so', hostName(id), SCALE_OUT.cap);
      bed.hostCaps.push(cap);
      cap.adoptNamespace(cluster.bed.ns(hostName(id)));
    }
    if (v.router === 'haproxy-capped') {
      bed.balancerCap = CpuCap.create('so', 'lb', SCALE_OUT.cap);
      bed.balancerCap.adoptNamespace(cluster.bed.ns('lb'));
    }
    return bed;
  } catch (err) {
    await tearDown(bed);
    throw err;
  }
}

/** nginx's workers outlive a killed master and hold its pipes: every process in the beds' namespaces goes first. */
async function tearDown(b: Bed): Promise<void> {
  for (const host of b.cluster.bed.hosts) {
    let pids: string[] = [];
    try {
      pids = execFileSync('ip', ['netns', 'pids', b.cluster.bed.ns(host)], { encoding: 'utf8' }).split('\n').filter(Boolean);
    } catch {
      continue;
    }
    for (const pid of pids) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
  await b.cluster.destroy();
  for (const cap of [...b.hostCaps, ...(b.balancerCap ? [b.balancerCap] : [])]) cap.remove();
}

function throttledShare(caps: readonly CpuCap[], before: Array<ReturnType<CpuCap['throttled']>>): number {
  let periods = 0;
  let throttled = 0;
  caps.forEach((c, i) => {
    const t = c.throttled();
    periods += t.periods - before[i]!.periods;
    throttled += t.throttledPeriods - before[i]!.throttledPeriods;
  });
  return periods > 0 ? throttled / periods : 0;
}

/** Cores per host cap with no load, over `ms`. */
async function idleCores(caps: readonly CpuCap[], ms: number): Promise<number> {
  const before = caps.map((c) => c.usageSeconds());
  await new Promise((r) => setTimeout(r, ms));
  return caps.reduce((s, c, i) => s + c.usageSeconds() - before[i]!, 0) / caps.length / (ms / 1000);
}

async function measure(b: Bed, v: ScaleOutVariant, size: ScaleOutSize): Promise<ScaleOutSample> {
  const idle = await idleCores(b.hostCaps, IDLE_MS);
  await runWrkAll(b.cluster.bed, 'client', jobs(v, size.warmupSeconds));
  const caps = [...b.hostCaps, ...(b.balancerCap ? [b.balancerCap] : [])];
  const used0 = caps.map((c) => c.usageSeconds());
  const thr0 = caps.map((c) => c.throttled());
  const procs0 = cpuTicks(b.cluster.bed);
  const m0 = machineTicks();
  const t0 = performance.now();
  const results = await runWrkAll(b.cluster.bed, 'client', jobs(v, size.seconds));
  const wall = (performance.now() - t0) / 1000;
  const machine = machineBusySeconds(m0, machineTicks());
  const procs = cpuSeconds(procs0, cpuTicks(b.cluster.bed));
  const capped = caps.reduce((s, c, i) => s + c.usageSeconds() - used0[i]!, 0);
  const s = summarizeWrk(results);
  const served = Object.values(s.servedBy);
  const perRequest = (seconds: number) => (seconds * 1000) / Math.max(1, s.requests);
  return {
    ...s,
    hosts: v.hosts,
    machineCpuMsPerRequest: perRequest(machine),
    cappedCpuMsPerRequest: perRequest(capped),
    cpuSeconds: procs,
    hostThrottledShare: throttledShare(b.hostCaps, thr0.slice(0, b.hostCaps.length)),
    balancerThrottledShare: b.balancerCap ? throttledShare([b.balancerCap], thr0.slice(b.hostCaps.length)) : NaN,
    busiestShare: served.length ? Math.max(...served) / served.reduce((a, c) => a + c, 0) : NaN,
    machineCores: machine / wall,
    bedCores: Object.values(procs).reduce((a, c) => a + c, 0) / wall,
    idleHostCores: idle,
  };
}

export async function runScaleOut(v: ScaleOutVariant, size: ScaleOutSize): Promise<ScaleOutSample> {
  if (!CpuCap.available()) throw new Error('scale-out: the cgroup v1 cpu and cpuacct controllers are not mounted at /sys/fs/cgroup');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpr-bench-scale-out-'));
  try {
    const b = await build(v, dir);
    try {
      return await measure(b, v, size);
    } finally {
      await tearDown(b);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
