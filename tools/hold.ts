// Long-lived connections: open N keep-alive HTTP connections to one address
// and send a request on each every `intervalMs` for `durationMs`, then close
// them. Prints one JSON line: for every connection, the host that served it,
// the requests that succeeded, and whether (and when) it broke. Used to show
// that routing changes and restarts do not break established connections.
//
//   node hold.js '{"address":"198.18.0.1","connections":24,"intervalMs":200,"durationMs":6000}'
import net from 'node:net';

export interface HoldSpec {
  address: string;
  port?: number;
  connections: number;
  intervalMs: number;
  durationMs: number;
  /** An answer that takes longer than this counts as a broken connection (default 5000). */
  stallMs?: number;
}

export interface HeldConnection {
  servedBy: string | null;
  /** Different hosts answered on one connection: it was moved, which must never happen. */
  moved: boolean;
  ok: number;
  /** Longest wait for an answer (a restart shows here, as TCP retransmits). */
  maxWaitMs: number;
  brokeAtMs: number | null;
  error: string | null;
}

function holdOne(spec: HoldSpec, started: number): Promise<HeldConnection> {
  return new Promise((resolve) => {
    const c: HeldConnection = { servedBy: null, moved: false, ok: 0, maxWaitMs: 0, brokeAtMs: null, error: null };
    const socket = net.connect({ host: spec.address, port: spec.port ?? 80 });
    let buffer = '';
    let askedAt = 0; // 0: no request outstanding
    let finished = false;
    const finish = (error: string | null): void => {
      if (finished) return;
      finished = true;
      clearInterval(timer);
      if (error) {
        c.error = error;
        c.brokeAtMs = Date.now() - started;
      }
      socket.destroy();
      resolve(c);
    };
    const ask = (): void => {
      if (askedAt) {
        if (Date.now() - askedAt > (spec.stallMs ?? 5000)) finish('no answer'); // stalled for good
        return;
      }
      askedAt = Date.now();
      socket.write(`GET / HTTP/1.1\r\nHost: ${spec.address}\r\nConnection: keep-alive\r\n\r\n`);
    };
    const timer = setInterval(() => {
      if (Date.now() - started >= spec.durationMs) finish(askedAt && Date.now() - askedAt > (spec.stallMs ?? 5000) ? 'no answer' : null);
      else ask();
    }, spec.intervalMs);
    socket.setEncoding('utf8');
    socket.on('connect', ask);
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      // Responses are small and carry Content-Length; one per request.
      for (;;) {
        const m = /\r\n\r\nhost=(\d+)\n/.exec(buffer);
        if (!m) break;
        buffer = buffer.slice(m.index + m[0].length);
        if (c.servedBy !== null && c.servedBy !== m[1]) c.moved = true;
        c.servedBy = m[1]!;
        c.ok++;
        c.maxWaitMs = Math.max(c.maxWaitMs, Date.now() - askedAt);
        askedAt = 0;
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => finish(err.code ?? err.message));
    socket.on('close', () => finish(Date.now() - started < spec.durationMs ? 'closed early' : null));
  });
}

export async function runHold(spec: HoldSpec): Promise<HeldConnection[]> {
  const started = Date.now();
  return Promise.all(Array.from({ length: spec.connections }, () => holdOne(spec, started)));
}

if (require.main === module) {
  const spec = JSON.parse(process.argv[2] ?? '') as HoldSpec;
  void runHold(spec).then((r) => process.stdout.write(JSON.stringify(r) + '\n'));
}
