// The dpr daemon of one host: runs the entry and serve queues, keeps the peer
// membership, pushes the Maglev table (hash policy) or answers new-flow
// decisions (load policy), measures this host's load, serves /metrics and
// /status, and drains on SIGTERM.
import { EventEmitter } from 'node:events';
import type { DprConfig } from './config';
import { restoreAddress, selfHost } from './config';
import { activeConnections, forwardedInConnections } from './host';
import { formatIpv4 } from './ipv4';
import { logger, type Logger } from './log';
import { LoadPolicy } from './load-policy';
import { buildMaglevTable } from './maglev';
import { DECISION_FIELDS, Queue, countEstablished, type DecisionBatch, type NativeQueue, type QueueStats } from './native';
import { Peers, loadKey, type PeerView } from './peers';
import { engineOptions, queueOptions } from './plan';
import { loadFlows, saveFlows } from './flow-state';
import { AnomalyLog } from './anomalies';
import { PeerMacs } from './neighbours';

export interface DaemonStatus {
  self: number;
  policy: DprConfig['policy'];
  draining: boolean;
  startedAt: number;
  load: number;
  liveHosts: number[];
  peers: PeerView[];
  entry: QueueStats | null;
  serve: QueueStats | null;
  decisions: { local: number; forwarded: number; byPeer: Record<number, number> };
  heartbeats: ReturnType<Peers['counters']> | null;
}

type QueueCtor = typeof Queue;

export class Daemon extends EventEmitter {
  private entry: NativeQueue | null = null;
  private serve: NativeQueue | null = null;
  private peers: Peers | null = null;
  private loadTimer: NodeJS.Timeout | null = null;
  private snapshotTimer: NodeJS.Timeout | null = null;
  private anomalyTimer: NodeJS.Timeout | null = null;
  private peerMacs: PeerMacs | null = null;
  private load = 0;
  private loadMeasuredAt = 0;
  /** New connections kept here since `load` was measured (not established yet). */
  private keptSinceMeasure = 0;
  private draining = false;
  private liveHosts: number[] = [];
  private readonly policy: LoadPolicy;
  private readonly startedAt = Date.now();
  private readonly decisions = { local: 0, forwarded: 0, byPeer: {} as Record<number, number> };
  private readonly log: Logger;

  constructor(
    private readonly config: Readonly<DprConfig>,
    private readonly QueueClass: QueueCtor = Queue,
  ) {
    super();
    this.log = logger('daemon');
    this.policy = new LoadPolicy(config.self, config.load.threshold);
  }

  async start(): Promise<void> {
    const c = this.config;
    const key = loadKey({ key: c.peers.key || undefined, keyFile: c.peers.keyFile || undefined });
    this.measureLoad();
    // Serve first: a peer may forward to us as soon as it hears our heartbeat.
    this.serve = new this.QueueClass(queueOptions(c, 'serve'), engineOptions(c, 'serve'));
    this.serve.start();
    const onDecide = c.policy === 'load' ? (batch: DecisionBatch) => this.decide(batch) : undefined;
    this.entry = new this.QueueClass(queueOptions(c, 'entry'), engineOptions(c, 'entry', key), onDecide);
    // One L2 segment: forwarded packets must come from their entry host's MAC (lib/neighbours).
    if (c.peers.routersBetween === 0) {
      this.peerMacs = new PeerMacs(c.hosts, c.self, (macs) => {
        this.serve?.setPeerMacs(macs);
        this.entry?.setPeerMacs(macs);
      });
      this.peerMacs.start();
    }
    // Until peers are heard, every new connection is served here.
    this.pushTable([c.self]);
    this.restoreFlows();
    this.entry.start();
    if (c.flows.stateFile && c.flows.snapshotMs > 0) {
      this.snapshotTimer = setInterval(() => this.saveFlowState(), c.flows.snapshotMs);
      this.snapshotTimer.unref();
    }
    const me = selfHost(c);
    this.peers = new Peers({
      self: c.self,
      bindAddress: me.cluster,
      port: c.peers.port,
      peers: c.hosts.filter((h) => h.id !== c.self).map((h) => ({ id: h.id, address: h.cluster })),
      key,
      heartbeatMs: c.peers.heartbeatMs,
      deadAfterMs: c.peers.deadAfterMs,
      load: () => this.load,
      draining: () => this.draining,
      log: logger('peers'),
    });
    this.peers.on('change', () => this.membershipChanged());
    this.peers.on('up', (id: number) => {
      this.peerMacs?.refresh();
      this.log.info('peer up', { peer: id });
    });
    this.peers.on('down', (id: number) => this.log.warn('peer down', { peer: id }));
    await this.peers.start();
    this.loadTimer = setInterval(() => this.measureLoad(), Math.max(50, Math.min(c.peers.heartbeatMs, 250)));
    this.loadTimer.unref();
    const anomalies = new AnomalyLog(logger('datapath'));
    this.anomalyTimer = setInterval(() => {
      anomalies.check('entry', this.entry?.stats() ?? null);
      anomalies.check('serve', this.serve?.stats() ?? null);
    }, 10_000);
    this.anomalyTimer.unref();
    this.log.info('started', { self: c.self, policy: c.policy, entryQueue: c.queues.entry, serveQueue: c.queues.serve });
  }

  /** Established flows of the previous run go on where they went before. */
  private restoreFlows(): void {
    const file = this.config.flows.stateFile;
    if (!file || !this.entry) return;
    const saved = loadFlows(file);
    if (!saved) return;
    const taken = this.entry.importFlows(saved.words);
    this.log.info('flow table restored', { file, flows: taken, savedAgoMs: saved.savedAgoMs });
  }

  private saveFlowState(): void {
    const file = this.config.flows.stateFile;
    if (!file || !this.entry) return;
    try {
      saveFlows(file, this.entry.exportFlows());
    } catch (err) {
      this.log.warn('cannot save the flow table', { file, error: (err as Error).message });
    }
  }

  private measureLoad(): void {
    try {
      // Not /proc/net/tcp: on a busy host it lists tens of thousands of
      // TIME_WAIT sockets, and reading it ten times a second cost more CPU
      // than the data path (bench: cluster, router CPU per request).
      this.load = countEstablished(this.config.servicePorts);
      this.loadMeasuredAt = Date.now();
      this.keptSinceMeasure = 0;
    } catch (err) {
      // sock_diag missing (a kernel without inet_diag): /proc is slower but right.
      this.log.warn('cannot count established connections with sock_diag; reading /proc/net/tcp', { error: (err as Error).message });
      try {
        this.load = activeConnections(this.config.servicePorts);
      } catch {
        // both failed: keep the last value
      }
    }
  }

  /** Hosts that may get new connections: this one, and live peers that do not drain. */
  private eligibleHosts(): number[] {
    const peers = this.peers?.snapshot() ?? [];
    const live = peers.filter((p) => p.up && !p.draining).map((p) => p.id);
    return [this.config.self, ...live].sort((a, b) => a - b);
  }

  private membershipChanged(): void {
    const hosts = this.eligibleHosts();
    if (hosts.join() === this.liveHosts.join()) return;
    this.log.info('membership changed', { hosts });
    this.pushTable(hosts);
  }

  private pushTable(hosts: number[]): void {
    this.liveHosts = hosts;
    // The load policy decides in JavaScript, but the table still tells the
    // data path which hosts are live (a SYN retransmitted towards a host that
    // went down is decided again).
    this.entry?.setLookupTable(buildMaglevTable(hosts));
  }

  private decide(batch: DecisionBatch): void {
    const n = batch.length / DECISION_FIELDS;
    const tokens = new Uint32Array(n);
    const targets = new Uint16Array(n);
    const now = Date.now();
    // Our own load counted now, not at the last timer tick: a request lasts
    // about as long as the tick, and a stale count here was what kept the
    // load policy well short of a balanced cluster (bench: cluster, and the
    // closed-loop model in bench/cluster-model.ts). One filtered sock_diag
    // dump, at most every 5 ms.
    if (now - this.loadMeasuredAt >= 5) this.measureLoad();
    const peers = (this.peers?.snapshot() ?? []).map((p) => ({
      id: p.id,
      up: p.up,
      draining: p.draining,
      load: p.load,
      // lastHeardMs is an age; rounded so the same report reads the same.
      reportedAt: p.lastHeardMs === null ? 0 : Math.round((now - p.lastHeardMs) / 10),
    }));
    for (let i = 0; i < n; i++) {
      tokens[i] = batch[i * DECISION_FIELDS]!;
      const target = this.draining ? this.config.self : this.policy.decide(this.load + this.keptSinceMeasure, peers);
      targets[i] = target;
      if (target === this.config.self) {
        this.keptSinceMeasure++;
        this.decisions.local++;
      } else {
        this.decisions.forwarded++;
        this.decisions.byPeer[target] = (this.decisions.byPeer[target] ?? 0) + 1;
        this.log.debug('forward', { client: formatIpv4(batch[i * DECISION_FIELDS + 1]!), peer: target });
      }
    }
    this.entry?.decide(tokens, targets);
  }

  /**
   * Stops new forwarded connections (peers hear it in our heartbeats and stop
   * sending us theirs) and waits, bounded, until no connection is forwarded
   * either way. Direct local connections are not waited for: they live in the
   * kernel and outlast the daemon.
   */
  async drain(timeoutMs = this.config.drain.timeoutMs): Promise<boolean> {
    this.draining = true;
    this.entry?.setDraining(true);
    this.log.info('draining', { timeoutMs });
    const deadline = Date.now() + timeoutMs;
    const restore = new Set(this.config.hosts.filter((h) => h.id !== this.config.self).map((h) => restoreAddress(this.config, h.id)));
    for (;;) {
      const f = this.entry?.stats().flows.forwarded;
      const out = f ? f.syn + f.probation + f.established : 0;
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
    if (this.loadTimer) clearInterval(this.loadTimer);
    if (this.snapshotTimer) clearInterval(this.snapshotTimer);
    if (this.anomalyTimer) clearInterval(this.anomalyTimer);
    this.loadTimer = this.snapshotTimer = this.anomalyTimer = null;
    this.peerMacs?.stop();
    // Entry first: from here on new connections are served here (fail-open)
    // and forwarded flows wait for the next daemon, which reads this file.
    this.entry?.stop();
    this.saveFlowState();
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
      load: this.load,
      liveHosts: this.liveHosts,
      peers: this.peers?.snapshot() ?? [],
      entry: this.entry?.stats() ?? null,
      serve: this.serve?.stats() ?? null,
      decisions: this.decisions,
      heartbeats: this.peers?.counters() ?? null,
    };
  }
}
