// Health checks of this host's own web service, on every service port, in
// two layers, so that the common failure is seen fast and checking stays cheap:
// - the listener watch: every `listenerCheckMs`, one sock_diag dump of the
//   listening sockets (~50 µs; the kernel reads only its small listener
//   table), done by the heartbeat thread (native/peer_link.cc) so it wakes
//   nothing; it calls listenerLost(). No listener on a port (the server
//   crashed, or a deploy restarts it) makes the port unhealthy at once:
//   connections would be refused.
// - the check proper, as HAProxy users know it: a TCP connect or an HTTP GET
//   every `intervalMs` (`fastIntervalMs` while a port is down or changing
//   state), `fall` failures in a row make a port unhealthy, `rise` successes
//   healthy again. It finds what the watch cannot: a server that listens but
//   does not answer, or answers with errors.
// The host is healthy while every port is. Its peers hear it in the next
// heartbeat (sent at once on a change) and stop sending it new connections;
// the host itself forwards what reaches it to healthy peers
// (lib/eligibility.ts). Everything here is asynchronous on the event loop or
// one short native call: nothing blocks a queue.
import { EventEmitter } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { parseStatusList } from './config-schema';
import type { Logger } from './log';

export interface HealthSettings {
  type: 'tcp' | 'http' | 'none';
  address: string;
  ports: readonly number[];
  intervalMs: number;
  fastIntervalMs: number;
  timeoutMs: number;
  fall: number;
  rise: number;
  /** 0: no listener watch. */
  listenerCheckMs: number;
  http: { path: string; statuses: string; host: string };
}

/** One check's outcome. */
export interface ProbeResult {
  ok: boolean;
  /** Why it failed ('ECONNREFUSED', 'timeout', 'status 503', ...). */
  error?: string;
}

export type Probe = (port: number) => Promise<ProbeResult>;

export interface PortHealth {
  port: number;
  /** null until the first check of the port has finished. */
  healthy: boolean | null;
  /** Checks in a row with the last one's result: > 0 good, < 0 failed. */
  streak: number;
  lastError: string | null;
  lastCheckMs: number | null;
  checks: { ok: number; failed: number };
  /** Times the listener watch found no listener and took the port down. */
  listenerLost: number;
}

export interface HealthStatus {
  type: HealthSettings['type'];
  healthy: boolean;
  /** Date.now() of the last change of `healthy` (or of the start). */
  since: number;
  ports: PortHealth[];
}

interface HealthEvents {
  change: [healthy: boolean];
}

/** A TCP connect, or an HTTP GET whose status must be in the accepted list. */
export function makeProbe(s: HealthSettings, serviceAddress: string): Probe {
  if (s.type === 'http') {
    const accepted = parseStatusList(s.http.statuses);
    const host = s.http.host || serviceAddress;
    return (port) => new Promise((resolve) => {
      let done = false;
      const finish = (r: ProbeResult): void => {
        if (done) return;
        done = true;
        req.destroy();
        resolve(r);
      };
      const req = http.get({ host: s.address, port, path: s.http.path, agent: false, headers: { host, 'user-agent': 'dpr-health' } }, (res) => {
        const code = res.statusCode ?? 0;
        res.resume();
        finish(accepted.some(([lo, hi]) => code >= lo && code <= hi) ? { ok: true } : { ok: false, error: `status ${code}` });
      });
      req.setTimeout(s.timeoutMs, () => finish({ ok: false, error: 'timeout' }));
      req.on('error', (err: NodeJS.ErrnoException) => finish({ ok: false, error: err.code ?? err.message }));
    });
  }
  return (port) => new Promise((resolve) => {
    const socket = net.connect({ host: s.address, port });
    const finish = (r: ProbeResult): void => {
      socket.destroy();
      resolve(r);
    };
    socket.setTimeout(s.timeoutMs, () => finish({ ok: false, error: 'timeout' }));
    socket.once('connect', () => finish({ ok: true }));
    socket.once('error', (err: NodeJS.ErrnoException) => finish({ ok: false, error: err.code ?? err.message }));
  });
}

/**
 * Dual-stack: each check is made over IPv4 and IPv6 (`address6`, the
 * service's IPv6 address for the HTTP Host header), and fails when either
 * does: a host that cannot serve IPv6 clients is unhealthy for new
 * connections of both families, the simplest rule that sends no client to a
 * host that cannot serve it. The error names the family that failed.
 */
export function makeDualProbe(s: HealthSettings, serviceAddress: string, address6: string, serviceAddress6: string): Probe {
  const v4 = makeProbe(s, serviceAddress);
  const v6 = makeProbe({ ...s, address: address6 }, `[${serviceAddress6}]`);
  return async (port) => {
    const [a, b] = await Promise.all([v4(port), v6(port)]);
    if (!a.ok) return { ok: false, error: `IPv4: ${a.error ?? 'failed'}` };
    if (!b.ok) return { ok: false, error: `IPv6: ${b.error ?? 'failed'}` };
    return { ok: true };
  };
}

/** The checks of a host's families: IPv4, IPv6 (`address6`) or both (makeDualProbe). */
export function makeHostProbe(s: HealthSettings, me: { service?: string; service6?: string }, address6: string): Probe {
  if (me.service === undefined) return makeProbe({ ...s, address: address6 }, `[${me.service6!}]`);
  return me.service6 ? makeDualProbe(s, me.service, address6, me.service6) : makeProbe(s, me.service);
}

export class HealthChecker extends EventEmitter<HealthEvents> {
  private readonly ports: PortHealth[];
  private readonly timers = new Map<number, NodeJS.Timeout>();
  private running = false;
  private isHealthy: boolean;
  private since = Date.now();

  constructor(
    private readonly s: HealthSettings,
    private readonly probe: Probe,
    private readonly log: Logger,
  ) {
    super();
    this.ports = s.ports.map((port) => ({ port, healthy: null, streak: 0, lastError: null, lastCheckMs: null, checks: { ok: 0, failed: 0 }, listenerLost: 0 }));
    this.isHealthy = s.type === 'none';
  }

  get healthy(): boolean {
    return this.isHealthy;
  }

  /** Starts checking every port now; resolves once each has had its first result. */
  async start(): Promise<void> {
    if (this.s.type === 'none' || this.running) return;
    this.running = true;
    await Promise.all(this.ports.map((p) => this.check(p)));
  }

  stop(): void {
    this.running = false;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  status(): HealthStatus {
    return { type: this.s.type, healthy: this.isHealthy, since: this.since, ports: this.ports.map((p) => ({ ...p, checks: { ...p.checks } })) };
  }

  private async check(p: PortHealth): Promise<void> {
    if (!this.running) return;
    const started = performance.now();
    let result: ProbeResult;
    try {
      result = await this.probe(p.port);
    } catch (err) {
      result = { ok: false, error: (err as Error).message };
    }
    if (!this.running) return;
    p.lastCheckMs = Math.round(performance.now() - started);
    this.record(p, result);
    this.schedule(p);
  }

  /** Checks come faster while a port is down or on its way there or back (HAProxy's fastinter). */
  private schedule(p: PortHealth): void {
    const steady = p.healthy === true && p.streak > 0;
    const delay = steady ? this.s.intervalMs : Math.min(this.s.intervalMs, this.s.fastIntervalMs);
    clearTimeout(this.timers.get(p.port));
    const timer = setTimeout(() => {
      this.timers.delete(p.port);
      void this.check(p);
    }, delay);
    timer.unref();
    this.timers.set(p.port, timer);
  }

  /** The listener watch found no listener on `port`: certain, not a guess (a connection would be refused now). */
  listenerLost(port: number): void {
    const p = this.ports.find((x) => x.port === port);
    if (!this.running || !p || p.healthy !== true) return;
    p.listenerLost++;
    this.record(p, { ok: false, error: 'no listener' }, true);
    this.schedule(p);
  }

  private record(p: PortHealth, r: ProbeResult, certain = false): void {
    if (!certain) {
      if (r.ok) p.checks.ok++;
      else p.checks.failed++;
    }
    p.lastError = r.ok ? null : r.error ?? 'failed';
    p.streak = r.ok ? Math.max(p.streak, 0) + 1 : Math.min(p.streak, 0) - 1;
    if (p.healthy === null) p.healthy = r.ok;
    else if (p.healthy && (certain || p.streak <= -this.s.fall)) p.healthy = false;
    else if (!p.healthy && p.streak >= this.s.rise) p.healthy = true;
    if (certain) p.streak = Math.min(p.streak, -this.s.fall);
    const healthy = this.ports.every((x) => x.healthy === true);
    if (healthy === this.isHealthy) return;
    this.isHealthy = healthy;
    this.since = Date.now();
    if (healthy) this.log.info('service healthy', { ports: this.ports.map((x) => x.port) });
    else {
      const bad = this.ports.filter((x) => x.healthy !== true);
      this.log.warn('service unhealthy: no new connections come here, those that arrive go to healthy peers', {
        ports: bad.map((x) => x.port), error: bad[0]?.lastError, check: this.s.type,
      });
    }
    this.emit('change', healthy);
  }
}
