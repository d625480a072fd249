// A dpr cluster in network namespaces (DESIGN §9): N hosts and a client on one
// bridge, each host with a capacity-capped web server, dpr's rules installed
// by iptables/install.sh and the daemon started as `dpr start`, exactly as an
// operator would on real hosts. Used by the demo, the daemon tests and the
// cluster benches. Everything it makes goes when destroy() runs.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { Testbed } from '../test/support/netns';
import { EtcdServer } from '../test/support/etcd';
import { waitForLine } from '../test/support/lines';
import type { LoadSpec, LoadSummary } from './loadgen';
import { DEFAULT_STALL_MS, type HeldConnection, type HoldSpec } from './hold';
import type { DaemonStatus } from '../lib/daemon';

const ROOT = path.resolve(__dirname, '..', '..');
const CLI = path.join(ROOT, 'dist', 'lib', 'cli.js');
const WEB = path.join(ROOT, 'dist', 'tools', 'web-server.js');
const LOADGEN = path.join(ROOT, 'dist', 'tools', 'loadgen.js');
const HOLD = path.join(ROOT, 'dist', 'tools', 'hold.js');
const INSTALL = path.join(ROOT, 'iptables', 'install.sh');
const UNINSTALL = path.join(ROOT, 'iptables', 'uninstall.sh');

export const CLIENT_ADDRESS = '198.18.0.200';
/** The client's IPv6 address in a dual-stack cluster (`ipv6: true`; 2001:2::/48 only). */
export const CLIENT_ADDRESS6 = '2001:2::c8';
/** The peers key every host of a test cluster shares (so a bench can derive the Maglev key the daemons use). */
export const CLUSTER_KEY = '5eb63bbbe01eeed093cb22bb8f5acdc3';
/** A host's service address: what the client dials. */
export const hostAddress = (id: number): string => `198.18.0.${id + 1}`;
/** A host's cluster address on the back network of a `networks: 'split'` cluster. */
export const backAddress = (id: number): string => `198.18.1.${id + 1}`;
/** A host's cluster address in a `networks: 'routed'` cluster: a subnet of its own, behind the router. */
export const routedAddress = (id: number): string => `198.18.${8 + id}.1`;
const routerAddress = (id: number): string => `198.18.${8 + id}.254`;
/** A host's IPv6 service address in a dual-stack cluster: what an IPv6 client dials. */
export const hostAddress6 = (id: number): string => `2001:2::${(id + 1).toString(16)}`;
/** A host's IPv6 cluster address on the back network of a dual-stack `networks: 'split'` cluster. */
export const backAddress6 = (id: number): string => `2001:2:0:1::${(id + 1).toString(16)}`;
/** A host's IPv6 cluster address in a dual-stack `networks: 'routed'` cluster (2001:2:0:8::/61, as routedAddress). */
export const routedAddress6 = (id: number): string => `2001:2:0:${(8 + id).toString(16)}::1`;
const routerAddress6 = (id: number): string => `2001:2:0:${(8 + id).toString(16)}::fe`;
/** The IPv6 restore block of test clusters (the default is no test address). */
const RESTORE_CIDR6 = '2001:2:0:ff::/64';
const CLUSTER_CIDR6: Record<Networks, string> = { one: '2001:2::/64', split: '2001:2:0:1::/64', routed: '2001:2:0:8::/61' };

/** The cluster addresses of each layout, and the network that holds them. */
function clusterAddressOf(networks: Networks, id: number): string {
  return networks === 'split' ? backAddress(id) : networks === 'routed' ? routedAddress(id) : hostAddress(id);
}
function clusterAddressOf6(networks: Networks, id: number): string {
  return networks === 'split' ? backAddress6(id) : networks === 'routed' ? routedAddress6(id) : hostAddress6(id);
}
const CLUSTER_CIDR: Record<Networks, string> = { one: '198.18.0.0/24', split: '198.18.1.0/24', routed: '198.18.8.0/21' };

type Networks = 'one' | 'split' | 'routed';
export const hostName = (id: number): string => `h${id}`;

export interface ClusterOptions {
  hosts: number;
  policy?: 'hash' | 'load';
  /** Merged into every host's configuration. */
  config?: Record<string, unknown>;
  /** Web server capacity per host. */
  slots?: number;
  /** Web server capacity by host id, where it differs from `slots` (a heterogeneous cluster). */
  slotsByHost?: number[];
  serviceMs?: number;
  /** Where the web servers listen: '0.0.0.0' (default; '::' with `ipv6`), or '::' (dual-stack: IPv4 clients on IPv6 sockets). */
  webHost?: '0.0.0.0' | '::';
  /**
   * Dual-stack (issue 15): every host also has hostAddress6(id) as service6
   * and, as cluster6, the same ('one'), backAddress6(id) ('split') or
   * routedAddress6(id) ('routed', the router forwarding IPv6 too); the
   * client also has CLIENT_ADDRESS6.
   */
  ipv6?: boolean;
  /**
   * false: IPv6-only hosts (with `ipv6`): no IPv4 address on the hosts, the
   * client or etcd (ETCD_ADDRESS6), none in the configuration, heartbeats
   * over IPv6. `one` or `split` networks.
   */
  ipv4?: boolean;
  /**
   * The hosts in the configuration at the start (default: all): the others
   * have their namespace and web server but no rules, no daemon, and are in
   * nobody's host list until setMembers() puts them there (a host joining).
   */
  members?: number[];
  /** hosts[].weight by host id (default: none written, so 1). */
  weights?: number[];
  /** Install rules and start daemons (false: a plain cluster, for the no-dpr baseline). */
  dpr?: boolean;
  /**
   * 'one' (default): one network, service address = cluster address.
   * 'split': a front network (client and service addresses, 198.18.0.0/24)
   * and a back network the client is not on (cluster addresses, 198.18.1.0/24),
   * as in the README's example of a real deployment.
   * 'routed': as 'split', but every host's cluster address is on a network of
   * its own and a router namespace ('router') joins them: peers are one
   * router apart (up to 8 hosts).
   */
  networks?: Networks;
  tag?: string;
  /**
   * More namespaces on the same bridge, with no web server and no dpr: a
   * central load balancer in front of the hosts, for the benches that compare
   * with one. Their addresses must lie in 198.18.0.0/24 and clash with no host.
   */
  extraHosts?: Array<{ name: string; address: string }>;
  /**
   * Starts host `id`'s web server in its namespace instead of
   * tools/web-server.ts (a bench's nginx), resolving once it listens; it
   * must listen on the wildcard address of port 80. slots and serviceMs are
   * then unused.
   */
  web?: (bed: Testbed, id: number) => Promise<unknown>;
  /**
   * Membership from etcd (issue 16): an etcd of its own in namespace 'etcd'
   * (ETCD_ADDRESS), every host's file describes only itself, and the
   * daemons start one after the other, so host i claims id i. `members` are
   * the hosts started at first; startDaemon() lets another join.
   */
  etcd?: boolean;
}

/** Where a cluster with `etcd: true` runs its etcd. */
export const ETCD_ADDRESS = '198.18.0.250';
/** etcd's address in a cluster of IPv6-only hosts (`ipv4: false`). */
export const ETCD_ADDRESS6 = '2001:2::fa';

export class Cluster {
  readonly bed: Testbed;
  readonly configFiles: string[] = [];
  private readonly daemons = new Map<number, ChildProcess>();
  private members: number[];
  private weights: number[] | undefined;
  private readonly webServers = new Map<number, ChildProcess>();
  private readonly tmp: string;

  private constructor(
    readonly options: Required<Omit<ClusterOptions, 'config' | 'tag' | 'extraHosts' | 'members' | 'web' | 'weights' | 'etcd' | 'slotsByHost' | 'ipv6' | 'ipv4'>> & Pick<ClusterOptions, 'config' | 'web' | 'etcd' | 'slotsByHost' | 'ipv6' | 'ipv4'>,
    tag: string,
    extraHosts: NonNullable<ClusterOptions['extraHosts']> = [],
    members?: number[],
    weights?: number[],
  ) {
    this.members = members ?? Array.from({ length: options.hosts }, (_, id) => id);
    this.weights = weights;
    const six = options.ipv6 === true;
    if (options.ipv4 === false && (!six || options.networks === 'routed')) throw new Error('ipv4: false needs ipv6, and one or split networks');
    const v4 = (a: string): string[] => (options.ipv4 === false ? [] : [`${a}/24`]);
    this.bed = Testbed.create(
      [
        { name: 'client', addrs: [...v4(CLIENT_ADDRESS), ...(six ? [`${CLIENT_ADDRESS6}/64`] : [])] },
        ...Array.from({ length: options.hosts }, (_, id) => ({
          name: hostName(id),
          addrs: [...v4(hostAddress(id)), ...(six ? [`${hostAddress6(id)}/64`] : [])],
          nics: options.networks === 'split' ? [{ bridge: 'back', addrs: [...v4(backAddress(id)), ...(six ? [`${backAddress6(id)}/64`] : [])] }]
            : options.networks === 'routed' ? [{ bridge: `back${id}`, addrs: [`${routedAddress(id)}/24`, ...(six ? [`${routedAddress6(id)}/64`] : [])] }] : [],
        })),
        ...(options.networks === 'routed'
          ? [{ name: 'router', addrs: [], nics: Array.from({ length: options.hosts }, (_, id) => ({ bridge: `back${id}`, addrs: [`${routerAddress(id)}/24`, ...(six ? [`${routerAddress6(id)}/64`] : [])] })) }]
          : []),
        ...extraHosts.map((h) => ({ name: h.name, addrs: [`${h.address}/24`] })),
        ...(options.etcd ? [{ name: 'etcd', addrs: options.ipv4 === false ? [`${ETCD_ADDRESS6}/64`] : [`${ETCD_ADDRESS}/24`] }] : []),
      ],
      tag,
    );
    this.tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dpr-cluster-'));
    this.etcd = options.etcd ? new EtcdServer(this.bed, 'etcd', options.ipv4 === false ? ETCD_ADDRESS6 : ETCD_ADDRESS) : null;
  }

  /** The cluster's etcd (`etcd: true`), to stop and start again. */
  readonly etcd: EtcdServer | null;

  static async create(o: ClusterOptions): Promise<Cluster> {
    const c = new Cluster(
      { hosts: o.hosts, policy: o.policy ?? 'hash', slots: o.slots ?? 16, serviceMs: o.serviceMs ?? 2, webHost: o.webHost ?? (o.ipv6 ? '::' : '0.0.0.0'), dpr: o.dpr ?? true, networks: o.networks ?? 'one', config: o.config, web: o.web, etcd: o.etcd, slotsByHost: o.slotsByHost, ipv6: o.ipv6, ipv4: o.ipv4 },
      o.tag ?? 'c',
      o.extraHosts,
      o.members,
      o.weights,
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
    const six = this.options.ipv6 === true;
    const four = this.options.ipv4 !== false;
    const hosts = this.members.map((i) => ({
      id: i, ...(four ? { service: hostAddress(i), cluster: clusterAddressOf(this.options.networks, i) } : {}),
      ...(this.weights?.[i] !== undefined ? { weight: this.weights[i] } : {}),
      ...(six ? { service6: hostAddress6(i), cluster6: clusterAddressOf6(this.options.networks, i) } : {}),
    }));
    const base: Record<string, unknown> = {
      ...(this.etcd ? this.etcdMembership(id) : { self: id, hosts }),
      ...(four ? { clusterCidr: CLUSTER_CIDR[this.options.networks] } : {}),
      ...(six ? { clusterCidr6: CLUSTER_CIDR6[this.options.networks], restoreCidr6: RESTORE_CIDR6 } : {}),
      policy: this.options.policy,
      peers: { key: CLUSTER_KEY, heartbeatMs: 100, deadAfterMs: 500, ...(four ? {} : { family: 'ipv6' }) },
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

  /** An etcd host's file: its own addresses and where etcd is; no host list, no id. */
  private etcdMembership(id: number): Record<string, unknown> {
    return {
      membership: {
        source: 'etcd', ...(this.options.ipv4 === false ? {} : { service: hostAddress(id), cluster: clusterAddressOf(this.options.networks, id) }),
        ...(this.options.ipv6 === true ? { service6: hostAddress6(id), cluster6: clusterAddressOf6(this.options.networks, id) } : {}),
        ...(this.weights?.[id] !== undefined ? { weight: this.weights[id] } : {}),
        etcd: { endpoints: [this.etcd!.endpoint], leaseTtlS: 3, stateFile: path.join(this.tmp, `h${id}.membership.json`), retryMinMs: 100, retryMaxMs: 1000 },
      },
    };
  }

  /** A 'routed' layout: the router forwards between the hosts' networks, each host routes the others' through it. */
  private route(): void {
    if (this.options.networks !== 'routed') return;
    this.bed.sysctl('router', 'net.ipv4.ip_forward', 1);
    // Forwarded packets keep the client's source address, which the router
    // has no route back to: a strict reverse-path check would drop them.
    for (const k of ['all', 'default']) this.bed.sysctl('router', `net.ipv4.conf.${k}.rp_filter`, 0);
    for (let id = 0; id < this.options.hosts; id++) {
      this.bed.sysctl('router', `net.ipv4.conf.eth${id + 1}.rp_filter`, 0);
      this.bed.exec(hostName(id), ['ip', 'route', 'add', CLUSTER_CIDR.routed, 'via', routerAddress(id)]);
      if (this.options.ipv6) this.bed.exec(hostName(id), ['ip', '-6', 'route', 'add', CLUSTER_CIDR6.routed, 'via', routerAddress6(id)]);
    }
    if (this.options.ipv6) this.bed.sysctl('router', 'net.ipv6.conf.all.forwarding', 1);
  }

  private async setUp(): Promise<void> {
    this.route();
    const servers: Array<Promise<unknown>> = [];
    for (let id = 0; id < this.options.hosts; id++) {
      const file = path.join(this.tmp, `h${id}.json`);
      fs.writeFileSync(file, JSON.stringify(this.configFor(id), null, 2));
      this.configFiles.push(file);
      if (this.options.web) {
        servers.push(this.options.web(this.bed, id));
        continue;
      }
      servers.push(this.startWebServer(id));
    }
    await Promise.all(servers);
    if (!this.options.dpr) return;
    // In parallel: each install renders the rules with a node process (~1 s).
    await Promise.all(this.members.map((id) => this.installAsync(id)));
    if (this.etcd) {
      await this.etcd.start();
      // One after the other: each claims the lowest free id, so host i is id i.
      for (const id of this.members) await this.startDaemon(id);
    } else {
      await Promise.all(this.members.map((id) => this.startDaemon(id)));
    }
    await this.waitForMembership();
  }

  /** Rewrites every host's configuration file with these hosts in the host list (a host joins or leaves); reloads nothing. */
  setMembers(ids: number[]): void {
    this.members = [...ids].sort((a, b) => a - b);
    for (let id = 0; id < this.options.hosts; id++) fs.writeFileSync(this.configFiles[id]!, JSON.stringify(this.configFor(id), null, 2));
  }

  /** Rewrites every host's configuration file with these weights (by host id); reloads nothing. */
  setWeights(weights: number[]): void {
    this.weights = [...weights];
    for (let id = 0; id < this.options.hosts; id++) fs.writeFileSync(this.configFiles[id]!, JSON.stringify(this.configFor(id), null, 2));
  }

  /** Rewrites host `id`'s configuration with `change` merged in (one level deep, like `config`). */
  patchConfig(id: number, change: Record<string, unknown>): void {
    const file = this.configFiles[id]!;
    const c = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
    for (const [k, v] of Object.entries(change)) {
      const mine = c[k];
      c[k] = typeof v === 'object' && v !== null && !Array.isArray(v) && typeof mine === 'object' && mine !== null ? { ...(mine as object), ...(v as object) } : v;
    }
    fs.writeFileSync(file, JSON.stringify(c, null, 2));
  }

  /** Starts host `id`'s web server (again) and waits until it listens. */
  async startWebServer(id: number): Promise<void> {
    const o = this.options;
    const web = this.bed.spawn(hostName(id), [process.execPath, WEB, '--id', String(id), '--slots', String(o.slotsByHost?.[id] ?? o.slots), '--service-ms', String(o.serviceMs), '--host', o.webHost]);
    this.webServers.set(id, web);
    await waitForLine(web, (l) => l === 'listening', 10000, `web server on h${id}`);
  }

  /** Kills host `id`'s web server (a crash, or a deploy restarting it); its daemon keeps running. */
  async killWebServer(id: number): Promise<void> {
    const web = this.webServers.get(id);
    this.webServers.delete(id);
    if (!web || web.exitCode !== null || web.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => web.once('exit', () => resolve()));
    web.kill('SIGKILL');
    await gone;
  }

  /** Sends a signal to host `id`'s web server (SIGUSR1: /health answers 503; SIGUSR2: 200 again). */
  signalWebServer(id: number, signal: NodeJS.Signals): void {
    this.webServers.get(id)?.kill(signal);
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

  /** Runs a `dpr` command (as an operator on host `id` would, with its config) and returns its exit code and output. */
  cli(id: number, args: string[], timeoutMs = 60000): { code: number | null; stdout: string; stderr: string } {
    const r = spawnSync('ip', ['netns', 'exec', this.bed.ns(hostName(id)), process.execPath, CLI, ...args, '--config', this.configFiles[id]!], {
      encoding: 'utf8', timeout: timeoutMs,
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  /** True while host `id`'s daemon (started by startDaemon) has not exited or been signalled by signalDaemon. */
  daemonRunning(id: number): boolean {
    const child = this.daemons.get(id);
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  }

  /** The process id of a host's running daemon (`ip netns exec` execs it: the child is the daemon). */
  daemonPid(id: number): number | undefined {
    return this.daemons.get(id)?.pid;
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
      if (Date.now() > deadline) {
        // What each host saw, for the failure's message.
        const seen = running.map((id) => {
          const st = this.status(id);
          return `h${id}: ${st.peers.map((p) => `${p.id}@${p.address} ${p.up ? 'up' : 'down'}`).join(', ') || 'no peers'}${st.membership ? ` (membership ${st.membership.state}${st.membership.lastError ? `: ${st.membership.lastError}` : ''})` : ''}`;
        });
        throw new Error(`peers did not all come up within ${timeoutMs} ms; ${seen.join('; ')}`);
      }
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

  /** Holds long-lived connections from the client for spec.durationMs; resolves when they end. */
  async hold(spec: HoldSpec & { durationMs: number }): Promise<HeldConnection[]> {
    const child = this.bed.spawn('client', [process.execPath, HOLD, JSON.stringify(spec)]);
    const line = await waitForLine(child, (l) => l.startsWith('['), spec.durationMs + (spec.stallMs ?? DEFAULT_STALL_MS) + 30000, 'long-lived connections');
    return JSON.parse(line) as HeldConnection[];
  }

  /** Holds long-lived connections from the client until stop() is called; stop() resolves when they end. */
  holdOpen(spec: Omit<HoldSpec, 'durationMs'>): { stop(): Promise<HeldConnection[]> } {
    const child = this.bed.spawn('client', [process.execPath, HOLD, JSON.stringify(spec)], { stdio: ['pipe', 'pipe', 'pipe'] });
    return {
      stop: async () => {
        const line = waitForLine(child, (l) => l.startsWith('['), (spec.stallMs ?? DEFAULT_STALL_MS) + 30000, 'long-lived connections');
        child.stdin!.end('stop\n');
        return JSON.parse(await line) as HeldConnection[];
      },
    };
  }

  async destroy(): Promise<void> {
    for (const id of [...this.daemons.keys()]) await this.signalDaemon(id, 'SIGKILL', 3000);
    await this.etcd?.destroy();
    await this.bed.destroy();
    fs.rmSync(this.tmp, { recursive: true, force: true });
  }
}
