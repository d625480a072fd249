// The dpr daemon of one host, composed of one-idea parts: the two queues
// (native), the peers (heartbeats), this host's health checks, its load
// meter, the routing policy, the flow-table snapshots. The daemon wires them:
// what changes who is eligible for new connections (a peer up or down, its
// health, draining, our own health) rebuilds the eligibility and hands it to
// the policy; our own changes are announced to peers at once.
import { EventEmitter } from 'node:events';
import type { DprConfig } from './config';
import { restoreAddress, selfHost } from './config';
import { AnomalyLog } from './anomalies';
import { eligibleHosts, sameEligibility, type Eligibility } from './eligibility';
import { FlowSnapshots, type RestoredFlows } from './flow-snapshots';
import { HealthChecker, makeProbe, type HealthStatus, type Probe } from './health';
import { forwardedInConnections } from './host';
import { LoadMeter } from './load-meter';
import { LoopLag } from './loop-lag';
import { logger, type Logger } from './log';
import { Queue, type NativeQueue, type QueueStats } from './native';
import { Peers, loadKey, type PeerView } from './peers';
import { engineOptions, queueOptions } from './plan';
import { createPolicy, type DecisionCounts, type RoutingPolicy } from './policy';

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
  decisions: DecisionCounts;
  heartbeats: ReturnType<Peers['counters']> | null;
  /** Flows read back from flows.stateFile at start, and of those the ones another host serves. */
  restored: RestoredFlows;
  /** The longest the event loop ran a 1-s timer late over the last 10 s. */
  eventLoopLagMaxMs: number;
}

type QueueCtor = typeof Queue;

/** What a test may replace: the queue class (a fake, no root needed), the health probe, the load count. */
export interface DaemonParts {
  QueueClass?: QueueCtor;
  probe?: Probe;
  countLoad?: (ports: readonly number[]) => number;
}

/** How fresh the load must be, by use (lib/load-meter.ts). */
const LOAD_DECISION_MAX_AGE_MS = 5;
const LOAD_IDLE_MAX_AGE_MS = 10_000;
const STATUS_LOAD_MAX_AGE_MS = 500;
/** How often the load heartbeats report is looked at (measured only if traffic passed: lib/load-meter.ts). */
const LOAD_REPORT_EVERY_MS = 1000;

export class Daemon extends EventEmitter {
  private entry: NativeQueue | null = null;
  private serve: NativeQueue | null = null;
  private peers: Peers | null = null;
  private anomalyTimer: NodeJS.Timeout | null = null;
  private reportTimer: NodeJS.Timeout | null = null;
  private draining = false;
  private stopped = false;
  private eligibility: Eligibility | null = null;
  private restored: RestoredFlows = { flows: 0, forwarded: 0 };
  private readonly health: HealthChecker;
  private readonly meter: LoadMeter;
  private readonly policy: RoutingPolicy;
  private readonly snapshots: FlowSnapshots;
  private readonly loopLag = new LoopLag();
  private readonly QueueClass: QueueCtor;
  private readonly startedAt = Date.now();
  private readonly log: Logger;

  constructor(private readonly config: Readonly<DprConfig>, parts: DaemonParts = {}) {
    super();
    const c = config;
    this.log = logger('daemon');
    this.QueueClass = parts.QueueClass ?? Queue;
    const h = c.health;
    const settings = { ...h, ports: c.servicePorts };
    this.health = new HealthChecker(settings, parts.probe ?? makeProbe(settings, selfHost(c).service), logger('health'));
    this.meter = new LoadMeter({
      ports: c.servicePorts,
      decisionMaxAgeMs: LOAD_DECISION_MAX_AGE_MS,
      // A report a heartbeat late is as fresh as peers can use it.
      reportMaxAgeMs: Math.max(c.peers.heartbeatMs, 100),
      idleMaxAgeMs: LOAD_IDLE_MAX_AGE_MS,
      activity: () => (this.entry?.packets() ?? 0) + (this.serve?.packets() ?? 0),
      log: logger('load'),
      count: parts.countLoad,
      // Every measurement, whatever asked for it, is what the next heartbeat says.
      onMeasured: (load) => this.peers?.setLocal({ load }),
    });
    this.policy = createPolicy(c, {
      meter: this.meter,
      peers: () => this.peers?.snapshot() ?? [],
      draining: () => this.draining,
      log: logger('policy'),
    });
    this.snapshots = new FlowSnapshots(c.flows.stateFile, c.flows.snapshotMs, logger('flows'));
  }

  async start(): Promise<void> {
    const c = this.config;
    const key = loadKey({ key: c.peers.key || undefined, keyFile: c.peers.keyFile || undefined });
    try {
      // Serve first: a peer may forward to us as soon as it hears our heartbeat.
      this.serve = new this.QueueClass(queueOptions(c, 'serve'), engineOptions(c, 'serve'));
      this.serve.start();
      this.entry = new this.QueueClass(queueOptions(c, 'entry'), engineOptions(c, 'entry'), this.policy.onDecide);
      this.policy.attach(this.entry);
      // Our own health first: the first heartbeat must say it.
      await this.health.start();
      // Until peers are heard, every new connection is served here (or, if
      // our own service is down, still here: nobody else is known).
      this.updateEligibility();
      this.restored = this.snapshots.restore(this.entry);
      this.entry.start();
      this.snapshots.start(this.entry);
      this.peers = this.makePeers(key);
      this.peers.setLocal({ load: this.meter.forReport(), draining: this.draining, healthy: this.health.healthy });
      this.peers.on('change', () => this.updateEligibility());
      this.peers.on('listener', (port, lost) => {
        if (lost) this.health.listenerLost(port);
      });
      // setLocal announces the change at once.
      this.health.on('change', (healthy) => {
        this.peers?.setLocal({ healthy });
        this.updateEligibility();
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
    // The one timer an idle daemon runs often: it also tells how late the event loop is.
    let due = performance.now() + LOAD_REPORT_EVERY_MS;
    this.reportTimer = setInterval(() => {
      const now = performance.now();
      this.loopLag.sample(now - due);
      due = now + LOAD_REPORT_EVERY_MS;
      this.meter.forReport();
    }, LOAD_REPORT_EVERY_MS);
    this.reportTimer.unref();
    this.log.info('started', { self: c.self, policy: c.policy, healthy: this.health.healthy, entryQueue: c.queues.entry, serveQueue: c.queues.serve });
  }

  private makePeers(key: Buffer): Peers {
    const c = this.config;
    return new Peers({
      self: c.self,
      bindAddress: selfHost(c).cluster,
      port: c.peers.port,
      peers: c.hosts.filter((h) => h.id !== c.self).map((h) => ({ id: h.id, address: h.cluster })),
      key,
      heartbeatMs: c.peers.heartbeatMs,
      deadAfterMs: c.peers.deadAfterMs,
      watchPorts: c.health.type !== 'none' && c.health.listenerCheckMs > 0 ? c.servicePorts : [],
      watchEveryMs: c.health.listenerCheckMs,
      log: logger('peers'),
    });
  }

  private updateEligibility(): void {
    const e = eligibleHosts(this.config.self, this.health.healthy, this.peers?.snapshot() ?? []);
    if (sameEligibility(this.eligibility, e)) return;
    const before = this.eligibility;
    this.eligibility = e;
    if (e.failOpen && !before?.failOpen && (this.peers?.snapshot().length ?? 0) > 0) {
      this.log.warn('no healthy host: serving every connection that arrives here (fail open)');
    }
    this.log.info('eligible hosts changed', { hosts: e.hosts, failOpen: e.failOpen });
    this.policy.setEligible(e);
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
    const restore = new Set(this.config.hosts.filter((h) => h.id !== this.config.self).map((h) => restoreAddress(this.config, h.id)));
    for (;;) {
      if (this.stopped) return false;
      const f = this.entry?.stats().flows.forwarded;
      const out = f ? f.syn + f.established : 0;
      const inbound = forwardedInConnections(restore, this.config.servicePorts);
      if (out === 0 && inbound === 0) return true;
      if (Date.now() >= deadline) {
        this.log.warn('drain timed out', { forwardedOut: out, forwardedIn: inbound });
        return false;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.anomalyTimer) clearInterval(this.anomalyTimer);
    if (this.reportTimer) clearInterval(this.reportTimer);
    this.anomalyTimer = this.reportTimer = null;
    this.health.stop();
    // Entry first: from here on new connections are served here (fail-open)
    // and forwarded flows wait for the next daemon, which reads the snapshot.
    this.entry?.stop();
    await this.snapshots.stop(this.entry);
    this.serve?.stop();
    await this.peers?.stop();
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
      decisions: this.policy.decisions(),
      heartbeats: this.peers?.counters() ?? null,
      restored: this.restored,
      eventLoopLagMaxMs: Math.round(this.loopLag.maxMs()),
    };
  }
}
