// One repetition of the cluster trial: the paper's comparison. Four
// capacity-capped web hosts serve the SPECweb96-like file mix, one request
// per connection, from four wrk processes in the client namespace; what sits
// in front of the hosts varies:
//   none      each wrk process dials one host (round-robin DNS), no dpr
//   dpr-hash  the same, every host runs dpr with the hash policy
//   dpr-load  the same, every host runs dpr with the load policy
//   dpr-direct-hash / dpr-direct-load  the same in `direct` mode (hosts with
//             a back network for their cluster addresses, as the mode needs):
//             only a forwarded connection's SYN crosses a queue
//   haproxy   one address: HAProxy (Debian's) in TCP mode, `balance leastconn`,
//             in a fifth namespace `lb`; all wrk processes dial it
//   dnat      one address: the kernel in the fifth namespace, iptables DNAT
//             round-robin (`statistic --mode nth`) plus SNAT to itself
// and how the arrivals spread over the hosts' addresses: skewed 70/10/10/10
// (wrk connections 14:2:2:2, as a few big clients behind cached DNS answers
// give) or balanced (5:5:5:5). A central balancer has one address, so arrival
// skew does not exist for it; it gets the same 20 connections.
//
// The heterogeneous cluster: h3 has twice the others' capacity (8 slots) and
// weight 2; 25 connections keep it as saturated as 20 keep the equal one.
// Its ideal (hetero-ideal, no dpr) is arrivals in proportion to capacity,
// 5:5:5:10; dpr meets even arrivals (6:6:6:7) and skewed ones (18:2:2:3).
//
// Why these sizes: the hosts, not the two shared cores, must run out. Each
// host works on 4 requests at once, 40 ms each plus 1 ms per 16 KB (about
// 95 requests/s); 20 closed-loop connections keep a balanced cluster just
// saturated (5 per host), while skewed arrivals leave h1-h3 two connections
// each: half their capacity idles unless someone moves connections. (At 20 ms
// the same cluster ran at twice the rate, and dpr's daemons then took enough
// of the two shared cores to slow the servers themselves.)
//
// DNAT replies: the hosts answer the address that reached them; with SNAT to
// the front's own address that is the front, which undoes both translations
// (what LVS-NAT does with the front as the hosts' gateway; on this one bridge
// a gateway would need a second subnet). Both directions cross the front, as
// with HAProxy; only dpr sends replies from the serving host straight back.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Cluster, hostAddress } from '../tools/cluster';
import { cpuSeconds, cpuTicks } from './ns-cpu';
import { machineBusySeconds, machineTicks } from './machine-cpu';
import { runWrkAll, summarizeWrk, WRK_SCRIPTS, type WrkJob, type WrkSummary } from './wrk';

export type Router = 'none' | 'dpr-hash' | 'dpr-load' | 'dpr-direct-hash' | 'dpr-direct-load' | 'haproxy' | 'dnat';
export type Arrivals = 'skewed' | 'balanced' | 'central' | 'hetero-ideal' | 'hetero-even' | 'hetero-skewed';

export interface ClusterVariant {
  router: Router;
  arrivals: Arrivals;
}

export interface ClusterSize {
  seconds: number;
  warmupSeconds: number;
}

export interface ClusterSample extends WrkSummary {
  /** Share of all responses served by the busiest host (0.25 is perfect balance). */
  busiestShare: number;
  /** Per host: new connections it kept and forwarded, packets through its entry and serve queues (dpr only). */
  decisions: HostCounters[] | null;
  /** Packets through all dpr queues per request (dpr only). */
  queuedPerRequest: number;
  /** CPU seconds per process kind over the measured run (dpr daemons, web servers, wrk, haproxy). */
  cpuSeconds: Record<string, number>;
  /** CPU ms per request of the router itself: the dpr daemons, or HAProxy (kernel NAT: not attributable). */
  routerCpuMsPerRequest: number;
  /** Busy CPU of the whole machine (/proc/stat: every process and the kernel) per request, in µs. */
  machineCpuUsPerRequest: number;
  perProcess: Array<{ address: string; connections: number; requests: number; errors: number }>;
}

export const CLUSTER = {
  hosts: 4,
  slots: 4,
  serviceMs: 40,
  skewed: [14, 2, 2, 2],
  balanced: [5, 5, 5, 5],
  front: '198.18.0.100',
  /**
   * Load policy: a host keeps every new connection up to 2 per unit of
   * weight, then up to the cluster mean x 1.1. The default (8) suits hosts
   * that work on many requests at once; with 4 slots it would leave h0
   * holding 8 of the 20 connections while its peers have capacity to spare.
   */
  loadThreshold: 2,
  hetero: {
    slots: [4, 4, 4, 8],
    weights: [1, 1, 1, 2],
    'hetero-ideal': [5, 5, 5, 10],
    'hetero-even': [6, 6, 6, 7],
    'hetero-skewed': [18, 2, 2, 3],
  },
} as const;

const isHetero = (a: Arrivals): a is 'hetero-ideal' | 'hetero-even' | 'hetero-skewed' => a.startsWith('hetero');

/** wrk connections per host address (central: the same counts, all to the front). */
function split(a: Arrivals): readonly number[] {
  if (isHetero(a)) return CLUSTER.hetero[a];
  return a === 'skewed' ? CLUSTER.skewed : CLUSTER.balanced;
}

function jobs(v: ClusterVariant, seconds: number): WrkJob[] {
  return split(v.arrivals).map((connections, i) => ({
    address: v.arrivals === 'central' ? CLUSTER.front : hostAddress(i),
    connections,
    seconds,
    script: WRK_SCRIPTS.specweb96,
    // The same request sequence per process in every variant.
    args: [String(i + 1)],
    timeoutSeconds: 5,
  }));
}

function haproxyConfig(hosts: number): string {
  const servers = Array.from({ length: hosts }, (_, id) => `  server h${id} ${hostAddress(id)}:80`);
  return [
    'global',
    // Far above the 20 connections of the load; HAProxy needs two descriptors
    // per connection and refuses to start if the limit is below that.
    '  maxconn 4000',
    'defaults',
    '  mode tcp',
    '  timeout connect 5s',
    '  timeout client 30s',
    '  timeout server 30s',
    'frontend web',
    `  bind ${CLUSTER.front}:80`,
    '  default_backend hosts',
    'backend hosts',
    '  balance leastconn',
    ...servers,
    '',
  ].join('\n');
}

/** Starts HAProxy in the front namespace (in front of `hosts` hosts); Cluster.destroy() kills it with the rest. */
export async function startHaproxy(cluster: Cluster, dir: string, hosts: number = CLUSTER.hosts): Promise<void> {
  const file = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(file, haproxyConfig(hosts));
  cluster.bed.exec('lb', ['haproxy', '-c', '-q', '-f', file]);
  const child = cluster.bed.spawn('lb', ['haproxy', '-db', '-f', file]);
  let err = '';
  child.stdout?.resume();
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const deadline = Date.now() + 10_000;
  while (!cluster.bed.exec('lb', ['ss', '-ltnH', 'sport = :80']).trim()) {
    if (child.exitCode !== null) throw new Error(`haproxy exited ${child.exitCode}: ${err.trim()}`);
    if (Date.now() > deadline) throw new Error(`haproxy not listening after 10 s: ${err.trim()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The kernel as a central balancer: round-robin DNAT of new connections, SNAT so replies come back through it. */
function installDnat(cluster: Cluster): void {
  const n = CLUSTER.hosts;
  // nth rules see only what the rules above them let through: every n-th,
  // then every (n-1)-th of the rest, ... gives each host a quarter.
  const spread = Array.from({ length: n }, (_, id) => {
    const nth = id < n - 1 ? `-m statistic --mode nth --every ${n - id} --packet 0 ` : '';
    return `-A PREROUTING -d ${CLUSTER.front}/32 -p tcp --dport 80 ${nth}-j DNAT --to-destination ${hostAddress(id)}:80`;
  });
  const rules = ['*nat', ...spread, `-A POSTROUTING -d 198.18.0.0/24 -p tcp --dport 80 -j SNAT --to-source ${CLUSTER.front}`, 'COMMIT', ''];
  cluster.bed.sysctl('lb', 'net.ipv4.ip_forward', 1);
  // In and out of the same link: no redirects telling the client to go direct.
  for (const scope of ['all', 'default', 'eth0']) cluster.bed.sysctl('lb', `net.ipv4.conf.${scope}.send_redirects`, 0);
  cluster.bed.exec('lb', ['iptables-restore', '--noflush'], rules.join('\n'));
}

async function build(v: ClusterVariant, dir: string): Promise<Cluster> {
  const dpr = v.router.startsWith('dpr');
  const direct = v.router.startsWith('dpr-direct');
  const central = v.router === 'haproxy' || v.router === 'dnat';
  const cluster = await Cluster.create({
    hosts: CLUSTER.hosts,
    dpr,
    policy: v.router.endsWith('load') ? 'load' : 'hash',
    slots: CLUSTER.slots,
    ...(isHetero(v.arrivals) ? { slotsByHost: [...CLUSTER.hetero.slots], weights: [...CLUSTER.hetero.weights] } : {}),
    serviceMs: CLUSTER.serviceMs,
    tag: 'bc',
    ...(direct ? { networks: 'split' as const } : {}),
    config: { load: { threshold: CLUSTER.loadThreshold }, ...(direct ? { mode: 'direct' } : {}) },
    extraHosts: central ? [{ name: 'lb', address: CLUSTER.front }] : [],
  });
  try {
    cluster.bed.sysctl('client', 'net.ipv4.ip_local_port_range', '1024 65535');
    if (central) cluster.bed.sysctl('lb', 'net.ipv4.ip_local_port_range', '1024 65535');
    if (v.router === 'haproxy') await startHaproxy(cluster, dir);
    if (v.router === 'dnat') installDnat(cluster);
    return cluster;
  } catch (err) {
    await cluster.destroy();
    throw err;
  }
}

interface HostCounters {
  host: number;
  local: number;
  forwarded: number;
  entryPackets: number;
  servePackets: number;
}

function counters(cluster: Cluster): HostCounters[] {
  return Array.from({ length: CLUSTER.hosts }, (_, host) => {
    const s = cluster.status(host);
    const f = s.entry?.newFlows ?? { local: 0, forwarded: 0 };
    return { host, local: f.local, forwarded: f.forwarded, entryPackets: s.entry?.packets ?? 0, servePackets: s.serve?.packets ?? 0 };
  });
}

function delta(before: HostCounters[], after: HostCounters[]): HostCounters[] {
  return after.map((a, i) => {
    const b = before[i]!;
    return { host: a.host, local: a.local - b.local, forwarded: a.forwarded - b.forwarded,
      entryPackets: a.entryPackets - b.entryPackets, servePackets: a.servePackets - b.servePackets };
  });
}

/**
 * Warms the servers (and daemons) up with tools/loadgen.ts rather than wrk:
 * wrk ends a run by dropping its connections mid-request, and the web server
 * frees a request's slot only when the response finishes, so a wrk warm-up
 * would leave hosts with slots lost for the measured run (seen: hosts that
 * served nothing at all). The measured run's own drops do not matter: the
 * cluster goes with it.
 */
async function warmUp(cluster: Cluster, v: ClusterVariant, size: ClusterSize): Promise<void> {
  const targets = v.arrivals === 'central' ? [{ address: CLUSTER.front }] : CLUSTER.balanced.map((_, i) => ({ address: hostAddress(i) }));
  const slots = isHetero(v.arrivals) ? CLUSTER.hetero.slots.reduce((a, b) => a + b, 0) : CLUSTER.hosts * CLUSTER.slots;
  const perSecond = slots * (1000 / CLUSTER.serviceMs);
  const w = await cluster.load({
    targets, requests: Math.round(perSecond * size.warmupSeconds), concurrency: slots + 4, sizes: [512, 4096, 20480],
    timeoutMs: 10_000, maxDurationMs: (size.warmupSeconds + 10) * 1000,
  });
  if (w.errors > 0) throw new Error(`cluster: warm-up had ${w.errors} errors: ${JSON.stringify(w.errorKinds)}`);
}

/** Load, counters and CPU of one measured run on a built cluster. */
async function measure(cluster: Cluster, v: ClusterVariant, size: ClusterSize): Promise<ClusterSample> {
  await warmUp(cluster, v, size);
  const before = v.router.startsWith('dpr') ? counters(cluster) : null;
  const cpuBefore = cpuTicks(cluster.bed);
  const machineBefore = machineTicks();
  const work = jobs(v, size.seconds);
  const results = await runWrkAll(cluster.bed, 'client', work);
  const machine = machineBusySeconds(machineBefore, machineTicks());
  const cpu = cpuSeconds(cpuBefore, cpuTicks(cluster.bed));
  const decisions = before ? delta(before, counters(cluster)) : null;
  const s = summarizeWrk(results);
  const served = Object.values(s.servedBy);
  const queued = decisions ? decisions.reduce((n, d) => n + d.entryPackets + d.servePackets, 0) : 0;
  const routerCpu = (cpu['dpr'] ?? 0) + (cpu['haproxy'] ?? 0);
  return {
    ...s,
    busiestShare: served.length ? Math.max(...served) / served.reduce((a, b) => a + b, 0) : NaN,
    decisions,
    queuedPerRequest: queued / Math.max(1, s.requests),
    cpuSeconds: cpu,
    routerCpuMsPerRequest: v.router === 'dnat' || v.router === 'none' ? NaN : (routerCpu * 1000) / Math.max(1, s.requests),
    machineCpuUsPerRequest: (machine * 1e6) / Math.max(1, s.requests),
    perProcess: results.map((r, i) => ({
      address: work[i]!.address,
      connections: work[i]!.connections,
      requests: r.requests,
      errors: Object.values(r.errors).reduce((a, b) => a + b, 0),
    })),
  };
}

export async function runCluster(v: ClusterVariant, size: ClusterSize): Promise<ClusterSample> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpr-bench-cluster-'));
  try {
    const cluster = await build(v, dir);
    try {
      return await measure(cluster, v, size);
    } finally {
      await cluster.destroy();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
