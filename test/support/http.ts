// HTTP in the test bed: a tiny web server that says which host served a
// request, run in a host's namespace as its own process (a netns belongs to a
// process), and a curl client run in another namespace.
//
// Server, when run as `node http.js serve NAME`:
//   any request      -> "served-by=NAME received=BYTES\n" (BYTES: request body length)
//   ?size=N          -> the same line padded with 'x' to N bytes (a large response)
//   ?delayMs=M       -> answers after M ms (keeps a connection open while the test looks)
// It listens on the wildcard address, as DESIGN §4 requires of a local server
// (`-m socket` ignores wildcard listeners, so forwarded flows stay in the queue).
import http from 'node:http';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { Testbed } from './netns';
import { waitForLine } from './lines';

export const SERVER_SCRIPT = path.join(__dirname, 'http.js');

export interface CurlResult {
  body: string;
  /** The address curl's TCP connection talked to, as the client saw it. */
  remoteIp: string;
  status: number;
}

export interface CurlOptions {
  /** A request body, sent as POST; ASCII (it goes through curl's stdin as text). */
  body?: string;
  timeoutS?: number;
}

// The write-out goes after the body on a line of its own, so the body can be
// anything up to the last newline. curl expands the '\n' itself, which keeps
// the command line (quoted in error messages) on one line.
const WRITE_OUT = '\\n%{remote_ip} %{http_code}';

/** Runs one request with curl in `host`'s namespace; throws if curl fails (no answer, reset, timeout). */
export function curl(bed: Testbed, host: string, url: string, options: CurlOptions = {}): CurlResult {
  const argv = ['curl', '-sS', '--max-time', String(options.timeoutS ?? 5), '-w', WRITE_OUT];
  if (options.body) {
    // No 'Expect: 100-continue' round trip: the body goes at once.
    argv.push('--data-binary', '@-', '-H', 'Content-Type: application/octet-stream', '-H', 'Expect:');
  }
  argv.push(url);
  const out = bed.exec(host, argv, options.body);
  return parseCurl(out);
}

export function parseCurl(out: string): CurlResult {
  const cut = out.lastIndexOf('\n');
  const [remoteIp, status] = out.slice(cut + 1).split(' ');
  return { body: out.slice(0, cut), remoteIp: remoteIp ?? '', status: Number(status) };
}

/** The curl command line of `curl()`, for a request run in the background with bed.spawn. */
export function curlArgv(url: string, timeoutS = 5): string[] {
  return ['curl', '-sS', '--max-time', String(timeoutS), '-w', WRITE_OUT, url];
}

/** Starts the server in `host`'s namespace on 0.0.0.0:port and resolves once it listens. */
export async function startServer(bed: Testbed, host: string, name: string, port = 80): Promise<ChildProcess> {
  const child = bed.spawn(host, [process.execPath, SERVER_SCRIPT, 'serve', name, String(port)]);
  await waitForLine(child, (l) => l === 'listening', 5000, `http server on ${host}`);
  return child;
}

function serve(name: string, port: number): void {
  const server = http.createServer((req, res) => {
    let received = 0;
    req.on('data', (chunk: Buffer) => (received += chunk.length));
    req.on('end', () => {
      const q = new URL(req.url ?? '/', 'http://x').searchParams;
      const line = `served-by=${name} received=${received}\n`;
      const size = Number(q.get('size') ?? 0);
      const body = size > line.length ? line + 'x'.repeat(size - line.length) : line;
      const answer = (): void => {
        res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body) });
        res.end(body);
      };
      const delay = Number(q.get('delayMs') ?? 0);
      if (delay > 0) setTimeout(answer, delay);
      else answer();
    });
  });
  server.listen(port, '0.0.0.0', () => console.log('listening'));
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}

// Only with explicit arguments: the test runner loads every file under
// dist/test/ as a test, and then this must not start a server in the root
// namespace.
if (require.main === module && process.argv[2] === 'serve') {
  serve(process.argv[3] ?? 'unnamed', Number(process.argv[4] ?? 80));
}
