// The bench runner: `npm run bench -- [TRIAL...] [--quick] [--reps N]`; no
// trial named runs them all. Runs every repetition of every variant in a
// fresh child process, variants interleaved within a repetition so they share
// whatever else the machine is doing, then prints a markdown table with each
// variant's ratio to its baseline and the goals, and writes
// bench/results/TRIAL.json, TRIAL.md and, for trials with a chart, TRIAL.svg.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describeMachine, evaluateGoals, markdown, num, summarize, type TrialReport } from './report';
import { barChart } from './svg';
import { lineChart } from './svg-lines';
import { HARNESS_CPU, findTrial, trials, type Measurement, type Trial } from './trials';

interface Args {
  trials: Trial[];
  quick: boolean;
  reps: number;
  variants: string[] | null;
}

const ROOT = path.resolve(__dirname, '..', '..');
const CHILD = path.join(__dirname, 'child.js');
const USAGE = `usage: npm run bench -- [TRIAL...] [--quick] [--reps N] [--variants a,b]  (trials: ${trials.map((t) => t.name).join(', ')}; none: all)`;

function parseArgs(argv: string[]): Args {
  const names: string[] = [];
  let quick = false;
  let reps: number | null = null;
  let variants: string[] | null = null;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--quick') quick = true;
    else if (a === '--reps' && /^\d+$/.test(argv[i + 1] ?? '') && Number(argv[i + 1]) >= 1) reps = Number(argv[++i]);
    else if (a === '--variants' && argv[i + 1]) variants = argv[++i]!.split(',');
    else if (!a.startsWith('-')) names.push(a);
    else throw new Error(USAGE);
  }
  return { trials: names.length ? names.map(findTrial) : [...trials], quick, reps: reps ?? (quick ? 2 : 5), variants };
}

function runChild(trial: Trial, variant: string, quick: boolean): Measurement {
  // The harness stays off the core the measured consumer is pinned to;
  // trials that run whole clusters ask for every core.
  const argv = ['-c', trial.cpus ?? HARNESS_CPU, process.execPath, CHILD, trial.name, variant, ...(quick ? ['--quick'] : [])];
  try {
    // SIGINT on timeout: the child turns it into an exit that removes its namespaces.
    const out = execFileSync('taskset', argv, {
      encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: trial.timeoutMs ?? 60_000, killSignal: 'SIGINT', maxBuffer: 64 << 20,
    });
    return JSON.parse(out.trim().split('\n').pop()!) as Measurement;
  } catch (err) {
    throw new Error(`${trial.name}/${variant} failed: ${(err as Error).message}`);
  }
}

// A repetition that fails is tried again once, after a pause: on a shared
// machine the addon or dist/ may be rebuilt under a long run. The retry is
// recorded in the results; a second failure ends the trial.
const RETRY_PAUSE_MS = 30_000;

function runWithRetry(trial: Trial, variant: string, rep: number, quick: boolean, retries: NonNullable<TrialReport['retries']>): Measurement {
  try {
    return runChild(trial, variant, quick);
  } catch (err) {
    const error = (err as Error).message.split('\n')[0]!.slice(0, 300);
    retries.push({ rep, variant, error });
    process.stderr.write(`${trial.name} rep ${rep} ${variant}: failed, trying once more in ${RETRY_PAUSE_MS / 1000} s (${error})\n`);
    execFileSync('sleep', [String(RETRY_PAUSE_MS / 1000)]);
    return runChild(trial, variant, quick);
  }
}

function runTrial(trial: Trial, args: Args): TrialReport {
  const machine = describeMachine();
  trial.prepare?.();
  const variants = trial.variants.filter((v) => args.variants === null || args.variants.includes(v.name));
  const runs: TrialReport['runs'] = [];
  const retries: NonNullable<TrialReport['retries']> = [];
  for (let rep = 1; rep <= args.reps; rep++) {
    for (const v of variants) {
      const measurement = runWithRetry(trial, v.name, rep, args.quick, retries);
      runs.push({ rep, variant: v.name, measurement });
      process.stderr.write(`${trial.name} rep ${rep}/${args.reps} ${v.name}: ${num(measurement.value)} ${v.unit ?? trial.unit}, ` +
        `${num(measurement.secondary)} ${v.secondaryUnit ?? trial.secondaryUnit} (over ${num(measurement.work)})\n`);
    }
  }
  const summaries = summarize(trial, runs);
  return {
    trial: trial.name,
    description: trial.description,
    unit: trial.unit,
    secondaryUnit: trial.secondaryUnit,
    baseline: trial.baseline,
    goals: evaluateGoals(trial.goals ?? [], summaries),
    columns: [...(trial.columns ?? [])],
    showDifference: trial.showDifference ?? false,
    reps: args.reps,
    quick: args.quick,
    machine,
    setup: trial.setup({ quick: args.quick }),
    variants: summaries,
    runs,
    retries,
  };
}

function save(trial: Trial, report: TrialReport, text: string): void {
  const dir = path.join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const base = report.quick ? `${report.trial}.quick` : report.trial;
  writeFileSync(path.join(dir, `${base}.json`), `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(path.join(dir, `${base}.md`), text);
  const files = [`${base}.json`, `${base}.md`];
  if (trial.chart) {
    writeFileSync(path.join(dir, `${base}.svg`), trial.chart.lines ? lineChart(report, trial.chart) : barChart(report, trial.chart));
    files.push(`${base}.svg`);
  }
  process.stderr.write(`wrote bench/results/${files.join(', ')}\n`);
}

function main(): void {
  const args = parseArgs(process.argv.slice(2));
  if (process.getuid?.() !== 0) throw new Error('bench: the namespace benches need root (CAP_NET_ADMIN)');
  for (const trial of args.trials) {
    const report = runTrial(trial, args);
    const text = markdown(report);
    process.stdout.write(`${text}\n`);
    save(trial, report, text);
  }
}

try {
  main();
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exitCode = 1;
}
