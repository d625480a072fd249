// A bounded HTTP load from one client: every request on a new TCP connection
// (as DPR routes connections), targets picked by weight (round-robin DNS with
// a few big clients sends most connections to one host). Prints one JSON
// summary line: who served, whether the client always saw the address it
// dialled, errors, latency percentiles.
//
//   node loadgen.js '{"targets":[{"address":"198.18.0.1","weight":7}],"requests":3000,"concurrency":32}'
import http from 'node:http';

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
  const worker = async (): Promise<void> => {
    while (issued < spec.requests && Date.now() < deadline) {
      issued++;
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

if (require.main === module) {
  const spec = JSON.parse(process.argv[2] ?? '') as LoadSpec;
  runLoad(spec).then(
    (summary) => process.stdout.write(JSON.stringify(summary) + '\n'),
    (err: Error) => {
      process.stderr.write(`loadgen: ${err.message}\n`);
      process.exit(1);
    },
  );
}
