// wrk as the benches drive it: one thread per process, a Lua script from
// bench/wrk/ that reports a JSON line (report.lua), and several processes at
// once when the load must reach several addresses (wrk aims at one URL), their
// results merged exactly (latency histograms add up).
import path from 'node:path';
import type { Testbed } from '../test/support/netns';
import { runIn } from './proc';
import { histogramPercentile, mergeHistograms, type Histogram } from './stats';

const ROOT = path.resolve(__dirname, '..', '..');
export const WRK_SCRIPTS = {
  plain: path.join(ROOT, 'bench', 'wrk', 'report.lua'),
  specweb96: path.join(ROOT, 'bench', 'wrk', 'specweb96.lua'),
};

export interface WrkJob {
  address: string;
  connections: number;
  seconds: number;
  script: string;
  /** Passed to the script's init(args) after `--` (the specweb96 script takes a seed). */
  args?: string[];
  headers?: string[];
  /** A request without an answer for this long counts as a timeout error. */
  timeoutSeconds?: number;
}

export interface WrkErrors {
  connect: number;
  read: number;
  write: number;
  status: number;
  timeout: number;
}

export interface WrkResult {
  requests: number;
  durationUs: number;
  bytes: number;
  errors: WrkErrors;
  servedBy: Record<string, number>;
  latencyUs: Histogram;
}

export interface WrkSummary {
  /** Responses per second over all processes (each process's count over its own duration, summed). */
  rps: number;
  requests: number;
  errors: number;
  errorKinds: WrkErrors;
  p50Ms: number;
  p99Ms: number;
  servedBy: Record<string, number>;
  bytes: number;
}

function argv(job: WrkJob): string[] {
  const headers = (job.headers ?? []).flatMap((h) => ['-H', h]);
  return ['wrk', '-t1', `-c${job.connections}`, `-d${job.seconds}s`, `--timeout`, `${job.timeoutSeconds ?? 5}s`,
    ...headers, '-s', job.script, `http://${job.address}/`, ...(job.args?.length ? ['--', ...job.args] : [])];
}

export async function runWrk(bed: Testbed, host: string, job: WrkJob): Promise<WrkResult> {
  const out = await runIn(bed, host, argv(job), { timeoutMs: (job.seconds + (job.timeoutSeconds ?? 5) + 15) * 1000 });
  const line = out.split('\n').find((l) => l.startsWith('@dpr-wrk '));
  if (line === undefined) throw new Error(`wrk printed no report: ${out.slice(0, 400)}`);
  return JSON.parse(line.slice('@dpr-wrk '.length)) as WrkResult;
}

/** Several wrk processes at once, from one namespace; resolves when all are done. */
export function runWrkAll(bed: Testbed, host: string, jobs: readonly WrkJob[]): Promise<WrkResult[]> {
  return Promise.all(jobs.map((j) => runWrk(bed, host, j)));
}

export function summarizeWrk(results: readonly WrkResult[]): WrkSummary {
  const errorKinds: WrkErrors = { connect: 0, read: 0, write: 0, status: 0, timeout: 0 };
  const servedBy: Record<string, number> = {};
  for (const r of results) {
    for (const k of Object.keys(errorKinds) as Array<keyof WrkErrors>) errorKinds[k] += r.errors[k];
    for (const [h, n] of Object.entries(r.servedBy)) servedBy[h] = (servedBy[h] ?? 0) + n;
  }
  const latency = mergeHistograms(results.map((r) => r.latencyUs));
  return {
    rps: results.reduce((s, r) => s + (r.durationUs > 0 ? r.requests / (r.durationUs / 1e6) : 0), 0),
    requests: results.reduce((s, r) => s + r.requests, 0),
    errors: Object.values(errorKinds).reduce((a, b) => a + b, 0),
    errorKinds,
    p50Ms: histogramPercentile(latency, 50) / 1000,
    p99Ms: histogramPercentile(latency, 99) / 1000,
    servedBy,
    bytes: results.reduce((s, r) => s + r.bytes, 0),
  };
}
