// What the cluster trial should give, from a model of its closed loop
// (bench/model/sim.ts): the measured variants, each candidate load policy of
// issue 13, and how the best of them bears stale reports. Deterministic
// (seeded), so its tables are facts a test can hold: test/26.cluster-model
// checks that it explains bench/results/cluster.json and that the tables in
// docs/design-notes.md are its output.
//
//   node dist/bench/cluster-model.js            the tables, as markdown
//   node dist/bench/cluster-model.js --write    also rewrite them in docs/design-notes.md
import fs from 'node:fs';
import path from 'node:path';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { CLUSTER } from './cluster-mix';
import { simulate, type HostSpec, type Knobs, type Policy, type Result, type Scenario } from './model/sim';
import * as P from './model/policies';

const ROOT = path.resolve(__dirname, '..', '..');
export const NOTES = path.join(ROOT, 'docs', 'design-notes.md');
export const RESULTS = path.join(ROOT, 'bench', 'results', 'cluster.json');
export const BEGIN = '<!-- model:begin -->';
export const END = '<!-- model:end -->';

const split = (counts: readonly number[]): number[] => counts.flatMap((n, host) => Array<number>(n).fill(host));
const equal = (n: number): HostSpec[] => Array.from({ length: n }, () => ({ slots: CLUSTER.slots, weight: 1 }));
/** One host (the last) with twice the others' slots, and weight 2. */
const hetero: HostSpec[] = [...equal(CLUSTER.hosts - 1), { slots: 2 * CLUSTER.slots, weight: 2 }];

/**
 * The cluster trial's arrivals, the heterogeneous variants issue 13 asks for
 * (25 connections, 5 per 4 slots as in the trial; skewed 72% to a small host),
 * and harder cases for stale reports: 8 hosts, 4 of them entry for 80% of
 * the connections, so four hosts forward at once and can herd; 32 hosts, 8
 * of them entry for 70%.
 */
export const SCENARIOS = {
  balanced: { hosts: equal(CLUSTER.hosts), entries: split(CLUSTER.balanced) },
  skewed: { hosts: equal(CLUSTER.hosts), entries: split(CLUSTER.skewed) },
  heteroBalanced: { hosts: hetero, entries: split([5, 5, 5, 10]) },
  heteroSkewed: { hosts: hetero, entries: split([18, 2, 2, 3]) },
  heteroEven: { hosts: hetero, entries: split([6, 6, 6, 7]) },
  herdBalanced: { hosts: equal(8), entries: split([5, 5, 5, 5, 5, 5, 5, 5]) },
  herdSkewed: { hosts: equal(8), entries: split([8, 8, 8, 8, 2, 2, 2, 2]) },
  wideBalanced: { hosts: equal(32), entries: split(Array<number>(32).fill(5)), simMs: 60_000 },
  wideSkewed: { hosts: equal(32), entries: split([...Array<number>(8).fill(14), ...Array<number>(24).fill(2)]), simMs: 60_000 },
} satisfies Record<string, Scenario>;
type ScenarioName = keyof typeof SCENARIOS;

/** Each scenario's ratios are taken to its perfectly partitioned form with no routing. */
const IDEAL: Record<ScenarioName, ScenarioName> = {
  balanced: 'balanced', skewed: 'balanced', heteroBalanced: 'heteroBalanced', heteroSkewed: 'heteroBalanced', heteroEven: 'heteroBalanced', herdBalanced: 'herdBalanced', herdSkewed: 'herdBalanced',
  wideBalanced: 'wideBalanced', wideSkewed: 'wideBalanced',
};

/** The bench's heartbeat (tools/cluster.ts): 100 ms. */
const BENCH_KNOBS: Partial<Knobs> = { reportMs: 100 };

/**
 * Today's daemon: estimate = report + sends since; and its reports' identity
 * is their arrival time rounded to 10 ms, read from two clocks, so about one
 * report in ten looks new at some decisions and the sends since are
 * forgotten (measured: 20 of 200 reports took two values within 30 ms).
 */
export const TODAY_KNOBS: Partial<Knobs> = { ...BENCH_KNOBS, estimator: 'sends', flickerShare: 0.1 };

/** The estimate the candidates use: report + sends since − own forwarded connections closed since. */
const NET: Partial<Knobs> = { ...BENCH_KNOBS, estimator: 'net' };

/**
 * The kernel modes: the entry host sees a forwarded flow's SYN only (the
 * kernel routes the rest, FIN included), so its count of open forwards to a
 * peer does not fall when they end, only as their flow entries time out
 * (flows.synTimeoutMs, 10 s later): between two reports it adds what it sent
 * since and subtracts nothing that ended, the 'sends' estimate. (The report
 * alone, were the timeouts to cancel the sends, gives 0.885x on the skew for
 * the measured 0.92x; 'sends' 0.91x.)
 */
const KERNEL: Partial<Knobs> = { ...BENCH_KNOBS, estimator: 'sends' };

export interface Modelled {
  scenario: ScenarioName;
  policy: () => Policy;
  knobs: Partial<Knobs>;
}

/** Each measured variant of the cluster trial, as the model runs it. */
export const MEASURED: Record<string, Modelled> = {
  'no-dpr-skewed': { scenario: 'skewed', policy: () => P.fixed, knobs: {} },
  'dpr-hash-balanced': { scenario: 'balanced', policy: () => P.hash, knobs: {} },
  'dpr-hash-skewed': { scenario: 'skewed', policy: () => P.hash, knobs: {} },
  'dpr-load-balanced': { scenario: 'balanced', policy: () => P.product(CLUSTER.loadThreshold, 0.1), knobs: NET },
  'dpr-load-skewed': { scenario: 'skewed', policy: () => P.product(CLUSTER.loadThreshold, 0.1), knobs: NET },
  'dpr-direct-hash-skewed': { scenario: 'skewed', policy: () => P.hash, knobs: {} },
  'dpr-direct-load-skewed': { scenario: 'skewed', policy: () => P.product(CLUSTER.loadThreshold, 0.1), knobs: KERNEL },
  'dpr-direct-load-balanced': { scenario: 'balanced', policy: () => P.product(CLUSTER.loadThreshold, 0.1), knobs: KERNEL },
  'no-dpr-hetero-ideal': { scenario: 'heteroBalanced', policy: () => P.fixed, knobs: {} },
  'dpr-load-hetero-even': { scenario: 'heteroEven', policy: () => P.product(CLUSTER.loadThreshold, 0.1), knobs: NET },
  'dpr-load-hetero-skewed': { scenario: 'heteroSkewed', policy: () => P.product(CLUSTER.loadThreshold, 0.1), knobs: NET },
  'dpr-hash-hetero-even': { scenario: 'heteroEven', policy: () => P.hash, knobs: {} },
  haproxy: { scenario: 'skewed', policy: () => P.leastconn(), knobs: {} },
  dnat: { scenario: 'skewed', policy: () => P.roundRobin(), knobs: {} },
};

/**
 * The routers' CPU is taken from the hosts' two shared cores: their timers
 * fire late. The model stretches service times by 1 + COST_PER_CORE x (router
 * CPU-seconds per second). The one constant is fitted on dpr-load-balanced
 * (where the policy itself loses nothing) and predicts the other variants.
 */
export const COST_FIT_VARIANT = 'dpr-load-balanced';


interface MeasuredVariant {
  name: string;
  ratio: number;
  secondaryRatio: number;
  median: number;
  metrics: Record<string, { median: number }>;
}

function routerCores(v: MeasuredVariant): number {
  const ms = v.metrics.routerCpuMsPerRequest?.median;
  return ms === undefined ? 0 : (ms * v.median) / 1000;
}

const cache = new Map<string, Result>();
function run(scenario: ScenarioName, policy: Policy, knobs: Partial<Knobs>): Result {
  const key = `${scenario}|${policy.name}|${JSON.stringify(knobs)}`;
  let r = cache.get(key);
  if (r === undefined) {
    r = simulate(SCENARIOS[scenario], policy, knobs);
    cache.set(key, r);
  }
  return r;
}

/** Throughput and p99 against the scenario's ideal. */
export function ratios(m: Modelled, extra: Partial<Knobs> = {}, versus: ScenarioName = IDEAL[m.scenario]): { rps: number; p99: number; result: Result } {
  const ideal = run(versus, P.fixed, {});
  const result = run(m.scenario, m.policy(), { ...m.knobs, ...extra });
  return { rps: result.rps / ideal.rps, p99: result.p99Ms / ideal.p99Ms, result };
}

export interface Explained {
  variant: string;
  measured: number;
  measuredP99: number;
  free: number;
  withCost: number;
  p99: number;
  cores: number;
}

/**
 * Variants the model does not explain within the tolerance, with the gap
 * the model leaves: it is optimistic for them by at most this much. None
 * since the run of 2026-12-04 on a quiet machine; the skewed and the
 * heterogeneous load variants were here before (docs/design-notes.md,
 * "Load decisions in the data path", says what was known then).
 */
export const UNEXPLAINED: Record<string, { rps: number; p99: number }> = {};

/** The model beside each measured variant of the cluster trial. */
export function explainMeasured(variants: readonly MeasuredVariant[]): { costPerCore: number; rows: Explained[] } {
  const fit = variants.find((v) => v.name === COST_FIT_VARIANT);
  if (fit === undefined) throw new Error(`cluster-model: ${COST_FIT_VARIANT} is not in the results`);
  const free = ratios(MEASURED[COST_FIT_VARIANT]!, {}, 'balanced').rps;
  const costPerCore = (free / fit.ratio - 1) / routerCores(fit);
  const rows = variants.flatMap((v): Explained[] => {
    const m = MEASURED[v.name];
    if (m === undefined) return [];
    const cores = routerCores(v);
    // The trial's ratios are all to its balanced cluster (no-dpr-balanced), the heterogeneous variants' too.
    const priced = ratios(m, { serviceScale: 1 + costPerCore * cores }, 'balanced');
    return [{ variant: v.name, measured: v.ratio, measuredP99: v.secondaryRatio, free: ratios(m, {}, 'balanced').rps, withCost: priced.rps, p99: priced.p99, cores }];
  });
  return { costPerCore, rows };
}

/** The candidates of issue 13 (item 1), at the bench's 100 ms reports. */
export function candidates(): Array<{ name: string; policy: () => Policy; knobs: Partial<Knobs> }> {
  const t = CLUSTER.loadThreshold;
  return [
    { name: 'no dpr', policy: () => P.fixed, knobs: {} },
    { name: 'hash (weighted Maglev)', policy: () => P.hash, knobs: {} },
    { name: 'HAProxy leastconn (exact, central)', policy: () => P.leastconn(), knobs: {} },
    { name: `today: least peer if own − peer > ${t}, sends since`, policy: () => P.today(t), knobs: TODAY_KNOBS },
    { name: `today's rule, estimate net of closes`, policy: () => P.today(t), knobs: NET },
    { name: 'local ≤ mean, else least peer (net)', policy: () => P.meanThenLeast(0), knobs: NET },
    { name: 'local ≤ mean x 1.1, else least peer (net)', policy: () => P.meanThenLeast(0.1), knobs: NET },
    { name: 'local ≤ mean x 1.1, else two choices (sends since)', policy: () => P.meanThenTwo(0.1), knobs: { ...BENCH_KNOBS, estimator: 'sends' } },
    { name: 'local ≤ mean, else two choices (net)', policy: () => P.meanThenTwo(0), knobs: NET },
    { name: 'local ≤ mean x 1.25, else two choices (net)', policy: () => P.meanThenTwo(0.25), knobs: NET },
    { name: 'two choices always (net)', policy: () => P.twoAlways, knobs: NET },
    { name: 'idle tokens to 1 peer (JIQ)', policy: () => P.joinIdleQueue(1), knobs: NET },
    { name: 'idle tokens to 2 peers', policy: () => P.joinIdleQueue(2), knobs: NET },
    { name: 'hash, bounce once above mean x 1.1', policy: () => P.withBounce(P.hash, 0.1), knobs: NET },
    { name: '**recommended: local ≤ mean x 1.1, else two choices (net)**', policy: RECOMMENDED, knobs: NET },
    { name: 'recommended, and a serving host above mean x 1.1 bounces a forwarded SYN once', policy: () => P.withBounce(RECOMMENDED(), 0.1), knobs: NET },
    { name: `as built (native/load_choice.h): recommended, ${t} per weight kept at any load, a move must even out`, policy: () => P.product(t, 0.1), knobs: NET },
  ];
}

/** The policy docs/design-notes.md recommends. */
export function RECOMMENDED(): Policy {
  return P.meanThenTwo(0.1);
}

const CANDIDATE_SCENARIOS: ScenarioName[] = ['skewed', 'balanced', 'heteroSkewed', 'heteroBalanced', 'herdSkewed', 'herdBalanced'];

const fmt = (x: number): string => x.toFixed(2);

/** A table of the section: its header lines, and one function per row (each runs its own simulations). */
interface Table {
  head: string[];
  rows: Array<() => string>;
}

function candidateTable(): Table {
  const head = CANDIDATE_SCENARIOS.map((s) => `${s} (p99)`);
  const rows = candidates().map((c) => (): string => {
    const cells = CANDIDATE_SCENARIOS.map((s) => {
      const r = ratios({ scenario: s, policy: c.policy, knobs: c.knobs });
      return `${fmt(r.rps)} (${fmt(r.p99)})`;
    });
    const fwd = ratios({ scenario: 'skewed', policy: c.policy, knobs: c.knobs }).result.forwardedShare;
    return `| ${c.name} | ${cells.join(' | ')} | ${fmt(fwd)} |`;
  });
  return { head: [`| policy | ${head.join(' | ')} | forwarded, skewed |`, `|---|${head.map(() => '---:|').join('')}---:|`], rows };
}

/** The recommended policy (and today's) as reports get rarer, older, or come on change. */
function stalenessTable(): Table {
  const cases: Array<[string, Partial<Knobs>]> = [
    ...[10, 100, 250, 500, 1000].map((ms): [string, Partial<Knobs>] => [`every ${ms} ms`, { reportMs: ms }]),
    ['every 100 ms, 50 ms old on arrival', { reportMs: 100, reportAgeMs: 50 }],
    ['every 500 ms, 100 ms old on arrival', { reportMs: 500, reportAgeMs: 100 }],
    ['on change, at most every 10 ms (and every 100 ms)', { reportMode: 'change', minGapMs: 10, reportMs: 100 }],
    ['on change, at most every 50 ms (and every 500 ms)', { reportMode: 'change', minGapMs: 50, reportMs: 500 }],
  ];
  const scen: ScenarioName[] = ['skewed', 'herdSkewed', 'herdBalanced'];
  const head = [
    `| reports | ${scen.map((s) => `recommended, ${s} (p99)`).join(' | ')} | + bounce once, herdSkewed (p99) | today, herdSkewed (p99) | reports per host per second (each to every peer) |`,
    `|---|${scen.map(() => '---:|').join('')}---:|---:|---:|`,
  ];
  const rows = cases.map(([name, knobs]) => (): string => {
    const cells = scen.map((s) => {
      const r = ratios({ scenario: s, policy: RECOMMENDED, knobs: { ...NET, ...knobs } });
      return `${fmt(r.rps)} (${fmt(r.p99)})`;
    });
    const bounce = ratios({ scenario: 'herdSkewed', policy: () => P.withBounce(RECOMMENDED(), 0.1), knobs: { ...NET, ...knobs } });
    const today = ratios({ scenario: 'herdSkewed', policy: () => P.today(CLUSTER.loadThreshold), knobs: { ...TODAY_KNOBS, ...knobs } });
    const sent = ratios({ scenario: 'herdSkewed', policy: RECOMMENDED, knobs: { ...NET, ...knobs } }).result.reportsPerHostPerSecond;
    return `| ${name} | ${cells.join(' | ')} | ${fmt(bounce.rps)} (${fmt(bounce.p99)}) | ${fmt(today.rps)} (${fmt(today.p99)}) | ${sent.toFixed(0)} |`;
  });
  return { head, rows };
}

/** Report schemes for a bigger cluster: all-to-all at several intervals, or sampled peers (docs/peers.md). */
export const REPORT_SCHEMES: Array<[string, Partial<Knobs>]> = [
  ['all-to-all every 100 ms (dpr up to 9 hosts, at the bench\'s interval)', { reportMs: 100 }],
  ['all-to-all every 500 ms', { reportMs: 500 }],
  ['all-to-all every 1000 ms', { reportMs: 1000 }],
  ['8 sampled peers every 100 ms, all every 1000 ms', { reportMs: 100, sample: 8, slowMs: 1000 }],
  ['8 watched peers on a fixed ring every 100 ms, all every 1000 ms (built: docs/peers.md)', { reportMs: 100, sample: 8, slowMs: 1000, sampling: 'ring' }],
  ['4 sampled peers every 100 ms, all every 1000 ms', { reportMs: 100, sample: 4, slowMs: 1000 }],
];

function wideTable(): Table {
  const head = [
    '| reports | recommended, wideSkewed (p99) | + bounce once (p99) | recommended, wideBalanced (p99) | report datagrams in per host per second |',
    '|---|---:|---:|---:|---:|',
  ];
  const rows = REPORT_SCHEMES.map(([name, knobs]) => (): string => {
    const k = { ...NET, ...knobs };
    const a = ratios({ scenario: 'wideSkewed', policy: RECOMMENDED, knobs: k });
    const b = ratios({ scenario: 'wideSkewed', policy: () => P.withBounce(RECOMMENDED(), 0.1), knobs: k });
    const c = ratios({ scenario: 'wideBalanced', policy: RECOMMENDED, knobs: k });
    return `| ${name} | ${fmt(a.rps)} (${fmt(a.p99)}) | ${fmt(b.rps)} (${fmt(b.p99)}) | ${fmt(c.rps)} (${fmt(c.p99)}) | ${a.result.reportsInPerHostPerSecond.toFixed(0)} |`;
  });
  return { head, rows };
}

function measuredTable(variants: readonly MeasuredVariant[]): string[] {
  const { costPerCore, rows } = explainMeasured(variants);
  const lines = [
    '| variant | measured | model, routing free | model + router CPU | router cores | measured p99 | model p99 |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.variant} | ${fmt(r.measured)} | ${fmt(r.free)} | ${fmt(r.withCost)} | ${fmt(r.cores)} | ${fmt(r.measuredP99)} | ${fmt(r.p99)} |`),
    '',
    `Router CPU stretches service times by ${(costPerCore * 100).toFixed(1)}% per core it takes (fitted on ${COST_FIT_VARIANT}; the other rows are predictions).${Object.keys(UNEXPLAINED).length ? ` Not explained: ${Object.keys(UNEXPLAINED).join(', ')} (the model is optimistic there; see below).` : ' Every row is within 0.03 of what was measured.'}`,
  ];
  return lines;
}

export function readMeasured(file = RESULTS): MeasuredVariant[] {
  return (JSON.parse(fs.readFileSync(file, 'utf8')) as { variants: MeasuredVariant[] }).variants;
}

/** The section's tables that need no measured results, in their order. */
const modelTables = (): Table[] => [candidateTable(), stalenessTable(), wideTable()];

function assemble(variants: readonly MeasuredVariant[], rows: readonly string[]): string {
  const tables = modelTables();
  let next = 0;
  const [candidateLines, stalenessLines, wideLines] = tables.map((t) => [...t.head, ...rows.slice(next, (next += t.rows.length))]);
  return [
    BEGIN,
    '<!-- generated by `node dist/bench/cluster-model.js --write` from bench/cluster-model.ts and bench/results/cluster.json -->',
    '',
    'The measured cluster trial (bench/results/cluster.json, throughput vs no-dpr-balanced) beside the model:',
    '',
    ...measuredTable(variants),
    '',
    'Each candidate in the model, throughput vs the scenario\'s ideal (p99 vs the ideal\'s in brackets), reports every 100 ms:',
    '',
    ...candidateLines!,
    '',
    'The recommended policy as reports get rarer or older (today\'s policy beside it):',
    '',
    ...stalenessLines!,
    '',
    'At 32 hosts, 8 of them entry for 70% of the connections (4 slots each, 160 connections), by report scheme:',
    '',
    ...wideLines!,
    END,
  ].join('\n');
}

/** Every row of the model tables, in order; `share` picks the ones to compute ([row, text] pairs). */
function modelRows(share: (row: number) => boolean): Array<[number, string]> {
  return modelTables()
    .flatMap((t) => t.rows)
    .flatMap((row, i): Array<[number, string]> => (share(i) ? [[i, row()]] : []));
}

/**
 * The generated part of docs/design-notes.md, with the odd rows simulated on a second thread (rows differ
 * in cost; alternate ones share it about evenly). The model is deterministic:
 * the threads change nothing but the time.
 */
export async function sectionInParallel(variants: readonly MeasuredVariant[] = readMeasured()): Promise<string> {
  const worker = new Worker(__filename, { workerData: { clusterModelRows: 'odd' } });
  const fromWorker = new Promise<Array<[number, string]>>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`cluster-model: the worker thread exited (${code}) before sending its rows`)));
  });
  const here = modelRows((i) => i % 2 === 0);
  const rows: string[] = [];
  for (const [i, text] of [...here, ...(await fromWorker)]) rows[i] = text;
  return assemble(variants, rows);
}

if (!isMainThread && parentPort && (workerData as { clusterModelRows?: string } | null)?.clusterModelRows === 'odd') {
  parentPort.postMessage(modelRows((i) => i % 2 === 1));
}

export function replaceSection(text: string, generated: string): string {
  const a = text.indexOf(BEGIN);
  const b = text.indexOf(END);
  if (a < 0 || b < a) throw new Error(`cluster-model: ${NOTES} lacks ${BEGIN} ... ${END}`);
  return text.slice(0, a) + generated + text.slice(b + END.length);
}

export function readSection(text: string): string | null {
  const a = text.indexOf(BEGIN);
  const b = text.indexOf(END);
  return a < 0 || b < a ? null : text.slice(a, b + END.length);
}

if (require.main === module && isMainThread) {
  void sectionInParallel().then((generated) => {
    process.stdout.write(`${generated}\n`);
    if (process.argv.includes('--write')) {
      fs.writeFileSync(NOTES, replaceSection(fs.readFileSync(NOTES, 'utf8'), generated));
      process.stderr.write(`cluster-model: wrote the tables into ${NOTES}\n`);
    }
  });
}
