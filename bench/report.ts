// Summaries and the printed form of a trial's results: medians with their
// range, each variant's ratio to the baseline, the machine they came from.
import { readFileSync } from 'node:fs';
import os from 'node:os';
import type { Measurement, Trial } from './trials';

export interface Machine {
  cpu: string;
  cores: number;
  kernel: string;
  node: string;
  loadAvg: number[];
  date: string;
}

export interface VariantSummary {
  name: string;
  description: string;
  median: number;
  min: number;
  max: number;
  workMedian: number;
  /** median / baseline median */
  ratio: number;
  secondaryMedian: number;
  secondaryRatio: number;
  /** Ratios to the baseline within the same repetition (variants run interleaved, so they shared conditions). */
  pairedRatios: number[];
  values: number[];
}

export interface TrialReport {
  trial: string;
  description: string;
  unit: string;
  secondaryUnit: string;
  baseline: string;
  goal: NonNullable<Trial['goal']> | null;
  reps: number;
  quick: boolean;
  machine: Machine;
  setup: string[];
  variants: VariantSummary[];
  runs: { rep: number; variant: string; measurement: Measurement }[];
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

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function summarize(trial: Trial, runs: TrialReport['runs']): VariantSummary[] {
  const of = (name: string) => runs.filter((r) => r.variant === name);
  const base = median(of(trial.baseline).map((r) => r.measurement.value));
  const base2 = median(of(trial.baseline).map((r) => r.measurement.secondary));
  return trial.variants
    .filter((v) => of(v.name).length > 0)
    .map((v) => {
      const mine = of(v.name);
      const values = mine.map((r) => r.measurement.value);
      const pairedRatios = mine.flatMap((r) => {
        const b = runs.find((x) => x.rep === r.rep && x.variant === trial.baseline);
        return b && b.measurement.value > 0 ? [r.measurement.value / b.measurement.value] : [];
      });
      return {
        name: v.name,
        description: v.description,
        median: median(values),
        min: Math.min(...values),
        max: Math.max(...values),
        workMedian: median(mine.map((r) => r.measurement.work)),
        ratio: base > 0 ? median(values) / base : NaN,
        secondaryMedian: median(mine.map((r) => r.measurement.secondary)),
        secondaryRatio: base2 > 0 ? median(mine.map((r) => r.measurement.secondary)) / base2 : NaN,
        pairedRatios,
        values,
      };
    });
}

const int = (n: number) => Math.round(n).toLocaleString('en-US');
const ratio = (n: number) => (Number.isFinite(n) ? `${n.toFixed(2)}x` : 'n/a');

function table(r: TrialReport): string[] {
  const rows = [
    `| variant | ${r.unit} (median) | min – max | **vs ${r.baseline}** | same-rep ratios | ${r.secondaryUnit} (median) | vs ${r.baseline} |`,
    '|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const v of r.variants) {
    const paired = v.pairedRatios.length ? `${ratio(Math.min(...v.pairedRatios))} – ${ratio(Math.max(...v.pairedRatios))}` : '';
    rows.push(`| ${v.name} | ${int(v.median)} | ${int(v.min)} – ${int(v.max)} | **${ratio(v.ratio)}** | ${paired} | ${int(v.secondaryMedian)} | ${ratio(v.secondaryRatio)} |`);
  }
  return rows;
}

function verdict(r: TrialReport): string[] {
  if (r.goal === null) return [];
  const goal = r.goal;
  const v = r.variants.find((x) => x.name === goal.variant);
  if (v === undefined) return [];
  const met = v.ratio >= goal.atLeast;
  return [`**${v.name} / ${r.baseline} = ${ratio(v.ratio)}** (goal ≥ ${goal.atLeast}x: ${met ? 'met' : 'NOT met'})`, ''];
}

export function markdown(r: TrialReport): string {
  const m = r.machine;
  return [
    `# ${r.trial}${r.quick ? ' (quick)' : ''}`,
    '',
    r.description,
    '',
    ...verdict(r),
    ...table(r),
    '',
    `${r.reps} repetitions per variant, interleaved, each in a fresh process.`,
    '',
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
    `${m.cpu}, ${m.cores} cores, kernel ${m.kernel}, node ${m.node}, load average at start ${m.loadAvg.join(' ')}, ${m.date}.`,
    '',
  ].join('\n');
}
