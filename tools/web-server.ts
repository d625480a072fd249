// A web server with a capped capacity, standing in for one host of a web
// cluster (the cluster's hosts share this machine's two cores, so capacity is
// emulated): at most `slots` requests are worked on at once, each for
// `serviceMs` plus 1 ms per 16 KB of response; the rest wait their turn.
//
//   node web-server.js --id 2 [--port 80] [--slots 8] [--service-ms 5] [--host 0.0.0.0]
//
// Answers any GET with `host=<id>` on the first line; `?size=N` pads the body
// to N bytes (the SPECweb96-like file mix asks for sizes). Listens on the
// wildcard address, as dpr requires of a local server: 0.0.0.0 by default,
// or `--host ::` for a dual-stack listener (IPv4 clients on IPv6 sockets).
// GET /health answers 200, or 503 after SIGUSR1 (SIGUSR2: 200 again), so a
// test can fail an HTTP health check while the server still serves.
import http from 'node:http';
import { createHash } from 'node:crypto';
import { parseArgs } from 'node:util';

interface Options {
  id: number;
  port: number;
  slots: number;
  serviceMs: number;
  host?: string;
}

let healthStatus = 200;

// Large enough for the 8 MiB transfers of test/63.cluster.ipv6.
const MAX_SIZE = 8 << 20;

export function startWebServer(o: Options): http.Server {
  let busy = 0;
  const waiting: Array<() => void> = [];
  const release = (): void => {
    busy--;
    const next = waiting.shift();
    if (next) next();
  };
  const acquire = (work: () => void): void => {
    const run = (): void => {
      busy++;
      work();
    };
    if (busy < o.slots) run();
    else waiting.push(run);
  };
  const server = http.createServer((req, res) => {
    if (req.url === '/health') {
      res.writeHead(healthStatus, { 'content-type': 'text/plain' });
      res.end(`health=${healthStatus}\n`);
      return;
    }
    const query = new URL(req.url ?? '/', 'http://x').searchParams;
    const size = Math.min(Number(query.get('size') ?? 0) || 0, MAX_SIZE);
    const close = query.get('close') === '1';
    // A request body (an upload) is answered with its length and SHA-256, so
    // a client can tell it arrived intact.
    const hash = createHash('sha256');
    let received = 0;
    req.on('data', (d: Buffer) => {
      hash.update(d);
      received += d.length;
    });
    req.on('end', () =>
      acquire(() => {
        const head = `host=${o.id}\n${received > 0 ? `bytes=${received}\nsha256=${hash.digest('hex')}\n` : ''}`;
        const body = size > head.length ? head + 'x'.repeat(size - head.length) : head;
        setTimeout(() => {
          // ?close=1 with an HTTP/1.0 client: no length, so the body ends when
          // the server closes, and the server is sure to close first (its side
          // keeps the 4-tuple in TIME_WAIT, which some tests need).
          const length = close ? {} : { 'content-length': Buffer.byteLength(body) };
          res.writeHead(200, { 'content-type': 'text/plain', ...length, 'x-served-by': String(o.id) });
          res.end(body);
        }, o.serviceMs + Math.floor(size / 16384));
        // 'close' comes when the response is done or the client went away
        // mid-request: either way the slot is free again, once.
        res.once('close', release);
      }),
    );
  });
  server.keepAliveTimeout = 5000;
  // ipv6Only false: with `::` the one socket takes IPv4 too, as Node's own default does.
  server.listen({ port: o.port, host: o.host ?? '0.0.0.0', ipv6Only: false });
  return server;
}

if (require.main === module) {
  const { values } = parseArgs({
    options: {
      id: { type: 'string' },
      port: { type: 'string', default: '80' },
      slots: { type: 'string', default: '8' },
      'service-ms': { type: 'string', default: '5' },
      host: { type: 'string', default: '0.0.0.0' },
    },
  });
  if (values.id === undefined) {
    process.stderr.write('usage: web-server --id N [--port 80] [--slots 8] [--service-ms 5]\n');
    process.exit(2);
  }
  const server = startWebServer({
    id: Number(values.id),
    port: Number(values.port),
    slots: Number(values.slots),
    serviceMs: Number(values['service-ms']),
    host: values.host,
  });
  process.on('SIGUSR1', () => (healthStatus = 503));
  process.on('SIGUSR2', () => (healthStatus = 200));
  server.on('listening', () => process.stdout.write('listening\n'));
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}
