// Summaries and the printed form of a trial's results: medians with their
// range, each variant's ratio to its baseline, the goals and how far each is
// met or missed, the machine they came from.
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { median } from './stats';
import type { Column, Goal, Measurement, Trial } from './types';

export { median };

export interface Machine {
  cpu: string;
  cores: number;
  kernel: string;
  node: string;
  loadAvg: number[];
  date: string;
}

export interface Spread {
  median: number;
  min: number;
  max: number;
}

export interface VariantSummary {
  name: string;
  description: string;
  /** The variant the ratios are taken to; null when it has none. */
  baseline: string | null;
  unit: string;
  secondaryUnit: string;
  median: number;
  min: number;
  max: number;
  workMedian: number;
  /** median / baseline median */
  ratio: number;
  /** median − baseline median */
  difference: number;
  secondaryMedian: number;
  secondaryRatio: number;
  /** Ratios to the baseline within the same repetition (variants run interleaved, so they shared conditions). */
  pairedRatios: number[];
  values: number[];
  metrics: Record<string, Spread>;
  /** Each metric's median over the baseline's. */
  metricRatios: Record<string, number>;
}

export interface GoalResult extends Goal {
  /** The ratio, difference or number the goal is about (medians); NaN when a variant did not run. */
  actual: number;
  met: boolean;
  /** How far from the goal, in its own terms ("short by 0.04x (4%)"); empty when met. */
  miss: string;
}

export interface TrialReport {
  trial: string;
  description: string;
  unit: string;
  secondaryUnit: string;
  baseline: string;
  goals: GoalResult[];
  columns: Column[];
  showDifference: boolean;
  reps: number;
  quick: boolean;
  machine: Machine;
  setup: string[];
  variants: VariantSummary[];
  runs: { rep: number; variant: string; measurement: Measurement }[];
  /** Repetitions that failed once and were run again (their error). */
  retries?: { rep: number; variant: string; error: string }[];
}

export function describeMachine(): Machine {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? os.cpus()[0]?.model ?? 'unknown';
  return {
    cpu: model.trim(),
    cores: os.cpus().length,
    kernel: os.release(),
    node: process.version,
    loadAvg: os.loadavg().map((l) => Math.round(l * 100) / 100),
    date: new Date().toISOString(),
  };
}

type Runs = TrialReport['runs'];

function spread(xs: number[]): Spread {
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs) };
}

function metricSpreads(mine: Runs): Record<string, Spread> {
  const names = new Set(mine.flatMap((r) => Object.keys(r.measurement.metrics ?? {})));
  const out: Record<string, Spread> = {};
  for (const n of names) {
    const xs = mine.map((r) => r.measurement.metrics?.[n]).filter((x): x is number => typeof x === 'number');
    if (xs.length) out[n] = spread(xs);
  }
  return out;
}

function summarizeVariant(trial: Trial, v: Trial['variants'][number], runs: Runs): VariantSummary {
  const of = (name: string) => runs.filter((r) => r.variant === name);
  const baseline = v.baseline === undefined ? trial.baseline : v.baseline;
  const baseRuns = baseline === null ? [] : of(baseline);
  const base = baseRuns.length ? median(baseRuns.map((r) => r.measurement.value)) : NaN;
  const base2 = baseRuns.length ? median(baseRuns.map((r) => r.measurement.secondary)) : NaN;
  const mine = of(v.name);
  const values = mine.map((r) => r.measurement.value);
  const secondary = median(mine.map((r) => r.measurement.secondary));
  const metrics = metricSpreads(mine);
  const baseMetrics = metricSpreads(baseRuns);
  const metricRatios: Record<string, number> = {};
  for (const [k, s] of Object.entries(metrics)) {
    const b = baseMetrics[k]?.median;
    if (b !== undefined && b !== 0) metricRatios[k] = s.median / b;
  }
  const pairedRatios = mine.flatMap((r) => {
    const b = baseRuns.find((x) => x.rep === r.rep);
    return b && b.measurement.value > 0 ? [r.measurement.value / b.measurement.value] : [];
  });
  return {
    name: v.name,
    description: v.description,
    baseline,
    unit: v.unit ?? trial.unit,
    secondaryUnit: v.secondaryUnit ?? trial.secondaryUnit,
    median: median(values),
    min: Math.min(...values),
    max: Math.max(...values),
    workMedian: median(mine.map((r) => r.measurement.work)),
    ratio: base > 0 ? median(values) / base : NaN,
    difference: baseRuns.length ? median(values) - base : NaN,
    secondaryMedian: secondary,
    secondaryRatio: base2 > 0 ? secondary / base2 : NaN,
    pairedRatios,
    values,
    metrics,
    metricRatios,
  };
}

export function summarize(trial: Trial, runs: Runs): VariantSummary[] {
  return trial.variants.filter((v) => runs.some((r) => r.variant === v.name)).map((v) => summarizeVariant(trial, v, runs));
}

function metricOf(v: VariantSummary | undefined, metric: string): number {
  if (v === undefined) return NaN;
  if (metric === 'value') return v.median;
  if (metric === 'secondary') return v.secondaryMedian;
  return v.metrics[metric]?.median ?? NaN;
}

export function num(n: number): string {
  if (!Number.isFinite(n)) return 'n/a';
  const a = Math.abs(n);
  if (a >= 1000) return Math.round(n).toLocaleString('en-US');
  if (a >= 100) return n.toFixed(0);
  if (a >= 10) return n.toFixed(1);
  return n.toFixed(2);
}

const ratio = (n: number) => (Number.isFinite(n) ? `${n.toFixed(2)}x` : 'n/a');
const signed = (n: number) => (Number.isFinite(n) ? `${n >= 0 ? '+' : ''}${num(n)}` : 'n/a');

function goalText(g: Goal, actual: number): string {
  if (g.kind === 'ratio') return ratio(actual);
  if (g.kind === 'difference') return `${signed(actual)} ${g.unit ?? ''}`.trim();
  return `${num(actual)} ${g.unit ?? ''}`.trim();
}

function missText(g: Goal, actual: number): string {
  const unit = g.kind === 'ratio' ? 'x' : ` ${g.unit ?? ''}`.trimEnd();
  if (g.atLeast !== undefined && actual < g.atLeast) {
    const rel = g.atLeast !== 0 ? ` (${((1 - actual / g.atLeast) * 100).toFixed(1)}% short)` : '';
    return `short by ${num(g.atLeast - actual)}${unit}${rel}`;
  }
  if (g.atMost !== undefined && actual > g.atMost) {
    const rel = g.atMost > 0 ? ` (${(actual / g.atMost).toFixed(2)}x the limit)` : '';
    return `over by ${num(actual - g.atMost)}${unit}${rel}`;
  }
  return '';
}

export function evaluateGoals(goals: readonly Goal[], variants: VariantSummary[]): GoalResult[] {
  const find = (name: string | undefined) => variants.find((v) => v.name === name);
  return goals.map((g) => {
    const mine = metricOf(find(g.variant), g.metric);
    const other = metricOf(find(g.versus), g.metric);
    const actual = g.kind === 'ratio' ? mine / other : g.kind === 'difference' ? mine - other : mine;
    const met = Number.isFinite(actual) && (g.atLeast === undefined || actual >= g.atLeast) && (g.atMost === undefined || actual <= g.atMost);
    return { ...g, actual, met, miss: Number.isFinite(actual) ? missText(g, actual) : 'not measured' };
  });
}

function bound(g: Goal): string {
  const unit = g.kind === 'ratio' ? 'x' : ` ${g.unit ?? ''}`.trimEnd();
  const parts = [];
  if (g.atLeast !== undefined) parts.push(`≥ ${g.atLeast}${unit}`);
  if (g.atMost !== undefined) parts.push(`≤ ${g.atMost}${unit}`);
  return parts.join(', ');
}

export function goalLine(g: GoalResult): string {
  const verdict = g.met ? 'met' : `**NOT met**, ${g.miss}`;
  return `${g.text}: **${goalText(g, g.actual)}** (goal ${bound(g)}): ${verdict}`;
}

function table(r: TrialReport): string[] {
  const uniform = r.variants.every((v) => v.unit === r.unit && v.secondaryUnit === r.secondaryUnit);
  const [u1, u2] = uniform ? [r.unit, r.secondaryUnit] : ['value', 'second value'];
  const head = [`variant`, `${u1} (median)`, 'min – max', '**vs baseline**', 'same-rep ratios'];
  if (r.showDifference) head.push('minus baseline');
  head.push(`${u2} (median)`, 'vs baseline');
  for (const c of r.columns) head.push(c.label, ...(c.ratio ? ['vs baseline'] : []));
  const rows = [`| ${head.join(' | ')} |`, `|---|${head.slice(1).map(() => '---:').join('|')}|`];
  for (const v of r.variants) {
    const [s1, s2] = uniform ? ['', ''] : [` ${v.unit}`, ` ${v.secondaryUnit}`];
    const paired = v.pairedRatios.length ? `${ratio(Math.min(...v.pairedRatios))} – ${ratio(Math.max(...v.pairedRatios))}` : '';
    const base = v.baseline === null ? '' : ` (${v.baseline})`;
    const cells = [v.name, `${num(v.median)}${s1}`, `${num(v.min)} – ${num(v.max)}`, v.baseline === null ? '' : `**${ratio(v.ratio)}**${base}`, paired];
    if (r.showDifference) cells.push(v.baseline === null ? '' : signed(v.difference));
    cells.push(`${num(v.secondaryMedian)}${s2}`, v.baseline === null ? '' : ratio(v.secondaryRatio));
    for (const c of r.columns) {
      const m = v.metrics[c.metric];
      cells.push(m ? (c.digits !== undefined ? m.median.toFixed(c.digits) : num(m.median)) : '');
      if (c.ratio) cells.push(v.metricRatios[c.metric] !== undefined ? ratio(v.metricRatios[c.metric]!) : '');
    }
    rows.push(`| ${cells.join(' | ')} |`);
  }
  return rows;
}

export function machineLine(m: Machine): string {
  return `${m.cpu}, ${m.cores} cores, kernel ${m.kernel}, node ${m.node}, load average at start ${m.loadAvg.join(' ')}, ${m.date}`;
}

export function markdown(r: TrialReport): string {
  const goals = r.goals.length ? ['## Goals', '', ...r.goals.map((g) => `- ${goalLine(g)}`), ''] : [];
  return [
    `# ${r.trial}${r.quick ? ' (quick)' : ''}`,
    '',
    r.description,
    '',
    ...goals,
    ...table(r),
    '',
    `${r.reps} repetitions per variant, interleaved, each in a fresh process. Ratios are medians over the baseline's median; same-rep ratios pair each repetition with the baseline's run in the same round.`,
    '',
    ...(r.retries?.length ? [`Repetitions run again after a failure: ${r.retries.map((x) => `${x.variant} (rep ${x.rep}: ${x.error})`).join('; ')}.`, ''] : []),
    '| variant | what it is |',
    '|---|---|',
    ...r.variants.map((v) => `| ${v.name} | ${v.description} |`),
    '',
    '## Set-up',
    '',
    ...r.setup.map((s) => `- ${s}`),
    '',
    '## Machine',
    '',
    `${machineLine(r.machine)}.`,
    '',
  ].join('\n');
}
