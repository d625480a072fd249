// The benchmarks as data: each trial names its variants, the variant the
// others are compared with, and how one repetition of a variant runs.
// `bench/run.ts` runs every repetition in a fresh child process and prints
// the table; nothing here keeps state between repetitions.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BACKLOG, BIN, runDatapath, type DatapathSize, type DatapathVariant } from './datapath';
import { runForward, type ForwardKind } from './forward';
import { CLUSTER, runCluster, type Arrivals, type ClusterSize, type Router } from './cluster-mix';
import { runSnapshotLag } from './snapshot-lag';
import { runLocal, type LocalSize } from './local-cost';
import { runDecisionCost, type DecisionCostVariant } from './decision-cost';
import { runFlows, runMaglev, runPacket } from './scale';
import { PROBE, runSetup, type SetupPath, type SetupSize } from './setup-time';
import { reliability } from './reliability';
import { CpuCap } from './cgroup';
import { SCALE_OUT, runScaleOut, type ScaleOutSize, type ScaleOutVariant, type ScaleRouter } from './scale-out';
import { attack } from './attack';
import type { Measurement, Trial, TrialOptions, Variant } from './types';

export type { Column, Goal, Measurement, Trial, TrialOptions, Variant } from './types';

const ROOT = path.resolve(__dirname, '..', '..');

/** Harness and load generators run on this core; trials pin what they measure to another. */
export const HARNESS_CPU = '0';

const datapathVariants: readonly DatapathVariant[] = [
  { name: 'dpr-rewrite', consumer: 'dpr', mode: 'rewrite',
    description: 'dpr addon Queue, hash policy, table sends every flow to the peer: flow lookup, rewrite, NF_REPEAT + mark' },
  { name: 'dpr-rewrite-ipv6', consumer: 'dpr', mode: 'rewrite', family: 6,
    description: 'as dpr-rewrite, over IPv6 (a dual-stack engine): IPv6 parse, the IPv6 flow table, 128-bit checksum update' },
  { name: 'dpr-local', consumer: 'dpr', mode: 'accept',
    description: 'dpr addon Queue, table [self]: flow lookup, NF_ACCEPT unchanged' },
  { name: 'c-rewrite', consumer: 'c', mode: 'rewrite',
    description: 'plain C consumer: recv, rewrite, one NF_REPEAT verdict sendto per packet' },
  { name: 'c-accept', consumer: 'c', mode: 'accept',
    description: 'plain C consumer: recv, one NF_ACCEPT verdict sendto per packet' },
  { name: 'no-queue', consumer: 'none', mode: 'accept',
    description: 'same rules with DROP in place of NFQUEUE, sender and kernel on one core: what the input side alone sustains (no consumer; not a drain)' },
];

function datapathSize(options: TrialOptions): DatapathSize {
  return { cycles: options.quick ? 2 : 3 };
}

function compileC(source: string, output: string, libs: string[]): void {
  const flags = libs.length ? execFileSync('pkg-config', ['--cflags', '--libs', ...libs], { encoding: 'utf8' }) : '';
  execFileSync('cc', ['-O2', '-Wall', '-Wextra', '-o', output, path.join(ROOT, source), ...flags.split(/\s+/).filter(Boolean)], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
}

function prepareDatapath(): void {
  if (os.cpus().length < 2) throw new Error('datapath: needs 2 CPUs (sender and consumer are pinned apart)');
  for (const tool of ['taskset', 'iptables-restore', 'cc', 'pkg-config']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      throw new Error(`datapath: '${tool}' is missing (run: npm run setup)`);
    }
  }
  if (!existsSync(BIN.dprConsumer)) throw new Error(`datapath: ${BIN.dprConsumer} is missing (run: npm run build:ts)`);
  mkdirSync(path.dirname(BIN.plainConsumer), { recursive: true });
  // Built here, not by binding.gyp: the yardstick is no part of the addon.
  compileC('bench/c/plain_consumer.c', BIN.plainConsumer, ['libnetfilter_queue', 'libmnl']);
  compileC('bench/c/syn_flood.c', BIN.synFlood, []);
}

const datapath: Trial = {
  name: 'datapath',
  description: 'Packets per second through one NFQUEUE queue: dpr\'s addon vs a plain C consumer, same rules, same packets',
  unit: 'packets per consumer CPU-second',
  secondaryUnit: 'packets per wall-clock second',
  variants: datapathVariants,
  baseline: 'c-rewrite',
  goals: [
    { text: 'dpr-rewrite vs c-rewrite (packets per CPU-second)', variant: 'dpr-rewrite', metric: 'value', kind: 'ratio', versus: 'c-rewrite', atLeast: 0.9 },
    { text: 'dpr-rewrite-ipv6 vs dpr-rewrite (packets per CPU-second)', variant: 'dpr-rewrite-ipv6', metric: 'value', kind: 'ratio', versus: 'dpr-rewrite', atLeast: 0.9 },
  ],
  setup(options) {
    const { cycles } = datapathSize(options);
    return [
      `Sender: bench/c/syn_flood (raw socket, sendmmsg of 256) in its own namespace, pinned to CPU 0, harness on CPU 0 too; TCP SYNs to 198.18.0.1:80 over ${BACKLOG} distinct 4-tuples, the same ones every cycle (dpr-rewrite-ipv6: IPv6 SYNs, 60 bytes, from 2001:2::1:0 to 2001:2::1:80, the same rules in ip6tables, the peer 2001:2::2 blackholed).`,
      'Host under test: raw PREROUTING `mark 0x100/0x100 -> CT --notrack`, `mark 0x100/0x100 -> ACCEPT`, `-p tcp -d 198.18.0.1 --dport 80 -j NFQUEUE --queue-num 0` (no --queue-bypass); filter INPUT drops tcp/80 (where the local path ends); blackhole route for the peer 198.18.0.2 (where the rewrite path ends, after routing).',
      `Both consumers configure the queue alike: copy 0xffff, maxlen ${BACKLOG}, rcvbuf 64 MiB, FAIL_OPEN|GSO; consumer pinned to CPU 1. dpr: batchSize 64, lookup table 65537 slots, flow table 2^20, hash policy. Rewrite: dst 198.18.0.1:80 -> 198.18.0.2:20000, incremental checksums, NF_REPEAT + mark 0x100.`,
      `Method (fill and drain, ${cycles} cycles per repetition): the consumer binds the queue; per cycle it is stopped (SIGSTOP), the sender queues ${BACKLOG} SYNs (the most this kernel holds in one queue), and on SIGCONT the consumer drains them alone on its core. Cycle 1 meets every flow first (dpr inserts), later cycles find them.`,
      'Main number: packets per CPU-second of the consumer\'s threads (/proc/PID/task/*/schedstat) over the whole drain; it includes the kernel\'s verdict work done in the consumer\'s sendmsg (reinject, rules, routing). It is what a dedicated core would do, and holds on a busy machine. Beside it: packets per wall-clock second while queue_total (/proc/PID/net/netfilter/nfnetlink_queue, sampled every ~1 ms) falls from 90% to 10% of the backlog; it drops when other work shares the core (see waitSeconds in the JSON). no-queue: packets per CPU-second of the sender (send + receive + drop all run in its context) and per wall-clock second of sending.',
      'Why not a steady flood: the veth delivers in the sender\'s softirq, so the sender\'s core also pays the kernel\'s enqueue work and offered only ~280k SYN/s on this machine, all of which dpr took (it measured the sender).',
    ];
  },
  prepare: prepareDatapath,
  async run(variant, options) {
    const v = datapathVariants.find((d) => d.name === variant);
    if (v === undefined) throw new Error(`datapath: no variant '${variant}'`);
    const s = await runDatapath(v, datapathSize(options));
    return { value: s.cpuPps, secondary: s.pps, work: s.packets, detail: s };
  },
};

// ---- forward: what the kernel modes cost per forwarded packet ----------

interface ForwardVariant extends Variant { kind: ForwardKind }

const forwardVariants: readonly ForwardVariant[] = [
  { name: 'ip-forward', kind: 'ip-forward',
    description: 'no dpr: the host routes the same packets (dst 198.18.0.1, not its own) to the peer with ip_forward and a route. The baseline.' },
  { name: 'direct', kind: 'direct',
    description: '`direct` mode installed, every flow in the peer\'s ipset, no daemon: DPR_ENTRY socket lookup, set match, CT --notrack, MARK, entry renewal, fwmark rule, the peer\'s table' },
  { name: 'tunnel', kind: 'tunnel',
    description: '`tunnel` mode the same, and the packet encapsulated in VXLAN towards the peer, which decapsulates it (its decapsulation counts too)' },
];

const forward: Trial = {
  name: 'forward',
  description: 'Forwarded packets after the SYN: the kernel modes against the kernel forwarding the same packets with no dpr',
  unit: 'forwarded packets per CPU-second',
  secondaryUnit: 'forwarded packets per wall-clock second',
  variants: forwardVariants,
  baseline: 'ip-forward',
  goals: [
    { text: 'direct vs plain ip_forward (packets per CPU-second)', variant: 'direct', metric: 'value', kind: 'ratio', versus: 'ip-forward', atLeast: 0.8 },
    { text: 'tunnel vs plain ip_forward (packets per CPU-second)', variant: 'tunnel', metric: 'value', kind: 'ratio', versus: 'ip-forward', atLeast: 0.8 },
  ],
  setup(o) {
    return [
      'Topology: snd 198.18.0.10 --- front bridge --- host 198.18.0.1 (ip-forward: 198.18.0.3) and 198.18.1.1 --- back bridge --- peer 198.18.1.2, in namespaces.',
      `Sender: bench/c/syn_flood --ack 1 (raw socket, sendmmsg of 256), bare ACKs of 65,536 flows to 198.18.0.1:80, as fast as it can for ${o.quick ? 2 : 5} s, pinned to CPU 1. The peer drops and counts them in raw PREROUTING (tunnel: after decapsulation).`,
      'direct / tunnel: iptables/install.sh of the mode (tunnel: on the peer too), the flows written into dpr4_to1 with `ipset restore` as the daemon would hand them off; no daemon runs (after the SYN nothing needs it).',
      'Number: packets that reached the peer per CPU-second of the sender process plus ksoftirqd/1: the veth delivers in the sender\'s softirq, so host and peer work runs on that core, in the sender\'s context or its ksoftirqd. It includes the sender\'s own cost, the same in every variant, so ratios understate the differences a little. Beside it: per wall-clock second.',
    ];
  },
  prepare() {
    prepareDatapath();
    requireTools('forward', ['ipset', 'pgrep']);
  },
  async run(variant, o) {
    const v = forwardVariants.find((x) => x.name === variant);
    if (v === undefined) throw new Error(`forward: no variant '${variant}'`);
    const s = await runForward(v.kind, { seconds: o.quick ? 2 : 5 });
    return { value: s.cpuPps, secondary: s.pps, work: s.delivered, metrics: { cpuSeconds: s.cpuSeconds }, detail: s };
  },
};

// Everything below runs whole namespace clusters: their processes inherit
// the child's CPU set, so it gets every core.
const ALL_CPUS = `0-${os.cpus().length - 1}`;

function requireTools(trial: string, tools: string[]): void {
  for (const tool of tools) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      throw new Error(`${trial}: '${tool}' is missing (run: npm run setup)`);
    }
  }
}

function requireBuilt(trial: string): void {
  for (const f of ['build/Release/dpr.node', 'dist/lib/cli.js', 'dist/tools/web-server.js']) {
    if (!existsSync(path.join(ROOT, f))) throw new Error(`${trial}: ${f} is missing (run: npm run setup)`);
  }
}

// ---- setup: connection set-up time -------------------------------------

interface SetupVariant extends Variant { path: SetupPath }

const setupVariants: readonly SetupVariant[] = [
  { name: 'direct', path: 'direct',
    description: 'no dpr: the same 2-host namespace cluster without rules or daemons; connect() to h0' },
  { name: 'dpr-local', path: 'local',
    description: 'dpr, hash policy, client ports that h0\'s table keeps: the SYN crosses h0\'s entry queue (lookup, flow insert, accept)' },
  { name: 'dpr-forwarded', path: 'forwarded',
    description: 'dpr, hash policy, client ports that h0\'s table gives h1: SYN through h0\'s entry queue (rewrite, NF_REPEAT) and h1\'s serve queue (restore, DNAT); h1 answers the client directly' },
  { name: 'dpr-direct-forwarded', path: 'kernel-forwarded',
    description: 'dpr in `direct` mode (cluster addresses on a back network), client ports h0\'s table gives h1: the SYN through h0\'s entry queue (ipset hand-off, NF_REPEAT with the peer\'s mark), routed unchanged to h1, whose stack answers from h0\'s address on lo' },
];

function setupSize(o: TrialOptions): SetupSize {
  return { connections: o.quick ? 2000 : 10_000, warmup: 200 };
}

const setup: Trial = {
  name: 'setup',
  description: 'Connection set-up time: client connect() to h0 of a 2-host cluster, without dpr, served locally by dpr, forwarded by dpr',
  unit: 'µs connect() p50',
  secondaryUnit: 'µs p99',
  variants: setupVariants,
  baseline: 'direct',
  showDifference: true,
  goals: [
    { text: 'what forwarding adds to connect() at p50 (dpr-forwarded minus direct)', variant: 'dpr-forwarded', metric: 'value', kind: 'difference', versus: 'direct', atMost: 50, unit: 'µs' },
    { text: 'what forwarding in `direct` mode adds to connect() at p50 (dpr-direct-forwarded minus direct)', variant: 'dpr-direct-forwarded', metric: 'value', kind: 'difference', versus: 'direct', atMost: 50, unit: 'µs' },
  ],
  columns: [{ metric: 'p90Us', label: 'µs p90' }, { metric: 'meanUs', label: 'µs mean' }, { metric: 'errors', label: 'failed connects' }],
  cpus: ALL_CPUS,
  timeoutMs: 180_000,
  setup(o) {
    const { connections, warmup } = setupSize(o);
    return [
      'Topology: tools/cluster.ts, 2 hosts (h0 198.18.0.1, h1 198.18.0.2) and a client (198.18.0.200) on one bridge in namespaces, the real daemon and iptables/install.sh rules, hash policy, web servers with 256 slots and no service time (accept is all that is timed).',
      `Client: bench/c/connect_probe, one connection at a time: bind a chosen source port, time a blocking connect() (CLOCK_MONOTONIC, SYN out to SYN-ACK in), close; ${connections} timed connections after ${warmup} untimed ones, every port used once.`,
      'Local vs forwarded: under the hash policy the client port decides. The bench builds the Maglev table the daemons build for hosts [0, 1] and asks the addon\'s Engine.hashTarget where each port goes; dpr-local gets only ports that stay on h0, dpr-forwarded only ports that go to h1. Afterwards h0\'s new-flow counters must show every connection on the intended path, or the repetition fails.',
      'The child runs on every core (the daemons, web servers and probe are its children); other work on the machine shares them.',
    ];
  },
  prepare() {
    requireTools('setup', ['cc', 'curl']);
    requireBuilt('setup');
    mkdirSync(path.dirname(PROBE), { recursive: true });
    compileC('bench/c/connect_probe.c', PROBE, []);
  },
  async run(variant, o) {
    const v = setupVariants.find((x) => x.name === variant);
    if (v === undefined) throw new Error(`setup: no variant '${variant}'`);
    const s = await runSetup(v.path, setupSize(o));
    return { value: s.p50Us, secondary: s.p99Us, work: s.connections, metrics: { p90Us: s.p90Us, meanUs: s.meanUs, errors: s.errors }, detail: s };
  },
};

// ---- local: what dpr costs traffic it keeps local ----------------------

interface LocalVariant extends Variant { dpr: boolean; keepAlive: boolean }

const localVariants: readonly LocalVariant[] = [
  { name: 'plain-keepalive', dpr: false, keepAlive: true, baseline: 'plain-keepalive',
    description: 'no dpr; wrk on keep-alive connections' },
  { name: 'dpr-keepalive', dpr: true, keepAlive: true, baseline: 'plain-keepalive',
    description: 'dpr installed, everything local; keep-alive: each packet meets the raw rules (`-m socket` accepts it in the kernel), only SYNs reach the daemon' },
  { name: 'plain-close', dpr: false, keepAlive: false, baseline: 'plain-close',
    description: 'no dpr; `Connection: close`, a new TCP connection per request' },
  { name: 'dpr-close', dpr: true, keepAlive: false, baseline: 'plain-close',
    description: 'dpr installed, everything local; a new connection per request: every SYN crosses the entry queue and the daemon\'s queue thread' },
];

function localSize(o: TrialOptions): LocalSize {
  return { seconds: o.quick ? 3 : 8, warmupSeconds: 1 };
}

const local: Trial = {
  name: 'local',
  description: 'Throughput of traffic a host keeps local, with dpr installed (rules + daemon) vs without',
  unit: 'requests/s',
  secondaryUnit: 'p99 ms',
  variants: localVariants,
  baseline: 'plain-keepalive',
  goals: [
    { text: 'dpr-keepalive vs plain-keepalive (requests/s)', variant: 'dpr-keepalive', metric: 'value', kind: 'ratio', versus: 'plain-keepalive', atLeast: 0.97 },
    { text: 'dpr-close vs plain-close (requests/s)', variant: 'dpr-close', metric: 'value', kind: 'ratio', versus: 'plain-close', atLeast: 0.97 },
  ],
  columns: [
    { metric: 'p50Ms', label: 'p50 ms', digits: 2 },
    { metric: 'errors', label: 'errors' },
    { metric: 'queuedPerRequest', label: 'packets through the daemon per request', digits: 2 },
    { metric: 'daemonCpuUsPerRequest', label: 'daemon CPU µs per request' },
    { metric: 'webCpuUsPerRequest', label: 'web server CPU µs per request' },
  ],
  cpus: ALL_CPUS,
  timeoutMs: 90_000,
  setup(o) {
    const { seconds, warmupSeconds } = localSize(o);
    return [
      'Topology: tools/cluster.ts with one host (h0 198.18.0.1) and a client on a bridge in namespaces. With dpr: iptables/install.sh rules and the daemon (hash policy, default 200 ms heartbeat and load measurement); its only live host is itself, so every SYN is decided local by the same code that keeps a connection local in a bigger cluster.',
      'CPU per request: CPU time of the daemon and of the web server over the measured run (/proc/PID/stat, all threads, including kernel work in their context: the daemon\'s verdicts reinject the SYN through the stack) over the requests.',
      'Server: tools/web-server.ts (node), 4096 slots, 0 ms service time (a 0 ms timer), tiny responses: the server\'s CPU is the limit, so what dpr takes from the two cores shows as lost throughput.',
      `Load: wrk -t1 -c64 (bench/wrk/report.lua) for ${seconds} s after ${warmupSeconds} s of warm-up; keep-alive, or \`Connection: close\` (the client's port range widened to 1024-65535).`,
      'Both sides share the machine\'s two cores with each other and with whatever else runs; compare the same-rep ratios.',
    ];
  },
  prepare() {
    requireTools('local', ['wrk', 'curl']);
    requireBuilt('local');
  },
  async run(variant, o) {
    const v = localVariants.find((x) => x.name === variant);
    if (v === undefined) throw new Error(`local: no variant '${variant}'`);
    const s = await runLocal(v, localSize(o));
    const perRequestUs = (seconds: number | undefined) => ((seconds ?? 0) * 1e6) / Math.max(1, s.requests);
    const metrics: Record<string, number> = { p50Ms: s.p50Ms, errors: s.errors, webCpuUsPerRequest: perRequestUs(s.cpuSeconds['web']) };
    if (s.entry) {
      metrics.queuedPerRequest = s.entry.packets / Math.max(1, s.requests);
      metrics.daemonCpuUsPerRequest = perRequestUs(s.cpuSeconds['dpr']);
    }
    return { value: s.rps, secondary: s.p99Ms, work: s.requests, metrics, detail: s };
  },
};

// ---- decision-cost: what deciding a new connection costs, by policy ------

interface DecisionVariant extends Variant, DecisionCostVariant {}

const DECISION_RATES = [200, 2000] as const;

const decisionVariants: readonly DecisionVariant[] = DECISION_RATES.flatMap((rate) => [
  { name: `none-${rate}`, policy: 'none' as const, rate, baseline: `none-${rate}`,
    description: `no dpr, ${rate} new connections a second: what the connections cost by themselves` },
  { name: `hash-${rate}`, policy: 'hash' as const, rate, baseline: `none-${rate}`,
    description: `hash policy, ${rate} new connections a second: the Maglev table, in the entry queue's thread` },
  { name: `load-${rate}`, policy: 'load' as const, rate, baseline: `none-${rate}`,
    description: `load policy, ${rate} new connections a second: loads and the rule, in the entry queue's thread` },
]);

const decisionCost: Trial = {
  name: 'decision-cost',
  description: 'What deciding a new connection costs, by policy, at a steady rate of new connections (issue 13, item 4): the test bed\'s CPU per connection beside no dpr',
  unit: 'bed CPU µs per connection',
  secondaryUnit: 'daemon CPU µs per connection',
  variants: decisionVariants,
  baseline: 'none-200',
  showDifference: true,
  goals: DECISION_RATES.flatMap((rate) => [
    { text: `load-${rate}: CPU per connection over no dpr`, variant: `load-${rate}`, metric: 'value', kind: 'difference' as const, versus: `none-${rate}`, atMost: 30, unit: 'µs' },
    { text: `load-${rate} vs hash-${rate}: daemon CPU per connection`, variant: `load-${rate}`, metric: 'secondary', kind: 'ratio' as const, versus: `hash-${rate}`, atMost: 1.5 },
  ]),
  columns: [
    { metric: 'connections', label: 'connections' },
    { metric: 'errors', label: 'errors' },
    { metric: 'idleMsPerSecond', label: 'daemon idle ms/s', digits: 2 },
    { metric: 'decided', label: 'decided by the entry queue' },
  ],
  cpus: ALL_CPUS,
  timeoutMs: 120_000,
  setup(o) {
    return [
      'Topology: tools/cluster.ts with two hosts (h0 198.18.0.1, h1 198.18.0.2) and a client on a bridge in namespaces; the client dials h0 only. With dpr, iptables/install.sh rules and the daemons (heartbeat 100 ms): under `hash` h1 has weight 0, so h0\'s table names h0 alone; under `load` h1 is live and every SYN is decided on both hosts\' loads, with a threshold (1,000,000) no run reaches, so it is kept. Nothing is forwarded: what dpr adds is the decision path alone. `none`: the same without rules or daemons. h1\'s processes are not counted.',
      `Load: tools/loadgen.ts in the client namespace, open loop at the variant's rate (a new connection per request, tiny responses) for ${o.quick ? 3 : 10} s after a warm-up.`,
      'Bed CPU: every thread of every process in the namespaces (client, web server, daemon; /proc/PID/task/*/schedstat, ns) over the run, per connection; the difference to `none` is what dpr adds (on veth the handshake runs in whichever context sends a packet: with dpr in the daemon\'s thread, whose verdict lets the SYN on, without in the client\'s). Work of other processes on the machine is not in it. Daemon CPU: its threads, less its idle CPU over as long, measured just before.',
    ];
  },
  prepare() {
    requireBuilt('decision-cost');
  },
  async run(variant, o) {
    const v = decisionVariants.find((x) => x.name === variant);
    if (v === undefined) throw new Error(`decision-cost: no variant '${variant}'`);
    const s = await runDecisionCost(v, { seconds: o.quick ? 3 : 10, idleSeconds: o.quick ? 2 : 4 });
    return {
      value: s.bedUsPerConnection,
      secondary: s.daemonUsPerConnection,
      work: s.connections,
      metrics: { connections: s.connections, errors: s.errors, idleMsPerSecond: s.idleMsPerSecond, decided: s.decided },
      detail: s,
    };
  },
};

// ---- cluster: the paper's comparison -----------------------------------

interface ClusterVariant extends Variant { router: Router; arrivals: Arrivals }

const clusterVariants: readonly ClusterVariant[] = [
  { name: 'no-dpr-balanced', router: 'none', arrivals: 'balanced',
    description: 'no dpr, arrivals spread evenly over the 4 addresses: the perfectly balanced cluster every ratio is taken to' },
  { name: 'no-dpr-skewed', router: 'none', arrivals: 'skewed',
    description: 'no dpr, 70/10/10/10 arrivals: what round-robin DNS with a few big clients gives' },
  { name: 'dpr-hash-balanced', router: 'dpr-hash', arrivals: 'balanced',
    description: 'dpr on every host, hash policy (Maglev over client address and port), even arrivals' },
  { name: 'dpr-hash-skewed', router: 'dpr-hash', arrivals: 'skewed',
    description: 'dpr, hash policy, 70/10/10/10 arrivals' },
  { name: 'dpr-load-balanced', router: 'dpr-load', arrivals: 'balanced',
    description: `dpr, load policy (threshold ${CLUSTER.loadThreshold}), even arrivals` },
  { name: 'dpr-load-skewed', router: 'dpr-load', arrivals: 'skewed',
    description: `dpr, load policy (threshold ${CLUSTER.loadThreshold}), 70/10/10/10 arrivals: the case dpr is for` },
  { name: 'dpr-direct-hash-skewed', router: 'dpr-direct-hash', arrivals: 'skewed',
    description: 'dpr in `direct` mode (hosts with a back network for cluster addresses), hash policy, 70/10/10/10 arrivals: only a forwarded connection\'s SYN crosses a queue' },
  { name: 'dpr-direct-load-skewed', router: 'dpr-direct-load', arrivals: 'skewed',
    description: `dpr in \`direct\` mode, load policy (threshold ${CLUSTER.loadThreshold}), 70/10/10/10 arrivals` },
  { name: 'dpr-direct-load-balanced', router: 'dpr-direct-load', arrivals: 'balanced',
    description: `dpr in \`direct\` mode, load policy (threshold ${CLUSTER.loadThreshold}), even arrivals` },
  { name: 'no-dpr-hetero-ideal', router: 'none', arrivals: 'hetero-ideal',
    description: 'heterogeneous cluster (h3: 8 slots, twice the others): no dpr, 25 connections in proportion to capacity (5:5:5:10): the capacity-weighted ideal' },
  { name: 'dpr-load-hetero-even', router: 'dpr-load', arrivals: 'hetero-even',
    description: 'heterogeneous cluster, h3 weight 2: dpr load policy, arrivals even over the addresses (6:6:6:7)' },
  { name: 'dpr-load-hetero-skewed', router: 'dpr-load', arrivals: 'hetero-skewed',
    description: 'heterogeneous cluster, h3 weight 2: dpr load policy, skewed arrivals (18:2:2:3)' },
  { name: 'dpr-hash-hetero-even', router: 'dpr-hash', arrivals: 'hetero-even',
    description: 'heterogeneous cluster, h3 weight 2: dpr hash policy (weighted Maglev), arrivals even over the addresses' },
  { name: 'haproxy', router: 'haproxy', arrivals: 'central',
    description: 'HAProxy (Debian 2.6) in TCP mode, balance leastconn, in a fifth namespace; all connections to its one address; both directions through it' },
  { name: 'dnat', router: 'dnat', arrivals: 'central',
    description: 'kernel NAT in a fifth namespace: iptables DNAT round-robin (statistic nth) + SNAT to itself; both directions through it' },
];

function clusterSize(o: TrialOptions): ClusterSize {
  return o.quick ? { seconds: 4, warmupSeconds: 1 } : { seconds: 10, warmupSeconds: 2 };
}

const cluster: Trial = {
  name: 'cluster',
  description: 'SPECweb96-like file mix on 4 capacity-capped hosts: dpr vs no dpr vs a central HAProxy or kernel NAT, skewed and balanced arrivals',
  unit: 'requests/s',
  secondaryUnit: 'p99 ms',
  variants: clusterVariants,
  baseline: 'no-dpr-balanced',
  goals: [
    { text: 'dpr-load-skewed throughput vs the balanced cluster', variant: 'dpr-load-skewed', metric: 'value', kind: 'ratio', versus: 'no-dpr-balanced', atLeast: 0.95 },
    { text: 'dpr-load-skewed p99 vs the balanced cluster', variant: 'dpr-load-skewed', metric: 'secondary', kind: 'ratio', versus: 'no-dpr-balanced', atMost: 1.2 },
    { text: 'dpr-load-skewed throughput vs HAProxy', variant: 'dpr-load-skewed', metric: 'value', kind: 'ratio', versus: 'haproxy', atLeast: 1.0 },
    { text: 'dpr-load-balanced throughput vs the balanced cluster', variant: 'dpr-load-balanced', metric: 'value', kind: 'ratio', versus: 'no-dpr-balanced', atLeast: 0.98 },
    { text: 'dpr-load-hetero-even throughput vs the capacity-weighted ideal', variant: 'dpr-load-hetero-even', metric: 'value', kind: 'ratio', versus: 'no-dpr-hetero-ideal', atLeast: 0.95 },
    { text: 'dpr-load-hetero-skewed throughput vs the capacity-weighted ideal', variant: 'dpr-load-hetero-skewed', metric: 'value', kind: 'ratio', versus: 'no-dpr-hetero-ideal', atLeast: 0.95 },
  ],
  columns: [
    { metric: 'p50Ms', label: 'p50 ms', ratio: true },
    { metric: 'errors', label: 'errors' },
    { metric: 'busiestShare', label: 'busiest host\'s share', digits: 2 },
    { metric: 'queuedPerRequest', label: 'packets through dpr queues per request', digits: 1 },
    { metric: 'routerCpuMsPerRequest', label: 'router CPU ms per request', digits: 2 },
    { metric: 'machineCpuUsPerRequest', label: 'machine CPU µs per request', digits: 0, ratio: true },
  ],
  chart: {
    panels: [
      { metric: 'value', label: 'Throughput, requests/s', better: 'higher' },
      { metric: 'secondary', label: 'p99 latency, ms', better: 'lower' },
    ],
    colours: [['no-dpr', '#95a5a6'], ['dpr-hash', '#5dade2'], ['dpr-load', '#1f618d'], ['dpr-direct', '#27ae60'], ['haproxy', '#e67e22'], ['dnat', '#d35400']],
  },
  cpus: ALL_CPUS,
  timeoutMs: 120_000,
  setup(o) {
    const { seconds, warmupSeconds } = clusterSize(o);
    return [
      `Hosts: tools/cluster.ts, 4 hosts (h0-h3, 198.18.0.1-4) and a client (198.18.0.200) on one bridge in namespaces; each host runs tools/web-server.ts with ${CLUSTER.slots} slots of ${CLUSTER.serviceMs} ms plus 1 ms per 16 KB of response (about 95 requests/s per host), so the hosts' capacity, not the machine's two cores, is what runs out. The hetero variants give h3 ${CLUSTER.hetero.slots[3]} slots and weight ${CLUSTER.hetero.weights[3]}, with 25 connections.`,
      'Workload: bench/wrk/specweb96.lua, SPECweb96 file classes (<1 KB 35%, 1-10 KB 50%, 10-100 KB 14%, 100 KB-1 MB 1%; nine sizes per class, uniform within a class), `Connection: close` so each request is a new TCP connection (dpr routes connections), a fixed seed per wrk process.',
      `Arrivals: four wrk processes (-t1, closed loop, 5 s timeout), one per host address, with 14/2/2/2 connections (skewed 70/10/10/10) or 5/5/5/5 (balanced); HAProxy and DNAT have one address, which all four dial with 5 connections each. ${seconds} s measured after ${warmupSeconds} s of warm-up; latency histograms of the four processes merged exactly.`,
      `dpr: every host runs the daemon and rules (iptables/install.sh), heartbeats every 100 ms; load policy threshold ${CLUSTER.loadThreshold} (the default 8 is meant for hosts working on more requests at once: with 4 slots it would let h0 keep 11 of the 20 connections).`,
      `HAProxy 2.6 (Debian) in namespace lb (${CLUSTER.front}): mode tcp, balance leastconn, default thread count. DNAT: namespace lb, ip_forward, nat PREROUTING DNAT with statistic nth 4/3/2/- (round robin per connection), POSTROUTING SNAT to ${CLUSTER.front} so replies return through it (send_redirects off).`,
      'dpr-direct-*: the same daemons in `direct` mode; the hosts get a second network (198.18.1.0/24) for their cluster addresses, which the mode needs (peers hold each other\'s service addresses on lo). Machine CPU µs per request: busy time of the whole machine (/proc/stat) over the measured run per request; it includes others\' work on a shared machine.',
      '"Balanced cluster" = no-dpr-balanced: the same hosts with arrivals spread evenly; every ratio is to it. busiest host\'s share = responses served by the busiest host over all (0.25 is even). Router CPU: CPU time of the 4 dpr daemons (or of HAProxy) over the measured run per request, from /proc/PID/stat; it includes the kernel work done in their context (an NFQUEUE verdict reinjects the packet through the stack in the sender of the verdict). Kernel NAT runs in softirq context and is not attributed.',
    ];
  },
  prepare() {
    requireTools('cluster', ['wrk', 'haproxy', 'curl', 'iptables-restore']);
    requireBuilt('cluster');
  },
  async run(variant, o) {
    const v = clusterVariants.find((x) => x.name === variant);
    if (v === undefined) throw new Error(`cluster: no variant '${variant}'`);
    const s = await runCluster(v, clusterSize(o));
    return {
      value: s.rps, secondary: s.p99Ms, work: s.requests,
      metrics: { p50Ms: s.p50Ms, errors: s.errors, busiestShare: s.busiestShare, queuedPerRequest: s.queuedPerRequest, routerCpuMsPerRequest: s.routerCpuMsPerRequest, machineCpuUsPerRequest: s.machineCpuUsPerRequest },
      detail: s,
    };
  },
};

// ---- scale: flow memory, table build time, packet cost -----------------

type ScaleKind = { kind: 'flows' } | { kind: 'maglev'; size: number; hosts: number } | { kind: 'packet'; hosts: number };
type ScaleVariant = Variant & ScaleKind;

const FLOWS = 1_000_000;
const maglevVariants: ScaleVariant[] = [65537, 655373].flatMap((size) => [2, 8, 64].map((hosts) => ({
  name: `maglev-${size}-h${hosts}`, kind: 'maglev' as const, size, hosts, baseline: null,
  unit: 'ms (warm median)', secondaryUnit: 'ms (first build)',
  description: `buildMaglevTable, ${size} slots, ${hosts} hosts: median of the builds after the first, beside the first (a daemon's start)`,
})));
const packetVariants: ScaleVariant[] = [2, 8, 64].map((hosts) => ({
  name: `packet-h${hosts}`, kind: 'packet' as const, hosts, baseline: 'packet-h2',
  unit: 'ns per SYN', secondaryUnit: 'ns per packet (established)',
  description: `Engine.process in a tight loop, hash policy, Maglev table of ${hosts} hosts: SYNs of new flows (hash, table, insert, rewrite if forwarded), beside packets of established flows`,
}));
const scaleVariants: readonly ScaleVariant[] = [
  { name: 'flows-1M', kind: 'flows', baseline: null, unit: 'B per flow (table)', secondaryUnit: 'B per flow (RSS)',
    description: `Engine with maxFlows ${FLOWS.toLocaleString('en-US')}, filled by ${FLOWS.toLocaleString('en-US')} SYNs: info().bytesPerFlowAtMax, beside resident memory growth net of the V8 heap per flow` },
  ...maglevVariants,
  ...packetVariants,
];

function scaleSize(o: TrialOptions): { packetFlows: number; passes: number; builds: number } {
  return o.quick ? { packetFlows: 131_072, passes: 2, builds: 3 } : { packetFlows: 262_144, passes: 3, builds: 5 };
}

async function runScale(v: ScaleVariant, o: TrialOptions): Promise<Measurement> {
  const size = scaleSize(o);
  if (v.kind === 'flows') {
    const s = runFlows(FLOWS);
    return { value: s.bytesPerFlowAtMax, secondary: s.rssBytesPerFlow, work: s.flows, metrics: { insertNs: s.insertNs }, detail: s };
  }
  if (v.kind === 'maglev') {
    const s = runMaglev(v.size, v.hosts, size.builds);
    return { value: s.warmMs, secondary: s.coldMs, work: size.builds, detail: s };
  }
  const s = runPacket(v.hosts, size.packetFlows, size.passes);
  return {
    value: s.synNs, secondary: s.establishedNs, work: s.flows,
    metrics: { floorNs: s.floorNs, synAboveFloorNs: s.synNs - s.floorNs, establishedAboveFloorNs: s.establishedNs - s.floorNs, forwardedShare: s.forwardedShare },
    detail: s,
  };
}

const scale: Trial = {
  name: 'scale',
  description: 'How dpr grows: bytes per flow at 1M flows, Maglev table build time, per-packet cost against hosts in the table',
  unit: 'value',
  secondaryUnit: 'second value',
  variants: scaleVariants,
  baseline: 'packet-h2',
  goals: [
    { text: 'flow table bytes per flow at 1M flows', variant: 'flows-1M', metric: 'value', kind: 'absolute', atMost: 64, unit: 'B' },
    { text: 'resident memory per flow at 1M flows (measured)', variant: 'flows-1M', metric: 'secondary', kind: 'absolute', atMost: 64, unit: 'B' },
    ...maglevVariants.map((v) => ({ text: `${v.name} build time (warm)`, variant: v.name, metric: 'value', kind: 'absolute' as const, atMost: 5, unit: 'ms' })),
    ...packetVariants.slice(1).flatMap((v) => [
      { text: `${v.name} vs packet-h2, new flows (flat)`, variant: v.name, metric: 'value', kind: 'ratio' as const, versus: 'packet-h2', atMost: 1.1 },
      { text: `${v.name} vs packet-h2, established flows (flat)`, variant: v.name, metric: 'secondary', kind: 'ratio' as const, versus: 'packet-h2', atMost: 1.1 },
    ]),
  ],
  columns: [
    { metric: 'insertNs', label: 'ns per insert' },
    { metric: 'floorNs', label: 'ns per call, parse only (floor)' },
    { metric: 'synAboveFloorNs', label: 'SYN above floor, ns' },
    { metric: 'establishedAboveFloorNs', label: 'established above floor, ns' },
    { metric: 'forwardedShare', label: 'forwarded share', digits: 2 },
  ],
  setup(o) {
    const { packetFlows, passes, builds } = scaleSize(o);
    return [
      'No namespaces: the addon\'s Engine (the per-packet code the queues run, called from JavaScript) and lib/maglev.ts, in a fresh process pinned to the harness CPU.',
      `flows-1M: Engine({maxFlows: ${FLOWS}, maxEmbryonic: ${FLOWS}}), hash policy over 2 hosts, ${FLOWS} distinct SYNs (20 client addresses x 50,000 ports) through process(). Table bytes per flow: info().bytesPerFlowAtMax (slots x entry size / maxFlows). Measured: RSS growth minus V8 heap growth from before the Engine to after the inserts, after a full GC, per flow held. ns per insert: CPU time per SYN, the N-API call included.`,
      `maglev: buildMaglevTable(hosts 0..N-1, size): the first build in the process, then ${builds} more whose median is the value; CPU time of the process (user + system), so other work on the machine does not inflate it.`,
      `packet: ${passes} passes of ${packetFlows.toLocaleString('en-US')} SYNs of flows never seen before (hash, table, insert; rewrite when forwarded), then one pass of ACKs over the first pass's flows (they become established) and ${passes} timed passes of ACKs over them; the floor: ${passes} passes of a packet for another address, which the engine only parses. Medians of the passes, in CPU ns per packet (the process's user + system time, GC threads included; the wall clock is in the JSON). Packets are built beforehand, one copy per pass, since forwarded packets are rewritten in place. Each call crosses N-API and builds an outcome object; the queues' threads do neither, so "above floor" is the engine's own work.`,
      '"Flat" = the 8- and 64-host costs within 1.1x of the 2-host cost.',
    ];
  },
  prepare() {
    requireBuilt('scale');
  },
  async run(variant, o) {
    const v = scaleVariants.find((x) => x.name === variant);
    if (v === undefined) throw new Error(`scale: no variant '${variant}'`);
    return runScale(v, o);
  },
};

// ---- scale-out: capped hosts, N = 2, 4, 8 --------------------------------

interface ScaleOutTrialVariant extends Variant, ScaleOutVariant {}

const SCALE_OUT_ROUTERS: ReadonlyArray<[ScaleRouter, string]> = [
  ['none', 'no dpr: each wrk process dials one host (the partition: the ideal for these balanced arrivals)'],
  ['dpr-hash', 'dpr on every host, hash policy'],
  ['dpr-load', `dpr on every host, load policy (threshold ${SCALE_OUT.loadThreshold})`],
  ['dpr-direct-hash', 'dpr on every host in `direct` mode (only the SYN of a forwarded connection leaves the kernel), hash policy'],
  ['dpr-direct-load', `dpr on every host in \`direct\` mode, load policy (threshold ${SCALE_OUT.loadThreshold})`],
  ['haproxy-capped', 'HAProxy (leastconn) in its own namespace, capped like one host: a central balancer on a host-sized machine'],
  ['haproxy', 'HAProxy (leastconn) in its own namespace, uncapped: a central balancer with the whole machine'],
];

const scaleOutVariants: readonly ScaleOutTrialVariant[] = SCALE_OUT.hostCounts.flatMap((hosts) =>
  SCALE_OUT_ROUTERS.map(([router, what]) => ({
    name: `${router}-n${hosts}`, router, hosts, baseline: `none-n${hosts}`, description: `${hosts} capped hosts; ${what}`,
  })),
);

function scaleOutSize(o: TrialOptions): ScaleOutSize {
  return o.quick ? { seconds: 4, warmupSeconds: 1 } : { seconds: 10, warmupSeconds: 2 };
}

const capShare = SCALE_OUT.cap.quotaUs / SCALE_OUT.cap.periodUs;

const scaleOut: Trial = {
  name: 'scale-out',
  description: `Scale-out: N = ${SCALE_OUT.hostCounts.join(', ')} hosts (nginx + dpr daemon capped at ${(capShare * 100).toFixed(0)}% of a core each), dpr vs no dpr vs HAProxy capped like a host or uncapped`,
  unit: 'requests/s',
  secondaryUnit: 'p99 ms',
  variants: scaleOutVariants,
  baseline: 'none-n2',
  goals: [
    { text: 'dpr-hash grows with N: 8 hosts vs 2 (ideal 4x)', variant: 'dpr-hash-n8', metric: 'value', kind: 'ratio', versus: 'dpr-hash-n2', atLeast: 3 },
    { text: 'dpr-load grows with N: 8 hosts vs 2 (ideal 4x)', variant: 'dpr-load-n8', metric: 'value', kind: 'ratio', versus: 'dpr-load-n2', atLeast: 3 },
    { text: 'dpr-load at 8 hosts vs HAProxy on a host-sized machine', variant: 'dpr-load-n8', metric: 'value', kind: 'ratio', versus: 'haproxy-capped-n8', atLeast: 1 },
    { text: 'dpr-load at 8 hosts vs the partition (no routing)', variant: 'dpr-load-n8', metric: 'value', kind: 'ratio', versus: 'none-n8', atLeast: 0.9 },
    { text: 'dpr-direct-load grows with N: 8 hosts vs 2 (ideal 4x)', variant: 'dpr-direct-load-n8', metric: 'value', kind: 'ratio', versus: 'dpr-direct-load-n2', atLeast: 3 },
    { text: 'dpr-direct-load at 8 hosts vs HAProxy on a host-sized machine', variant: 'dpr-direct-load-n8', metric: 'value', kind: 'ratio', versus: 'haproxy-capped-n8', atLeast: 1 },
    { text: 'dpr-direct-load at 8 hosts vs the partition (no routing)', variant: 'dpr-direct-load-n8', metric: 'value', kind: 'ratio', versus: 'none-n8', atLeast: 0.9 },
  ],
  columns: [
    { metric: 'hosts', label: 'hosts' },
    { metric: 'p50Ms', label: 'p50 ms', digits: 1 },
    { metric: 'errors', label: 'errors' },
    { metric: 'machineCpuMsPerRequest', label: 'machine CPU ms per request', digits: 2, ratio: true },
    { metric: 'cappedCpuMsPerRequest', label: 'CPU in the caps, ms per request', digits: 2 },
    { metric: 'hostThrottledShare', label: 'host periods throttled', digits: 2 },
    { metric: 'balancerThrottledShare', label: 'HAProxy periods throttled', digits: 2 },
    { metric: 'machineCores', label: 'machine busy cores', digits: 2 },
    { metric: 'bedCores', label: 'cores of the hosts\' and HAProxy\'s processes', digits: 2 },
    { metric: 'idleHostCores', label: 'idle host\'s cores (no load)', digits: 3 },
  ],
  chart: {
    panels: [
      { metric: 'value', label: 'Throughput against hosts, requests/s', better: 'higher' },
      { metric: 'secondary', label: 'p99 latency against hosts, ms', better: 'lower' },
      { metric: 'machineCpuMsPerRequest', label: 'Machine-wide CPU per request, ms', better: 'lower' },
    ],
    colours: [['none', '#95a5a6'], ['dpr-hash', '#5dade2'], ['dpr-load', '#1f618d'], ['dpr-direct-hash', '#58d68d'], ['dpr-direct-load', '#1e8449'], ['haproxy-capped', '#e67e22'], ['haproxy', '#d35400']],
    lines: { x: 'hosts', xLabel: 'hosts (N)' },
  },
  cpus: ALL_CPUS,
  timeoutMs: 180_000,
  setup(o) {
    const { seconds, warmupSeconds } = scaleOutSize(o);
    return [
      `Hosts: tools/cluster.ts, N = ${SCALE_OUT.hostCounts.join(', ')} hosts (198.18.0.1-N) and a client on one bridge in namespaces. Each runs Debian's nginx (nginx-light 1.22, one worker, sendfile, the SPECweb96 files as real files) and, with dpr, its daemon and rules; both, with every thread, in a cgroup v1 \`cpu\` group of the host's own (bench/cgroup.ts): CFS quota ${SCALE_OUT.cap.quotaUs} µs per ${SCALE_OUT.cap.periodUs} µs period = ${(capShare * 100).toFixed(0)}% of one core. A short period, so a host that spent its share waits at most ${(SCALE_OUT.cap.periodUs - SCALE_OUT.cap.quotaUs) / 1000} ms.`,
      `Why ${(capShare * 100).toFixed(0)}%: 8 capped hosts take ${(8 * capShare).toFixed(2)} of the 2 cores; the client (wrk), the kernel's packet work (softirq, charged to whichever task runs, mostly the sender on veth) and the harness need the rest, measured as "machine busy cores" (the whole machine, others' work on it included); the caps, not the machine, must run out first ("host periods throttled" near 1).`,
      `Workload: bench/wrk/specweb96.lua (SPECweb96 classes, \`Connection: close\`: a new connection per request), N wrk processes (-t1, closed loop, ${SCALE_OUT.connectionsPerHost} connections each): one per host address (no dpr, dpr: balanced arrivals), or all to HAProxy's address. ${seconds} s measured after ${warmupSeconds} s of warm-up.`,
      `HAProxy 2.6 (Debian), mode tcp, balance leastconn, in namespace lb (${SCALE_OUT.front}); capped: the same cgroup quota as a host; uncapped: no group. Both directions of every connection cross it; dpr's replies go from the serving host to the client directly.`,
      'Machine CPU per request: busy time of the whole machine (/proc/stat: user, system, irq, softirq, steal) over the measured run, per request; on a shared machine it includes whatever else runs (see machine busy cores). CPU in the caps: cpuacct usage of the hosts\' groups (and HAProxy\'s, capped), per request. Cores of the hosts\' and HAProxy\'s processes: their /proc/PID/stat over the run (not the client: its wrk processes start and end inside the run). Idle host: what a host\'s cap spent in 2 s with no load, before the warm-up (nginx idles at 0; the rest is the daemon).',
      'Every ratio is to no dpr with the same N (the partition); the goals compare dpr across N and with HAProxy.',
    ];
  },
  prepare() {
    requireTools('scale-out', ['wrk', 'haproxy', 'nginx', 'curl', 'iptables-restore']);
    requireBuilt('scale-out');
    if (!CpuCap.available()) throw new Error('scale-out: the cgroup v1 cpu and cpuacct controllers are not mounted at /sys/fs/cgroup');
  },
  async run(variant, o) {
    const v = scaleOutVariants.find((x) => x.name === variant);
    if (v === undefined) throw new Error(`scale-out: no variant '${variant}'`);
    const s = await runScaleOut(v, scaleOutSize(o));
    return {
      value: s.rps, secondary: s.p99Ms, work: s.requests,
      metrics: {
        hosts: s.hosts, p50Ms: s.p50Ms, errors: s.errors, machineCpuMsPerRequest: s.machineCpuMsPerRequest, cappedCpuMsPerRequest: s.cappedCpuMsPerRequest,
        hostThrottledShare: s.hostThrottledShare, balancerThrottledShare: s.balancerThrottledShare, machineCores: s.machineCores, bedCores: s.bedCores, idleHostCores: s.idleHostCores,
      },
      detail: s,
    };
  },
};

// ---- cpu: machine CPU per request at full load, by mode ----------------

const CPU_ROUTERS: ReadonlyArray<[ScaleRouter, string]> = [
  ['none', 'no dpr: each wrk process dials one host'],
  ['dpr-hash', '`rewrite` mode, hash policy'],
  ['dpr-load', `\`rewrite\` mode, load policy (threshold ${SCALE_OUT.loadThreshold})`],
  ['dpr-direct-hash', '`direct` mode (cluster addresses on a back network), hash policy'],
  ['dpr-direct-load', `\`direct\` mode, load policy (threshold ${SCALE_OUT.loadThreshold})`],
  ['haproxy', 'HAProxy (leastconn) in its own namespace: every wrk process dials it'],
];
const CPU_HOSTS = 4;
const cpuVariants: readonly ScaleOutTrialVariant[] = CPU_ROUTERS.map(([router, what]) => ({
  name: router, router, hosts: CPU_HOSTS, uncapped: true, description: `${CPU_HOSTS} uncapped nginx hosts; ${what}`,
}));

const cpu: Trial = {
  name: 'cpu',
  description: `Machine CPU per request at full load: ${CPU_HOSTS} nginx hosts without caps, SPECweb96-like mix, a new connection per request; dpr in rewrite and direct mode vs no dpr vs HAProxy`,
  unit: 'requests/s',
  secondaryUnit: 'p99 ms',
  variants: cpuVariants,
  baseline: 'none',
  goals: [
    { text: 'dpr-direct-load machine CPU per request vs no dpr', variant: 'dpr-direct-load', metric: 'machineCpuMsPerRequest', kind: 'ratio', versus: 'none', atMost: 1.3 },
    { text: 'dpr-direct-load machine CPU per request vs HAProxy', variant: 'dpr-direct-load', metric: 'machineCpuMsPerRequest', kind: 'ratio', versus: 'haproxy', atMost: 0.5 },
    { text: 'dpr-direct-hash machine CPU per request vs no dpr', variant: 'dpr-direct-hash', metric: 'machineCpuMsPerRequest', kind: 'ratio', versus: 'none', atMost: 1.3 },
  ],
  columns: [
    { metric: 'machineCpuMsPerRequest', label: 'machine CPU ms per request', digits: 3, ratio: true },
    { metric: 'machineCores', label: 'machine busy cores', digits: 2 },
    { metric: 'dprCpuMsPerRequest', label: 'dpr daemons\' CPU ms per request', digits: 3 },
    { metric: 'errors', label: 'errors' },
  ],
  cpus: ALL_CPUS,
  timeoutMs: 180_000,
  setup(o) {
    const { seconds, warmupSeconds } = scaleOutSize(o);
    return [
      `Hosts: tools/cluster.ts, ${CPU_HOSTS} hosts and a client in namespaces, Debian's nginx (one worker, sendfile, the SPECweb96 files) as in scale-out, but with no CPU caps: the machine's two cores are the limit, shared by the client, the hosts, the routers and the kernel. dpr-direct-*: the cluster addresses on a back network (the mode needs one of their own).`,
      `Workload: bench/wrk/specweb96.lua, \`Connection: close\`, ${CPU_HOSTS} wrk processes (-t1, ${SCALE_OUT.connectionsPerHost} connections each), one per host address (HAProxy: all to its address). ${seconds} s measured after ${warmupSeconds} s of warm-up.`,
      'Machine CPU per request: busy time of the whole machine (/proc/stat: user, system, irq, softirq, steal) over the measured run, per request: every process and the kernel, others\' work on a shared machine included (machine busy cores says how much of the two cores was busy). dpr daemons\' CPU: their /proc/PID/stat.',
    ];
  },
  prepare() {
    requireTools('cpu', ['wrk', 'haproxy', 'nginx', 'curl', 'iptables-restore', 'ipset']);
    requireBuilt('cpu');
  },
  async run(variant, o) {
    const v = cpuVariants.find((x) => x.name === variant);
    if (v === undefined) throw new Error(`cpu: no variant '${variant}'`);
    const s = await runScaleOut(v, scaleOutSize(o));
    const perRequest = (seconds: number): number => (seconds * 1000) / Math.max(1, s.requests);
    return {
      value: s.rps, secondary: s.p99Ms, work: s.requests,
      metrics: { machineCpuMsPerRequest: s.machineCpuMsPerRequest, machineCores: s.machineCores, dprCpuMsPerRequest: perRequest(s.cpuSeconds['dpr'] ?? 0), errors: s.errors },
      detail: s,
    };
  },
};

// ---- snapshot: the event loop while the flow table is saved -------------

const SNAPSHOT_FLOWS = 1_000_000;
const snapshotVariants: readonly Variant[] = [
  { name: 'no-snapshot-1M', description: 'the same table and waits without a snapshot: the delay the machine causes anyway' },
  { name: 'export-sync-1M', description: 'the export on the event loop (the daemon before issue 14): the JavaScript thread waits while the queue thread walks the table, then copies the words' },
  { name: 'export-async-1M', description: 'the export waited for on a worker thread (exportFlowsAsync, what lib/flow-snapshots.ts does), the words handed over without a copy' },
];

const snapshot: Trial = {
  name: 'snapshot',
  description: `Event-loop delay while a flow snapshot of ${SNAPSHOT_FLOWS.toLocaleString('en-US')} flows is taken (export and file write, as lib/flow-snapshots.ts does every flows.snapshotMs)`,
  unit: 'ms event-loop delay p99',
  secondaryUnit: 'ms event-loop delay max',
  variants: snapshotVariants,
  baseline: 'export-sync-1M',
  goals: [
    { text: 'event-loop delay p99 during snapshots of 1M flows', variant: 'export-async-1M', metric: 'value', kind: 'absolute', atMost: 5, unit: 'ms' },
    { text: 'event-loop delay p99 during snapshots over none', variant: 'export-async-1M', metric: 'value', kind: 'difference', versus: 'no-snapshot-1M', atMost: 5, unit: 'ms' },
  ],
  columns: [
    { metric: 'flows', label: 'flows' },
    { metric: 'snapshotMs', label: 'one snapshot, ms (median)', digits: 1 },
  ],
  cpus: ALL_CPUS,
  timeoutMs: 180_000,
  setup(o) {
    return [
      `An entry Queue (test/support/queue-driver.ts) alone in a network namespace, ${SNAPSHOT_FLOWS.toLocaleString('en-US')} SYN-only flows imported before it starts (built by an Engine in the bench process); no traffic.`,
      `${o.quick ? 3 : 10} snapshots 100 ms apart, each the export and lib/flow-state.ts's saveFlows (write, fsync, rename) to the temporary directory, while perf_hooks' monitorEventLoopDelay (1 ms resolution) records the event loop's delay from the first to 100 ms after the last.`,
    ];
  },
  prepare() {
    requireBuilt('snapshot');
  },
  async run(variant, o) {
    const mode = variant === 'export-async-1M' ? 'async' : variant === 'export-sync-1M' ? 'sync' : 'none';
    const s = await runSnapshotLag(SNAPSHOT_FLOWS, mode, o.quick ? 3 : 10);
    return { value: s.lagP99Ms, secondary: s.lagMaxMs, work: s.flows, metrics: { flows: s.flows, snapshotMs: s.snapshotMs }, detail: s };
  },
};

export const trials: readonly Trial[] = [datapath, forward, setup, cpu, local, decisionCost, cluster, scale, reliability, scaleOut, attack, snapshot];

export function findTrial(name: string): Trial {
  const t = trials.find((x) => x.name === name);
  if (t === undefined) throw new Error(`no trial '${name}' (have: ${trials.map((x) => x.name).join(', ')})`);
  return t;
}
