// The bench runner: `npm run bench -- TRIAL... [--quick] [--reps N]`.
// Runs every repetition of every variant in a fresh child process, variants
// interleaved within a repetition so they share whatever else the machine is
// doing, then prints a markdown table with each variant's ratio to the
// baseline and writes bench/results/TRIAL.json and TRIAL.md.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describeMachine, markdown, summarize, type TrialReport } from './report';
import { HARNESS_CPU, findTrial, trials, type Measurement, type Trial } from './trials';

interface Args {
  trials: Trial[];
  quick: boolean;
  reps: number;
  variants: string[] | null;
}

const ROOT = path.resolve(__dirname, '..', '..');
const CHILD = path.join(__dirname, 'child.js');
const USAGE = `usage: npm run bench -- TRIAL... [--quick] [--reps N] [--variants a,b]  (trials: ${trials.map((t) => t.name).join(', ')})`;

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
  if (names.length === 0) throw new Error(USAGE);
  return { trials: names.map(findTrial), quick, reps: reps ?? (quick ? 2 : 5), variants };
}

function runChild(trial: Trial, variant: string, quick: boolean): Measurement {
  // The harness stays off the core the measured consumer is pinned to.
  const argv = ['-c', HARNESS_CPU, process.execPath, CHILD, trial.name, variant, ...(quick ? ['--quick'] : [])];
  try {
    const out = execFileSync('taskset', argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 60_000 });
    return JSON.parse(out.trim().split('\n').pop()!) as Measurement;
  } catch (err) {
    throw new Error(`${trial.name}/${variant} failed: ${(err as Error).message}`);
  }
}

function runTrial(trial: Trial, args: Args): TrialReport {
  const machine = describeMachine();
  trial.prepare?.();
  const variants = trial.variants.filter((v) => args.variants === null || args.variants.includes(v.name));
  const runs: TrialReport['runs'] = [];
  for (let rep = 1; rep <= args.reps; rep++) {
    for (const v of variants) {
      const measurement = runChild(trial, v.name, args.quick);
      runs.push({ rep, variant: v.name, measurement });
      process.stderr.write(`${trial.name} rep ${rep}/${args.reps} ${v.name}: ${Math.round(measurement.value)} ${trial.unit}, ${Math.round(measurement.secondary)} ${trial.secondaryUnit} (over ${Math.round(measurement.work)})\n`);
    }
  }
  return {
    trial: trial.name,
    description: trial.description,
    unit: trial.unit,
    secondaryUnit: trial.secondaryUnit,
    baseline: trial.baseline,
    goal: trial.goal ?? null,
    reps: args.reps,
    quick: args.quick,
    machine,
    setup: trial.setup({ quick: args.quick }),
    variants: summarize(trial, runs),
    runs,
  };
}

function save(report: TrialReport, text: string): void {
  const dir = path.join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const base = report.quick ? `${report.trial}.quick` : report.trial;
  writeFileSync(path.join(dir, `${base}.json`), `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(path.join(dir, `${base}.md`), text);
  process.stderr.write(`wrote bench/results/${base}.json and ${base}.md\n`);
}

function main(): void {
  const args = parseArgs(process.argv.slice(2));
  if (process.getuid?.() !== 0) throw new Error('bench: the namespace benches need root (CAP_NET_ADMIN)');
  for (const trial of args.trials) {
    const report = runTrial(trial, args);
    const text = markdown(report);
    process.stdout.write(`${text}\n`);
    save(report, text);
  }
}

try {
  main();
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exitCode = 1;
}
