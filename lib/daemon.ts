// The dpr daemon of one host, composed of one-idea parts: the two queues
// (native), the peers (heartbeats), this host's health checks, its load
// meter, the routing policy, the flow-table snapshots. The daemon wires them:
// what changes who is eligible for new connections (a peer up or down, its
// health, draining, our own health) rebuilds the eligibility and hands it to
// the policy; our own changes are announced to peers at once.
import { EventEmitter } from 'node:events';
import type { ConfigError, DprConfig, HostEntry } from './config';
import { forwardedInAddresses, heartbeatAddress, selfHost } from './config';
import { openKernelFlows, readKernelFlows, type KernelFlows } from './kernel-flows';
import { install } from './install';
import type { MemberStatus } from './membership/member';
import { planReload } from './reload-plan';
import { renderRules } from './rules';
import { AnomalyLog } from './anomalies';
import { eligibleHosts, sameEligibility, type Eligibility } from './eligibility';
import { FlowSnapshots, type RestoredFlows } from './flow-snapshots';
import { HealthChecker, makeHostProbe, type HealthStatus, type Probe } from './health';
import { forwardedInConnections } from './host';
import { LoadMeter } from './load-meter';
import { LoopLag } from './loop-lag';
import { arpNeighbours, ndNeighbours, PeerMacs } from './neighbours';
import { TcpInUse } from './sockstat';
import { logger, setLogLevel, type Logger } from './log';
import { Queue, type NativeQueue, type QueueStats } from './native';
import { loadKeys } from './keys';
import { Peers, type PeerConfig, type PeerView } from './peers';
import { engineOptions, hostAddresses, queueOptions } from './plan';
import { createPolicy, type RoutingPolicy } from './policy';

export interface DaemonStatus {
  self: number;
  policy: DprConfig['policy'];
  draining: boolean;
  startedAt: number;
  /** This host's load as last measured (established connections on the service ports). */
  load: number;
  /** Hosts new connections may go to (the Maglev table's hosts). */
  liveHosts: number[];
  /** No host is healthy: this host serves everything that reaches it. */
  failOpen: boolean;
  health: HealthStatus;
  peers: PeerView[];
  entry: QueueStats | null;
  serve: QueueStats | null;
  heartbeats: ReturnType<Peers['counters']> | null;
  /** Flows read back from flows.stateFile at start, and of those the ones another host serves. */
  restored: RestoredFlows;
  /** The longest the event loop ran a 1-s timer late over the last 10 s. */
  eventLoopLagMaxMs: number;
  mode?: DprConfig['mode'];
  /** This host's addresses (IPv6 ones on a dual-stack cluster, canonical). */
  /** IPv4 ones absent on an IPv6-only host, IPv6 ones on an IPv4-only one. */
  addresses?: { service?: string; cluster?: string; service6?: string; cluster6?: string };
  /** Kernel modes, in /status and /metrics only (statusWithKernel): the kernel's forwarded flows. */
  kernel?: KernelFlows | null;
  /** Where the host list comes from and how that goes (set by lib/membership/member.ts, which runs the daemon). */
  membership?: MemberStatus;
}

type QueueCtor = typeof Queue;

/** How long a reading of the kernel's counters (lib/kernel-flows.ts) is served again. */
const KERNEL_READ_MS = 250;

/** What a test may replace: the queue class (a fake, no root needed), the health probe, the load count, the rules. */
export interface DaemonParts {
  QueueClass?: QueueCtor;
  probe?: Probe;
  countLoad?: (ports: readonly number[]) => number;
  /** Where a reload reads the configuration from (the CLI: the file it started with). */
  loadConfig?: () => Readonly<DprConfig>;
  /** Installs the rules for a configuration, all or nothing (default: lib/install.ts). */
  applyRules?: (c: Readonly<DprConfig>) => void;
}

export type ReloadResult =
  | { ok: true; changed: string[] }
  | { ok: false; key: string; reason: string };

/** How fresh the load must be, by use (lib/load-meter.ts). */
const LOAD_IDLE_MAX_AGE_MS = 10_000;
const STATUS_LOAD_MAX_AGE_MS = 500;
/**
 * How often the load the heartbeats report is looked at: every heartbeat
 * while traffic passes (a report as fresh as peers can use it), every second
 * when idle (an idle daemon wakes as little as it can); measured only if
 * traffic passed (lib/load-meter.ts).
 */
const LOAD_REPORT_IDLE_MS = 1000;
/** The neighbour table is read on the report tick at most this often (and whenever a peer comes up). */
const PEER_MAC_REFRESH_MS = 1000;

/** The other hosts, at the address their heartbeats come from (peers.family). */
const peerList = (c: Readonly<DprConfig>): PeerConfig[] =>
  c.hosts.filter((h) => h.id !== c.self).map((h) => ({ id: h.id, address: heartbeatAddress(c, h) }));

export class Daemon extends EventEmitter {
  private entry: NativeQueue | null = null;
  private serve: NativeQueue | null = null;
  private peers: Peers | null = null;
  private anomalyTimer: NodeJS.Timeout | null = null;
  private reportTimer: NodeJS.Timeout | null = null;
  private peerMacs: PeerMacs | null = null;
  private draining = false;
  private stopped = false;
  private eligibility: Eligibility | null = null;
  private restored: RestoredFlows = { flows: 0, forwarded: 0 };
  /** Hosts a reload removed: still in the data path and the rules until a restart, so their forwarded connections finish. */
  private retired: HostEntry[] = [];
  private config: Readonly<DprConfig>;
  private health: HealthChecker;
  private readonly parts: DaemonParts;
  private readonly meter: LoadMeter;
  private readonly policy: RoutingPolicy;
  private readonly snapshots: FlowSnapshots;
  private readonly loopLag = new LoopLag();
  private readonly tcpInUse = new TcpInUse();
  private readonly QueueClass: QueueCtor;
  private readonly startedAt = Date.now();
  private kernelRead: KernelFlows | null = null;
  private kernelReadAt = 0;
  private readonly log: Logger;

  constructor(config: Readonly<DprConfig>, parts: DaemonParts = {}) {
    super();
    const c = config;
    this.config = config;
    this.parts = parts;
    this.log = logger('daemon');
    this.QueueClass = parts.QueueClass ?? Queue;
    this.health = this.makeHealth(c);
    this.meter = new LoadMeter({
      ports: c.servicePorts,
      // A report a heartbeat late is as fresh as peers can use it.
      reportMaxAgeMs: Math.max(c.peers.heartbeatMs, 100),
      idleMaxAgeMs: LOAD_IDLE_MAX_AGE_MS,
      activity: () => (this.entry?.packets() ?? 0) + (this.serve?.packets() ?? 0),
      log: logger('load'),
      count: parts.countLoad,
      quick: parts.countLoad ? null : () => this.tcpInUse.read(),
      // Every measurement, whatever asked for it, is what the next heartbeat says.
      onMeasured: (load) => this.peers?.setLocal({ load }),
      // The load policy decides in the entry queue's thread on this count, carried forward there.
      onCounted: (load, quick) => this.entry?.calibrateLoad(load, quick ?? -1),
    });
    this.policy = createPolicy(c);
    this.snapshots = new FlowSnapshots(c.flows.stateFile, c.flows.snapshotMs, logger('flows'));
  }

  async start(): Promise<void> {
    const c = this.config;
    const keys = loadKeys(c.peers);
    try {
      // Serve first: a peer may forward to us as soon as it hears our heartbeat.
      this.serve = new this.QueueClass(queueOptions(c, 'serve'), engineOptions(c, 'serve'));
      this.serve.start();
      this.entry = new this.QueueClass(queueOptions(c, 'entry'), engineOptions(c, 'entry', keys.sign));
      this.policy.attach(this.entry);
      // The first count, before any decision.
      this.meter.measure();
      // One L2 segment: forwarded packets must come from their entry host's MAC (lib/neighbours).
      if (c.peers.routersBetween === 0) {
        this.peerMacs = new PeerMacs(c.hosts, c.self, (macs) => {
          this.serve?.setPeerMacs(macs);
          this.entry?.setPeerMacs(macs);
        }, c.peers.family === 'ipv6' ? ndNeighbours() : arpNeighbours());
        this.peerMacs.refresh();
      }
      // Our own health first: the first heartbeat must say it.
      await this.health.start();
      // Until peers are heard, every new connection is served here (or, if
      // our own service is down, still here: nobody else is known).
      this.updateEligibility();
      this.restored = this.snapshots.restore(this.entry);
      this.entry.start();
      this.snapshots.start(this.entry);
      this.peers = this.makePeers(keys.sign, keys.alsoAccept);
      this.meter.forReport();
      this.peers.setLocal({ load: this.meter.last, draining: this.draining, healthy: this.health.healthy });
      this.peers.on('change', () => this.updateEligibility());
      // A peer that comes up has just been heard: its MAC is in the neighbour table now.
      this.peers.on('up', () => this.peerMacs?.refresh());
      this.peers.on('listener', (port, lost) => {
        if (lost) this.health.listenerLost(port);
      });
      await this.peers.start();
    } catch (err) {
      // Nothing half-started stays behind: queues unbound, checks stopped.
      await this.stop().catch(() => undefined);
      throw err;
    }
    const anomalies = new AnomalyLog(logger('datapath'));
    this.anomalyTimer = setInterval(() => {
      anomalies.check('entry', this.entry?.stats() ?? null);
      anomalies.check('serve', this.serve?.stats() ?? null);
      this.peers?.logRejections();
    }, 10_000);
    this.anomalyTimer.unref();
    this.scheduleReport(LOAD_REPORT_IDLE_MS);
    this.log.info('started', { self: c.self, policy: c.policy, healthy: this.health.healthy, entryQueue: c.queues.entry, serveQueue: c.queues.serve });
  }

  /** The one timer an idle daemon runs often; it also tells how late the event loop is. */
  private scheduleReport(inMs: number): void {
    const due = performance.now() + inMs;
    this.reportTimer = setTimeout(() => {
      this.loopLag.sample(performance.now() - due);
      const busy = this.meter.forReport();
      this.peerMacs?.refresh(PEER_MAC_REFRESH_MS);
      if (!this.stopped) this.scheduleReport(busy ? this.config.peers.heartbeatMs : LOAD_REPORT_IDLE_MS);
    }, inMs);
    this.reportTimer.unref();
  }

  private makeHealth(c: Readonly<DprConfig>): HealthChecker {
    const settings = { ...c.health, ports: c.servicePorts };
    const me = selfHost(c);
    const probe = this.parts.probe ?? makeHostProbe(settings, me, c.health.address6);
    const health = new HealthChecker(settings, probe, logger('health'));
    // setLocal announces the change at once.
    health.on('change', (healthy) => {
      this.peers?.setLocal({ healthy });
      this.updateEligibility();
    });
    return health;
  }

  private makePeers(key: Buffer, alsoAccept: Buffer[]): Peers {
    const c = this.config;
    return new Peers({
      self: c.self,
      bindAddress: heartbeatAddress(c, selfHost(c)),
      port: c.peers.port,
      peers: peerList(c),
      key,
      alsoAccept,
      heartbeatMs: c.peers.heartbeatMs,
      deadAfterMs: c.peers.deadAfterMs,
      // Watched whatever health.type says, so a reload can turn checks on.
      watchPorts: c.health.listenerCheckMs > 0 ? c.servicePorts : [],
      watchEveryMs: c.health.listenerCheckMs,
      ...(this.entry ? { loadBoard: this.entry.loadBoard() } : {}),
      log: logger('peers'),
    });
  }

  private updateEligibility(): void {
    const weights = new Map(this.config.hosts.map((h) => [h.id, h.weight]));
    const e = eligibleHosts(this.config.self, this.health.healthy, this.peers?.snapshot() ?? [], (id) => weights.get(id) ?? 0);
    if (sameEligibility(this.eligibility, e)) return;
    const before = this.eligibility;
    this.eligibility = e;
    if (e.failOpen && !before?.failOpen && (this.peers?.snapshot().length ?? 0) > 0) {
      this.log.warn('no healthy host: serving every connection that arrives here (fail open)');
    }
    this.log.info('eligible hosts changed', { hosts: e.hosts, weights: e.weights, failOpen: e.failOpen });
    this.policy.setEligible(e);
  }

  /**
   * Re-reads the configuration and applies what changed, or refuses it
   * whole (the old one stays) when it does not validate or changes a key that
   * needs a restart. Hosts that join get new connections once their
   * heartbeats are heard; hosts that leave get none, and stay in the data
   * path and the rules until a restart so their forwarded connections finish.
   */
  async reload(): Promise<ReloadResult> {
    let next: Readonly<DprConfig>;
    try {
      if (!this.parts.loadConfig) return { ok: false, key: '--config', reason: 'this daemon was not started from a configuration it can read again' };
      next = this.parts.loadConfig();
    } catch (err) {
      const e = err as ConfigError;
      return this.refuse(e.key ?? 'config', e.reason ?? e.message);
    }
    const plan = planReload(this.config, next);
    if (plan.restartNeeded.length) {
      return this.refuse(plan.restartNeeded[0]!, `cannot change while dpr runs (changed: ${plan.restartNeeded.join(', ')}); restart dpr to apply it`);
    }
    let keys: { sign: Buffer; alsoAccept: Buffer[] };
    try {
      keys = loadKeys(next.peers);
    } catch (err) {
      return this.refuse('peers.key', (err as Error).message);
    }
    const retired = [...this.retired, ...this.config.hosts].filter((h) => !next.hosts.some((n) => n.id === h.id));
    const tables = { ...next, hosts: [...next.hosts, ...retired].sort((a, b) => a.id - b.id) };
    try {
      // First what can fail, all or nothing: the rules.
      if (plan.live.some((k) => k === 'hosts' || k === 'clusterCidr' || k === 'clusterCidr6')) {
        (this.parts.applyRules ?? ((c) => install(renderRules(c))))(tables);
      }
      const a = hostAddresses(tables);
      for (const q of [this.entry, this.serve]) q?.setHosts(a.serviceAddrs, a.clusterAddrs, a.serviceAddrs6, a.clusterAddrs6);
    } catch (err) {
      return this.refuse('hosts', (err as Error).message);
    }
    this.retired = retired;
    this.peerMacs?.setHosts(tables.hosts);
    this.peers?.setKeys(keys.sign, keys.alsoAccept);
    this.peers?.setPeers(peerList(next));
    if (plan.live.some((k) => k.startsWith('health.'))) {
      this.health.stop();
      this.health = this.makeHealth(next);
      await this.health.start();
      this.peers?.setLocal({ healthy: this.health.healthy });
    }
    this.policy.reconfigure(next);
    setLogLevel(next.log.level);
    this.config = next;
    this.updateEligibility();
    this.log.info('configuration reloaded', { changed: plan.live, retired: retired.map((h) => h.id) });
    return { ok: true, changed: plan.live };
  }

  private refuse(key: string, reason: string): ReloadResult {
    this.log.warn('reload refused; the configuration in use stays', { key, reason });
    return { ok: false, key, reason };
  }

  /** Ends a drain: new connections are forwarded again, and peers send theirs again. */
  undrain(): boolean {
    if (!this.draining) return false;
    this.draining = false;
    this.entry?.setDraining(false);
    this.peers?.setLocal({ draining: false });
    this.log.info('no longer draining');
    return true;
  }

  /**
   * Stops new forwarded connections (peers hear it at once and stop sending
   * us theirs) and waits, bounded, until no connection is forwarded either
   * way. Direct local connections are not waited for: they live in the
   * kernel and outlast the daemon. Ends early (false) if the daemon stops.
   */
  async drain(timeoutMs = this.config.drain.timeoutMs): Promise<boolean> {
    if (!this.draining) {
      this.draining = true;
      this.entry?.setDraining(true);
      this.peers?.setLocal({ draining: true });
      this.log.info('draining', { timeoutMs });
    }
    const deadline = Date.now() + timeoutMs;
    // Retired hosts too: their forwarded flows go on until they end.
    const known = { ...this.config, hosts: [...this.config.hosts, ...this.retired] };
    const peers = known.hosts.map((h) => h.id).filter((id) => id !== this.config.self);
    const restore = forwardedInAddresses(known, peers);
    const kernel = this.config.mode !== 'rewrite';
    for (;;) {
      if (this.stopped || !this.draining) return false;
      const f = this.entry?.stats().flows.forwarded;
      // Kernel modes: the flows live in the kernel's sets, not in the table.
      const out = kernel ? openKernelFlows(known, peers) : f ? f.syn + f.probation + f.established : 0;
      const inbound = forwardedInConnections(restore, this.config.servicePorts);
      if (out === 0 && inbound === 0) return true;
      if (Date.now() >= deadline) {
        this.log.warn('drain timed out', { forwardedOut: out, forwardedIn: inbound });
        return false;
      }
      await new Promise((r) => setTimeout(r, kernel ? 500 : 100));
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.anomalyTimer) clearInterval(this.anomalyTimer);
    if (this.reportTimer) clearTimeout(this.reportTimer);
    this.anomalyTimer = this.reportTimer = null;
    this.health.stop();
    // Entry first: from here on new connections are served here (fail-open)
    // and forwarded flows wait for the next daemon, which reads the snapshot.
    this.entry?.stop();
    await this.snapshots.stop(this.entry);
    this.serve?.stop();
    await this.peers?.stop();
    this.tcpInUse.close();
    this.log.info('stopped');
  }

  status(): DaemonStatus {
    return {
      self: this.config.self,
      policy: this.config.policy,
      draining: this.draining,
      startedAt: this.startedAt,
      // Asked for rarely (`dpr status`, a scrape): worth a fresh measurement.
      load: this.meter.forStatus(STATUS_LOAD_MAX_AGE_MS),
      liveHosts: this.eligibility?.hosts ?? [this.config.self],
      failOpen: this.eligibility?.failOpen ?? false,
      health: this.health.status(),
      peers: this.peers?.snapshot() ?? [],
      entry: this.entry?.stats() ?? null,
      serve: this.serve?.stats() ?? null,
      heartbeats: this.peers?.counters() ?? null,
      restored: this.restored,
      eventLoopLagMaxMs: Math.round(this.loopLag.maxMs()),
      mode: this.config.mode,
      addresses: this.addresses(),
    };
  }

  private addresses(): NonNullable<DaemonStatus['addresses']> {
    const h = selfHost(this.config);
    return { ...(h.service ? { service: h.service, cluster: h.cluster } : {}), ...(h.service6 ? { service6: h.service6, cluster6: h.cluster6 } : {}) };
  }

  /** status() and, in the kernel modes, what the kernel counts (a few ms: for operators and scrapes). */
  statusWithKernel(): DaemonStatus {
    // At most four readings a second (two processes each), however often a
    // tool polls /status; a reading is at most 250 ms old.
    const now = Date.now();
    if (this.config.mode !== 'rewrite' && now - this.kernelReadAt >= KERNEL_READ_MS) {
      this.kernelRead = readKernelFlows(this.config);
      this.kernelReadAt = now;
    }
    return { ...this.status(), kernel: this.kernelRead };
  }
}
