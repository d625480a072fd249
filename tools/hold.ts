// Long-lived connections: open N keep-alive HTTP connections to one address
// and send a request on each every `intervalMs`, for `durationMs` or until a
// line "stop" arrives on stdin; then let each connection's last request be
// answered and close them. Prints one JSON line: for every connection, the
// host that served it, the requests that were answered, the longest wait for
// an answer (outstanding ones included), and whether (and when) it broke.
// Used to show that routing changes and restarts do not break established
// connections: a connection that hangs breaks as surely as one that is reset.
//
//   node hold.js '{"address":"198.18.0.1","connections":24,"intervalMs":200,"durationMs":6000}'
import net from 'node:net';

export interface HoldSpec {
  address: string;
  port?: number;
  connections: number;
  intervalMs: number;
  /** How long requests are sent; omitted: until "stop" is read from stdin. */
  durationMs?: number;
  /** Connection i opens i * openEveryMs after the start (default: all at once), for a test whose queue holds few SYNs. */
  openEveryMs?: number;
  /** A request unanswered for this long is a hung connection: error 'no answer' (default 3000). */
  stallMs?: number;
}

export interface HeldConnection {
  servedBy: string | null;
  /** Different hosts answered on one connection: it was moved, which must never happen. */
  moved: boolean;
  ok: number;
  /** Longest wait for an answer, counting a request still unanswered when it ended (a restart shows here, as TCP retransmits). */
  maxWaitMs: number;
  brokeAtMs: number | null;
  error: string | null;
}

export const DEFAULT_STALL_MS = 3000;

function holdOne(spec: HoldSpec, started: number, stopped: Promise<void>): Promise<HeldConnection> {
  const stallMs = spec.stallMs ?? DEFAULT_STALL_MS;
  return new Promise((resolve) => {
    const c: HeldConnection = { servedBy: null, moved: false, ok: 0, maxWaitMs: 0, brokeAtMs: null, error: null };
    const socket = net.connect({ host: spec.address, port: spec.port ?? 80 });
    let buffer = '';
    // The connect is the first thing that must be answered in time.
    let askedAt = Date.now(); // 0: nothing outstanding
    let nextAskAt = 0; // 0: not connected yet
    let stopping = false;
    let finished = false;
    const outstandingMs = (): number => (askedAt ? Date.now() - askedAt : 0);
    const finish = (error: string | null): void => {
      if (finished) return;
      finished = true;
      clearInterval(timer);
      c.maxWaitMs = Math.max(c.maxWaitMs, outstandingMs());
      if (error) {
        c.error = error;
        c.brokeAtMs = Date.now() - started;
      }
      socket.destroy();
      resolve(c);
    };
    const tick = (): void => {
      if (outstandingMs() > stallMs) return finish('no answer');
      if (stopping) {
        if (!askedAt) finish(null); // the last request was answered
        return;
      }
      const now = Date.now();
      if (askedAt || !nextAskAt || now < nextAskAt) return;
      askedAt = now;
      nextAskAt = now + spec.intervalMs;
      socket.write(`GET / HTTP/1.1\r\nHost: ${spec.address}\r\nConnection: keep-alive\r\n\r\n`);
    };
    // Ticks come at least every 100 ms, so a stall shows soon after stallMs.
    const timer = setInterval(tick, Math.min(spec.intervalMs, 100));
    void stopped.then(() => {
      stopping = true;
      tick();
    });
    socket.setEncoding('utf8');
    socket.on('connect', () => {
      c.maxWaitMs = outstandingMs();
      askedAt = 0;
      nextAskAt = Date.now();
      tick();
    });
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
        c.maxWaitMs = Math.max(c.maxWaitMs, outstandingMs());
        askedAt = 0;
      }
      if (stopping && !askedAt) finish(null);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => finish(err.code ?? err.message));
    socket.on('close', () => finish(stopping && !askedAt ? null : 'closed early'));
  });
}

/** Holds the connections until `stopped` resolves, then lets their last requests be answered. */
export async function runHold(spec: HoldSpec, stopped: Promise<void>): Promise<HeldConnection[]> {
  const started = Date.now();
  const gap = spec.openEveryMs ?? 0;
  const opened = (i: number): Promise<void> => (gap ? new Promise((r) => setTimeout(r, i * gap)) : Promise.resolve());
  return Promise.all(Array.from({ length: spec.connections }, (_, i) => opened(i).then(() => holdOne(spec, started, stopped))));
}

if (require.main === module) {
  const spec = JSON.parse(process.argv[2] ?? '') as HoldSpec;
  const stopped = new Promise<void>((resolve) => {
    if (spec.durationMs !== undefined) {
      setTimeout(resolve, spec.durationMs);
      return;
    }
    let input = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (d: string) => {
      input += d;
      if (/^stop$/m.test(input)) resolve();
    });
    // Whoever started us went away: stop too.
    process.stdin.on('end', resolve);
  });
  void runHold(spec, stopped).then((r) => {
    process.stdout.write(JSON.stringify(r) + '\n');
    process.exit(0);
  });
}
