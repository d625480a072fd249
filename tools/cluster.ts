// A dpr cluster in network namespaces (DESIGN §9): N hosts and a client on one
// bridge, each host with a capacity-capped web server, dpr's rules installed
// by iptables/install.sh and the daemon started as `dpr start`, exactly as an
// operator would on real hosts. Used by the demo, the daemon tests and the
// cluster benches. Everything it makes goes when destroy() runs.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { Testbed } from '../test/support/netns';
import { waitForLine } from '../test/support/lines';
import type { LoadSpec, LoadSummary } from './loadgen';
import type { HeldConnection, HoldSpec } from './hold';
import type { DaemonStatus } from '../lib/daemon';

const ROOT = path.resolve(__dirname, '..', '..');
const CLI = path.join(ROOT, 'dist', 'lib', 'cli.js');
const WEB = path.join(ROOT, 'dist', 'tools', 'web-server.js');
const LOADGEN = path.join(ROOT, 'dist', 'tools', 'loadgen.js');
const HOLD = path.join(ROOT, 'dist', 'tools', 'hold.js');
const INSTALL = path.join(ROOT, 'iptables', 'install.sh');
const UNINSTALL = path.join(ROOT, 'iptables', 'uninstall.sh');

export const CLIENT_ADDRESS = '198.18.0.200';
/** The peers key every host of a test cluster shares (so a bench can derive the Maglev key the daemons use). */
export const CLUSTER_KEY = '5eb63bbbe01eeed093cb22bb8f5acdc3';
export const hostAddress = (id: number): string => `198.18.0.${id + 1}`;
export const hostName = (id: number): string => `h${id}`;

export interface ClusterOptions {
  hosts: number;
  policy?: 'hash' | 'load';
  /** Merged into every host's configuration. */
  config?: Record<string, unknown>;
  /** Web server capacity per host. */
  slots?: number;
  serviceMs?: number;
  /** Install rules and start daemons (false: a plain cluster, for the no-dpr baseline). */
  dpr?: boolean;
  tag?: string;
  /**
   * More namespaces on the same bridge, with no web server and no dpr: a
   * central load balancer in front of the hosts, for the benches that compare
   * with one. Their addresses must lie in 198.18.0.0/24 and clash with no host.
   */
  extraHosts?: Array<{ name: string; address: string }>;
}

export class Cluster {
  readonly bed: Testbed;
  readonly configFiles: string[] = [];
  private readonly daemons = new Map<number, ChildProcess>();
  private readonly tmp: string;

  private constructor(
    readonly options: Required<Omit<ClusterOptions, 'config' | 'tag' | 'extraHosts'>> & Pick<ClusterOptions, 'config'>,
    tag: string,
    extraHosts: NonNullable<ClusterOptions['extraHosts']> = [],
  ) {
    this.bed = Testbed.create(
      [
        { name: 'client', addrs: [`${CLIENT_ADDRESS}/24`] },
        ...Array.from({ length: options.hosts }, (_, id) => ({ name: hostName(id), addrs: [`${hostAddress(id)}/24`] })),
        ...extraHosts.map((h) => ({ name: h.name, addrs: [`${h.address}/24`] })),
      ],
      tag,
    );
    this.tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dpr-cluster-'));
  }

  static async create(o: ClusterOptions): Promise<Cluster> {
    const c = new Cluster(
      { hosts: o.hosts, policy: o.policy ?? 'hash', slots: o.slots ?? 16, serviceMs: o.serviceMs ?? 2, dpr: o.dpr ?? true, config: o.config },
      o.tag ?? 'c',
      o.extraHosts,
    );
    try {
      await c.setUp();
    } catch (err) {
      await c.destroy();
      throw err;
    }
    return c;
  }

  configFor(id: number): Record<string, unknown> {
    const hosts = Array.from({ length: this.options.hosts }, (_, i) => ({ id: i, service: hostAddress(i), cluster: hostAddress(i) }));
    const base: Record<string, unknown> = {
      self: id,
      hosts,
      clusterCidr: '198.18.0.0/24',
      policy: this.options.policy,
      peers: { key: CLUSTER_KEY, heartbeatMs: 100, deadAfterMs: 500 },
      drain: { timeoutMs: 10000 },
      flows: { max: 65536, maxEmbryonic: 16384, stateFile: path.join(this.tmp, `h${id}.flows`), snapshotMs: 1000 },
    };
    // One level deep, so a test can set flows.synTimeoutMs and keep the rest.
    for (const [key, value] of Object.entries(this.options.config ?? {})) {
      const mine = base[key];
      const both = typeof value === 'object' && value !== null && !Array.isArray(value) && typeof mine === 'object' && mine !== null;
      base[key] = both ? { ...(mine as object), ...(value as object) } : value;
    }
    return base;
  }

  private async setUp(): Promise<void> {
    const servers: Array<Promise<string>> = [];
    for (let id = 0; id < this.options.hosts; id++) {
      const file = path.join(this.tmp, `h${id}.json`);
      fs.writeFileSync(file, JSON.stringify(this.configFor(id), null, 2));
      this.configFiles.push(file);
      const web = this.bed.spawn(hostName(id), [process.execPath, WEB, '--id', String(id), '--slots', String(this.options.slots), '--service-ms', String(this.options.serviceMs)]);
      servers.push(waitForLine(web, (l) => l === 'listening', 10000, `web server on h${id}`));
    }
    await Promise.all(servers);
    if (!this.options.dpr) return;
    // In parallel: each install renders the rules with a node process (~1 s).
    await Promise.all(Array.from({ length: this.options.hosts }, (_, id) => this.installAsync(id)));
    await Promise.all(Array.from({ length: this.options.hosts }, (_, id) => this.startDaemon(id)));
    await this.waitForMembership();
  }

  install(id: number): void {
    this.bed.exec(hostName(id), ['bash', INSTALL, this.configFiles[id]!]);
  }

  private installAsync(id: number): Promise<void> {
    const child = this.bed.spawn(hostName(id), ['bash', INSTALL, this.configFiles[id]!]);
    let err = '';
    child.stdout?.resume();
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    return new Promise((resolve, reject) => {
      child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`[h${id}] install.sh exited ${code}: ${err.trim()}`))));
    });
  }

  uninstall(id: number): void {
    this.bed.exec(hostName(id), ['bash', UNINSTALL, this.configFiles[id]!]);
  }

  async startDaemon(id: number): Promise<void> {
    const child = this.bed.spawn(hostName(id), [process.execPath, CLI, 'start', '--config', this.configFiles[id]!], {
      env: { ...process.env, DPR_LOG_LEVEL: process.env.DPR_TEST_LOG_LEVEL ?? 'warn' },
    });
    this.daemons.set(id, child);
    await waitForLine(child, (l) => l.startsWith('dpr: host'), 15000, `dpr daemon on h${id}`);
  }

  /** Sends a signal to a host's daemon and waits (bounded) for it to exit. */
  async signalDaemon(id: number, signal: NodeJS.Signals, waitMs = 20000): Promise<number | null> {
    const child = this.daemons.get(id);
    if (!child || child.exitCode !== null || child.signalCode !== null) return null;
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill(signal);
    const timer = new Promise<null>((resolve) => setTimeout(() => resolve(null), waitMs).unref());
    const code = await Promise.race([exited, timer]);
    this.daemons.delete(id);
    return code;
  }

  /** Every running daemon sees every other running daemon up. */
  async waitForMembership(timeoutMs = 10000): Promise<void> {
    const running = [...this.daemons.keys()];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const ok = running.every((id) => {
        const s = this.status(id);
        return running.every((other) => other === id || s.peers.some((p) => p.id === other && p.up));
      });
      if (ok) return;
      if (Date.now() > deadline) throw new Error(`peers did not all come up within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  status(id: number): DaemonStatus {
    const out = this.bed.exec(hostName(id), ['curl', '-sS', '--max-time', '3', 'http://127.0.0.1:9465/status']);
    return JSON.parse(out) as DaemonStatus;
  }

  metrics(id: number): string {
    return this.bed.exec(hostName(id), ['curl', '-sS', '--max-time', '3', 'http://127.0.0.1:9465/metrics']);
  }

  /** Runs a bounded load from the client namespace. */
  async load(spec: LoadSpec): Promise<LoadSummary> {
    const child = this.bed.spawn('client', [process.execPath, LOADGEN, JSON.stringify(spec)]);
    const line = await waitForLine(child, (l) => l.startsWith('{'), (spec.maxDurationMs ?? 120000) + 30000, 'load generator');
    return JSON.parse(line) as LoadSummary;
  }

  /** Holds long-lived connections from the client; resolves when they end. */
  async hold(spec: HoldSpec): Promise<HeldConnection[]> {
    const child = this.bed.spawn('client', [process.execPath, HOLD, JSON.stringify(spec)]);
    const line = await waitForLine(child, (l) => l.startsWith('['), spec.durationMs + 30000, 'long-lived connections');
    return JSON.parse(line) as HeldConnection[];
  }

  async destroy(): Promise<void> {
    for (const id of [...this.daemons.keys()]) await this.signalDaemon(id, 'SIGKILL', 3000);
    await this.bed.destroy();
    fs.rmSync(this.tmp, { recursive: true, force: true });
  }
}
