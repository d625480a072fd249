// A steady stream of new connections, open loop: one new HTTP connection
// every `intervalMs` whether or not the earlier ones have answered, so a
// connection that hangs (its SYN sent to a host that died) does not slow the
// stream. Prints one JSON line: every connection's start time (epoch ms), how
// long it took, and who served it or why it failed. The fault tests and the
// reliability bench read from it when a host stops getting new connections.
//
//   node probe.js '{"address":"198.18.0.1","intervalMs":10,"durationMs":4000,"timeoutMs":3000}'
import http from 'node:http';

export interface ProbeSpec {
  address: string;
  port?: number;
  intervalMs: number;
  durationMs: number;
  timeoutMs: number;
}

export interface Probe {
  startedAt: number;
  ms: number;
  servedBy: number | null;
  error: string | null;
}

function once(spec: ProbeSpec): Promise<Probe> {
  const startedAt = Date.now();
  return new Promise((resolve) => {
    let done = false;
    const finish = (servedBy: number | null, error: string | null): void => {
      if (done) return;
      done = true;
      resolve({ startedAt, ms: Date.now() - startedAt, servedBy, error });
    };
    const req = http.get({ host: spec.address, port: spec.port ?? 80, path: '/', agent: false, timeout: spec.timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        const m = /^host=(\d+)/.exec(body);
        finish(m ? Number(m[1]) : null, m ? null : `bad_response_${res.statusCode}`);
      });
      res.on('error', (e: NodeJS.ErrnoException) => finish(null, e.code ?? e.message));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e: NodeJS.ErrnoException) => finish(null, e.code ?? e.message));
  });
}

export async function runProbe(spec: ProbeSpec): Promise<Probe[]> {
  const started = Date.now();
  const pending: Array<Promise<Probe>> = [];
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      if (Date.now() - started >= spec.durationMs) {
        clearInterval(timer);
        resolve();
        return;
      }
      pending.push(once(spec));
    }, spec.intervalMs);
  });
  return Promise.all(pending);
}

if (require.main === module) {
  const spec = JSON.parse(process.argv[2] ?? '') as ProbeSpec;
  void runProbe(spec).then((r) => process.stdout.write(JSON.stringify(r) + '\n'));
}
