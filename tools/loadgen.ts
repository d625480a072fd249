// A bounded HTTP load from one client: every request on a new TCP connection
// (as DPR routes connections), targets picked by weight (round-robin DNS with
// a few big clients sends most connections to one host). Prints one JSON
// summary line: who served, whether the client always saw the address it
// dialled, errors, latency percentiles.
//
//   node loadgen.js '{"targets":[{"address":"198.18.0.1","weight":7}],"requests":3000,"concurrency":32}'
import http from 'node:http';
import readline from 'node:readline';

export interface LoadSpec {
  targets: Array<{ address: string; port?: number; weight?: number }>;
  /** Total requests (bounded). */
  requests: number;
  concurrency: number;
  timeoutMs?: number;
  /** Stop early after this long, whatever is left (bounded in time too). */
  maxDurationMs?: number;
  /** Response sizes to ask for, drawn uniformly from this list (default: tiny). */
  sizes?: number[];
  /**
   * Open loop: start this many requests a second, on a schedule, whatever
   * the answers do (at most `concurrency` at once: past that, starts wait).
   * Without it the load is a closed loop of `concurrency` workers.
   */
  rate?: number;
}

export interface LoadSummary {
  requests: number;
  ok: number;
  errors: number;
  errorKinds: Record<string, number>;
  /** Served-by host id -> responses. */
  servedBy: Record<string, number>;
  /** Dialled address -> responses, and how many of those the same host served. */
  byTarget: Record<string, { sent: number; ok: number; servedBy: Record<string, number> }>;
  /** Responses whose connection's remote address differed from the dialled one. */
  addressMismatch: number;
  p50Ms: number;
  p99Ms: number;
  durationMs: number;
  rps: number;
}

function pick(targets: LoadSpec['targets'], r: number): LoadSpec['targets'][number] {
  const total = targets.reduce((s, t) => s + (t.weight ?? 1), 0);
  let x = r * total;
  for (const t of targets) {
    x -= t.weight ?? 1;
    if (x < 0) return t;
  }
  return targets[targets.length - 1]!;
}

function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function once(target: LoadSpec['targets'][number], size: number, timeoutMs: number): Promise<{ servedBy: string; remote: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: target.address, port: target.port ?? 80, path: size ? `/?size=${size}` : '/', agent: false, timeout: timeoutMs },
      (res) => {
        const remote = res.socket.remoteAddress ?? '';
        let first = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (first.length < 32) first += chunk.slice(0, 32);
        });
        res.on('end', () => {
          const m = /^host=(\d+)/.exec(first);
          if (res.statusCode !== 200 || !m) reject(new Error(`bad_response_${res.statusCode}`));
          else resolve({ servedBy: m[1]!, remote });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

export async function runLoad(spec: LoadSpec): Promise<LoadSummary> {
  const s: LoadSummary = {
    requests: 0, ok: 0, errors: 0, errorKinds: {}, servedBy: {}, byTarget: {},
    addressMismatch: 0, p50Ms: 0, p99Ms: 0, durationMs: 0, rps: 0,
  };
  const latencies: number[] = [];
  const started = Date.now();
  const deadline = started + (spec.maxDurationMs ?? 120_000);
  let issued = 0;
  let seed = 0x9e3779b9;
  const random = (): number => {
    // Deterministic (xorshift) so runs compare like with like.
    seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5;
    return (seed >>> 0) / 0x100000000;
  };
  // Open loop: worker k's n-th start is due at (k + n * concurrency) / rate.
  const t0 = performance.now();
  const dueAt = (i: number): number => (spec.rate ? t0 + (i * 1000) / spec.rate : 0);
  const worker = async (): Promise<void> => {
    while (issued < spec.requests && Date.now() < deadline) {
      const wait = dueAt(issued) - performance.now();
      issued++;
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const target = pick(spec.targets, random());
      const sizes = spec.sizes ?? [0];
      const size = sizes[Math.floor(random() * sizes.length)]!;
      const t = (s.byTarget[target.address] ??= { sent: 0, ok: 0, servedBy: {} });
      t.sent++;
      s.requests++;
      const t0 = process.hrtime.bigint();
      try {
        const r = await once(target, size, spec.timeoutMs ?? 5000);
        latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
        s.ok++;
        t.ok++;
        s.servedBy[r.servedBy] = (s.servedBy[r.servedBy] ?? 0) + 1;
        t.servedBy[r.servedBy] = (t.servedBy[r.servedBy] ?? 0) + 1;
        if (r.remote !== target.address) s.addressMismatch++;
      } catch (err) {
        s.errors++;
        const kind = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
        s.errorKinds[kind] = (s.errorKinds[kind] ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: spec.concurrency }, worker));
  latencies.sort((a, b) => a - b);
  s.durationMs = Date.now() - started;
  s.p50Ms = Math.round(percentile(latencies, 50) * 100) / 100;
  s.p99Ms = Math.round(percentile(latencies, 99) * 100) / 100;
  s.rps = Math.round((s.ok / s.durationMs) * 1000);
  return s;
}

/**
 * `--held`: print "ready", start on a line from stdin, and after the summary
 * stay until stdin ends, so a bench can read this process's CPU before and
 * after the load (bench/decision-cost.ts).
 */
async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? '') as LoadSpec;
  const held = process.argv[3] === '--held';
  const lines = held ? readline.createInterface({ input: process.stdin }) : null;
  if (lines) {
    process.stdout.write('ready\n');
    await new Promise((r) => lines.once('line', r));
  }
  process.stdout.write(JSON.stringify(await runLoad(spec)) + '\n');
  if (lines) await new Promise((r) => lines.once('close', r));
}

if (require.main === module) {
  main().catch((err: Error) => {
    process.stderr.write(`loadgen: ${err.message}\n`);
    process.exit(1);
  });
}
