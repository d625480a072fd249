// How the `dpr` command talks to the local daemon: over its metrics HTTP
// endpoint (GET /status, POST /drain). Errors name the address and what to do.
import http from 'node:http';
import type { DprConfig } from './config';
import type { DaemonStatus } from './daemon';

export class DaemonUnreachable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DaemonUnreachable';
  }
}

export interface Endpoint {
  address: string;
  port: number;
}

/** Where this host's daemon answers; a wildcard listener is reached on loopback. */
export function endpointOf(config: Pick<DprConfig, 'metrics'>): Endpoint {
  if (config.metrics.port === 0) {
    throw new DaemonUnreachable('metrics.port is 0 in the configuration: the daemon serves no /status, so dpr cannot reach it (set metrics.port, e.g. 9465)');
  }
  const address = config.metrics.address === '0.0.0.0' ? '127.0.0.1' : config.metrics.address;
  return { address, port: config.metrics.port };
}

interface Answer {
  status: number;
  body: string;
}

function request(ep: Endpoint, method: 'GET' | 'POST', path: string, timeoutMs: number): Promise<Answer> {
  const where = `${ep.address}:${ep.port}`;
  return new Promise((resolve, reject) => {
    const req = http.request({ host: ep.address, port: ep.port, method, path, timeout: timeoutMs, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new DaemonUnreachable(`the dpr daemon on ${where} did not answer within ${timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err instanceof DaemonUnreachable) return reject(err);
      if (err.code === 'ECONNREFUSED') {
        return reject(new DaemonUnreachable(`no dpr daemon answers on ${where}: is it running? (dpr start)`));
      }
      reject(new DaemonUnreachable(`cannot reach the dpr daemon on ${where}: ${err.message}`));
    });
    req.end();
  });
}

function parseJson(answer: Answer, what: string): unknown {
  try {
    return JSON.parse(answer.body) as unknown;
  } catch {
    throw new DaemonUnreachable(`${what} answered ${answer.status} with something that is not JSON: is it a dpr daemon?`);
  }
}

export async function fetchStatus(ep: Endpoint, timeoutMs = 3000): Promise<DaemonStatus> {
  const answer = await request(ep, 'GET', '/status', timeoutMs);
  const what = `${ep.address}:${ep.port}/status`;
  if (answer.status !== 200) throw new DaemonUnreachable(`${what} answered ${answer.status}: is it a dpr daemon?`);
  const s = parseJson(answer, what) as Partial<DaemonStatus>;
  // A different service on the port would answer something else entirely.
  if (typeof s.self !== 'number' || !Array.isArray(s.peers)) throw new DaemonUnreachable(`${what} is not a dpr daemon's status`);
  return s as DaemonStatus;
}

export interface DrainAnswer {
  self: number;
  draining: boolean;
  /** The daemon was draining before this request. */
  already: boolean;
}

export async function requestDrain(ep: Endpoint, timeoutMs = 3000): Promise<DrainAnswer> {
  const answer = await request(ep, 'POST', '/drain', timeoutMs);
  const what = `${ep.address}:${ep.port}/drain`;
  if (answer.status === 404) throw new DaemonUnreachable(`${what} does not exist: the running daemon predates dpr drain; stop it with SIGTERM, which drains too`);
  const body = parseJson(answer, what) as Partial<DrainAnswer> & { error?: string };
  if (answer.status !== 202) throw new DaemonUnreachable(`${what} refused (${answer.status}): ${body.error ?? answer.body.trim()}`);
  return body as DrainAnswer;
}

/** POST to the daemon and read its JSON answer; what counts as success is the caller's. */
async function post(ep: Endpoint, path: string, timeoutMs: number): Promise<{ status: number; body: Record<string, unknown> }> {
  const answer = await request(ep, 'POST', path, timeoutMs);
  const what = `${ep.address}:${ep.port}${path}`;
  if (answer.status === 404) throw new DaemonUnreachable(`${what} does not exist: the running daemon predates this command; restart it to use it`);
  return { status: answer.status, body: parseJson(answer, what) as Record<string, unknown> };
}

export async function requestUndrain(ep: Endpoint, timeoutMs = 3000): Promise<{ self: number; was: boolean }> {
  const { status, body } = await post(ep, '/undrain', timeoutMs);
  if (status !== 200) throw new DaemonUnreachable(`${ep.address}:${ep.port}/undrain refused (${status}): ${String(body.error ?? '')}`);
  return body as { self: number; was: boolean };
}

export type ReloadAnswer = { ok: true; changed: string[] } | { ok: false; key: string; reason: string };

/** The daemon's verdict on its configuration file as it is now. */
export async function requestReload(ep: Endpoint, timeoutMs = 30000): Promise<ReloadAnswer> {
  const { status, body } = await post(ep, '/reload', timeoutMs);
  if (status === 403 || status === 405) throw new DaemonUnreachable(`${ep.address}:${ep.port}/reload refused (${status}): ${String(body.error ?? '')}`);
  return body as ReloadAnswer;
}
