// Prometheus metrics, read from the daemon's status at scrape time: native
// counters are mirrored (never counted twice in JavaScript), gauges are set.
import http from 'node:http';
import { Counter, Gauge, Registry } from 'prom-client';
import type { Daemon, DaemonStatus } from './daemon';
import type { MemberStatus } from './membership/member';
import type { MembershipState } from './membership/source';
import { logger } from './log';
import type { QueueStats } from './native';
import { packageVersion } from './version';
import { registerProcessMetrics } from './process-metrics';

const log = logger('metrics');

/** prom-client counters only go up by inc(): feed them the growth since the last scrape. */
class Mirror {
  private readonly last = new Map<string, number>();
  set(counter: Counter<string>, labels: Record<string, string>, value: number): void {
    const key = (counter as unknown as { name: string }).name + JSON.stringify(labels);
    const delta = value - (this.last.get(key) ?? 0);
    if (delta > 0) counter.inc(labels, delta);
    this.last.set(key, value);
  }
}

export interface Metrics {
  registry: Registry;
  /** Reads one status snapshot into every metric; call before each scrape. */
  refresh(): void;
}

export function createMetrics(daemon: Pick<Daemon, 'status'> & Partial<Pick<Daemon, 'statusWithKernel'>>): Metrics {
  const registry = new Registry();
  registerProcessMetrics(registry, () => daemon.status().eventLoopLagMaxMs);
  const mirror = new Mirror();

  const packets = new Counter({ name: 'dpr_packets_total', help: 'Packets through the queues, by queue and verdict action.', labelNames: ['queue', 'action'], registers: [registry] });
  const malformed = new Counter({ name: 'dpr_malformed_packets_total', help: 'Packets accepted unchanged because they could not be parsed as IPv4 or IPv6 TCP, by reason.', labelNames: ['queue', 'reason'], registers: [registry] });
  const connections = new Counter({ name: 'dpr_connections_total', help: 'New connections by decision (local or forwarded) and serving peer.', labelNames: ['decision', 'peer'], registers: [registry] });
  const ipv6Packets = new Counter({ name: 'dpr_ipv6_packets_total', help: 'Of the packets through the queues, the IPv6 ones, by queue (dual-stack hosts).', labelNames: ['queue'], registers: [registry] });
  const ipv6Flows = new Gauge({ name: 'dpr_ipv6_flows', help: 'Of the flows in the entry flow table, the IPv6 ones.', registers: [registry] });
  const addressInfo = new Gauge({ name: 'dpr_address_info', help: 'Always 1: this host\'s addresses, by family (4, 6) and role (service, cluster).', labelNames: ['family', 'role', 'address'], registers: [registry] });
  const flows = new Gauge({ name: 'dpr_flows', help: 'Flows in the entry flow table, by state.', labelNames: ['state'], registers: [registry] });
  const peerUp = new Gauge({ name: 'dpr_peer_up', help: '1 while heartbeats arrive from the peer.', labelNames: ['peer'], registers: [registry] });
  const peerHealthy = new Gauge({ name: 'dpr_peer_healthy', help: '1 while the host\'s web service passes its health checks (for a peer: as its last heartbeat said; this host is labelled with its own id).', labelNames: ['peer'], registers: [registry] });
  const eligible = new Gauge({ name: 'dpr_peer_eligible', help: '1 while this host sends new connections to the host (up, healthy, not draining; this host too).', labelNames: ['peer'], registers: [registry] });
  const failOpen = new Gauge({ name: 'dpr_fail_open', help: '1 while no host is healthy and this host serves everything that reaches it.', registers: [registry] });
  const checks = new Counter({ name: 'dpr_health_checks_total', help: 'Health checks of this host\'s web service, by port and result (ok, failed).', labelNames: ['port', 'result'], registers: [registry] });
  const checkMs = new Gauge({ name: 'dpr_health_check_duration_seconds', help: 'How long the last health check of the port took.', labelNames: ['port'], registers: [registry] });
  const peerLoad = new Gauge({ name: 'dpr_peer_load', help: 'Load the peer last reported, in connections (established, on the service ports); for this host, its own.', labelNames: ['peer'], registers: [registry] });
  const rejected = new Counter({ name: 'dpr_heartbeats_rejected_total', help: 'Heartbeats dropped, by reason (bad_mac, replay, truncated, ...).', labelNames: ['reason'], registers: [registry] });
  const notices = new Counter({ name: 'dpr_peer_down_notices_total', help: 'DOWN notices (clusters of more than 9 hosts): sent by this host as a watcher, accepted from watchers, and acted on (the peer went down here).', labelNames: ['event'], registers: [registry] });
  const queueErrors = new Counter({ name: 'dpr_queue_errors_total', help: 'Netlink errors of the queue threads, by kind.', labelNames: ['queue', 'kind'], registers: [registry] });
  // Two counters, not a mean since start: rate(packets) / rate(batches) is the batch size now.
  const batches = new Counter({ name: 'dpr_queue_batches_total', help: 'Receive batches (recvmmsg calls that returned packets), by queue.', labelNames: ['queue'], registers: [registry] });
  const batchPackets = new Counter({ name: 'dpr_queue_batch_packets_total', help: 'Packets received in those batches, by queue.', labelNames: ['queue'], registers: [registry] });
  // Kernel modes: what the kernel routes by itself after the SYN (lib/kernel-flows.ts).
  const kernelFlows = new Gauge({ name: 'dpr_kernel_flows', help: 'Kernel modes: entries in the ipset of flows forwarded to the peer (closing ones until their timeout).', labelNames: ['peer'], registers: [registry] });
  const kernelPackets = new Counter({ name: 'dpr_kernel_packets_total', help: 'Kernel modes: packets the kernel routed to the peer by those entries, with no queue.', labelNames: ['peer'], registers: [registry] });
  new Gauge({ name: 'dpr_build_info', help: 'Always 1; the labels say which dpr and which Node.js run.', labelNames: ['version', 'node'], registers: [registry] })
    .set({ version: packageVersion(), node: process.version }, 1);

  const mirrorQueue = (name: string, q: QueueStats | null): void => {
    if (!q) return;
    for (const [action, v] of Object.entries(q.actions)) mirror.set(packets, { queue: name, action }, v);
    for (const [reason, v] of Object.entries(q.malformed)) mirror.set(malformed, { queue: name, reason }, v);
    for (const kind of ['recvErrors', 'enobufs', 'sendErrors', 'verdictErrors'] as const) {
      mirror.set(queueErrors, { queue: name, kind }, q.queue[kind]);
    }
    if (q.ipv6) mirror.set(ipv6Packets, { queue: name }, q.ipv6.packets);
    mirror.set(batches, { queue: name }, q.queue.batches);
    mirror.set(batchPackets, { queue: name }, q.queue.batchPackets);
  };

  const up = new Gauge({ name: 'dpr_up', help: '1 while the daemon runs.', registers: [registry] });
  const m = membershipMetrics(registry, mirror);
  const refresh = (): void => {
      const s: DaemonStatus = daemon.statusWithKernel ? daemon.statusWithKernel() : daemon.status();
      up.set(1);
      for (const p of s.kernel?.byPeer ?? []) {
        kernelFlows.set({ peer: String(p.id) }, p.entries);
        mirror.set(kernelPackets, { peer: String(p.id) }, p.packets);
      }
      mirrorQueue('entry', s.entry);
      mirrorQueue('serve', s.serve);
      if (s.entry) {
        const f = s.entry.flows;
        for (const state of ['pending', 'syn', 'established', 'closing'] as const) flows.set({ state }, f[state]);
        if (s.entry.ipv6) ipv6Flows.set(s.entry.ipv6.flows);
        // Native counts every decision, hash or load, by the host that serves it.
        s.entry.newFlows.byHost.forEach((v, host) => {
          if (v > 0) mirror.set(connections, { decision: host === s.self ? 'local' : 'forwarded', peer: String(host) }, v);
        });
      }
      const a = s.addresses;
      if (a) {
        for (const [family, role, address] of [['4', 'service', a.service], ['4', 'cluster', a.cluster], ['6', 'service', a.service6], ['6', 'cluster', a.cluster6]] as const) {
          if (address) addressInfo.set({ family, role, address }, 1);
        }
      }
      peerLoad.set({ peer: String(s.self) }, s.load);
      peerHealthy.set({ peer: String(s.self) }, s.health.healthy ? 1 : 0);
      for (const p of s.peers) {
        peerUp.set({ peer: String(p.id) }, p.up ? 1 : 0);
        peerLoad.set({ peer: String(p.id) }, p.load);
        peerHealthy.set({ peer: String(p.id) }, p.healthy ? 1 : 0);
      }
      const live = new Set(s.liveHosts);
      for (const id of [s.self, ...s.peers.map((p) => p.id)]) eligible.set({ peer: String(id) }, live.has(id) ? 1 : 0);
      failOpen.set(s.failOpen ? 1 : 0);
      for (const p of s.health.ports) {
        mirror.set(checks, { port: String(p.port), result: 'ok' }, p.checks.ok);
        mirror.set(checks, { port: String(p.port), result: 'failed' }, p.checks.failed);
        if (p.lastCheckMs !== null) checkMs.set({ port: String(p.port) }, p.lastCheckMs / 1000);
      }
      if (s.heartbeats) {
        for (const [reason, v] of Object.entries(s.heartbeats.rejected)) mirror.set(rejected, { reason }, v);
        mirror.set(notices, { event: 'sent' }, s.heartbeats.downNotices.sent);
        mirror.set(notices, { event: 'accepted' }, s.heartbeats.downNotices.accepted);
        mirror.set(notices, { event: 'acted_on' }, s.heartbeats.downNotices.actedOn);
      }
      if (s.membership) m(s.membership);
  };
  return { registry, refresh };
}

const MEMBERSHIP_STATES: readonly MembershipState[] = ['static', 'connecting', 'registered', 'unreachable', 'waiting'];

/** Where the host list comes from (lib/membership/): what to alert on when etcd goes away. */
function membershipMetrics(registry: Registry, mirror: Mirror): (m: MemberStatus) => void {
  const state = new Gauge({ name: 'dpr_membership_state', help: '1 for the membership source\'s state (static; etcd: connecting, registered, unreachable, waiting), 0 for the others.', labelNames: ['state'], registers: [registry] });
  const seconds = new Gauge({ name: 'dpr_membership_state_seconds', help: 'Seconds the membership source has been in its state (how long etcd has been unreachable, say).', registers: [registry] });
  const hosts = new Gauge({ name: 'dpr_membership_hosts', help: 'Hosts in the list the source gave (this host included); kept while etcd is unreachable.', registers: [registry] });
  const changes = new Counter({ name: 'dpr_membership_changes_total', help: 'Host lists the source handed out, the first one included.', registers: [registry] });
  const failures = new Counter({ name: 'dpr_membership_failures_total', help: 'Attempts to reach etcd (or to hold an id in it) that failed.', registers: [registry] });
  const ignored = new Counter({ name: 'dpr_membership_ignored_records_total', help: 'Records under the etcd prefix that were ignored: malformed, out of range, or repeating a registered address.', registers: [registry] });
  const refused = new Counter({ name: 'dpr_membership_refused_total', help: 'Host lists from the source that the daemon refused to apply (logged with the reason).', registers: [registry] });
  return (m) => {
    for (const s of MEMBERSHIP_STATES) state.set({ state: s }, m.state === s ? 1 : 0);
    seconds.set(Math.max(0, (Date.now() - m.since) / 1000));
    hosts.set(m.hosts);
    mirror.set(changes, {}, m.changes);
    mirror.set(failures, {}, m.failures);
    mirror.set(ignored, {}, m.ignoredRecords);
    mirror.set(refused, {}, m.refused);
  };
}

/** The daemon as the HTTP endpoints see it. */
export type HttpDaemon = Pick<Daemon, 'status' | 'drain' | 'undrain' | 'reload'> & Partial<Pick<Daemon, 'statusWithKernel'>>;

/**
 * Draining changes routing for the whole cluster, so only this host may ask:
 * a loopback peer, or one whose source is the listening address itself (what
 * the kernel picks when a local process dials a local non-loopback address; a
 * remote host cannot complete a handshake with our own address as source).
 */
export function isLocalRequest(req: http.IncomingMessage): boolean {
  const remote = (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
  const local = (req.socket.localAddress ?? '').replace(/^::ffff:/, '');
  return remote === '::1' || remote.startsWith('127.') || (remote !== '' && remote === local);
}

/** POST /drain: answers at once; the daemon stays up, drained, until it is stopped. */
function handleDrain(daemon: HttpDaemon, req: http.IncomingMessage, done: (code: number, body: unknown) => void): void {
  if (req.method !== 'POST') return done(405, { error: 'use POST /drain' });
  if (!isLocalRequest(req)) return done(403, { error: 'drain is allowed from this host only' });
  const before = daemon.status();
  // A second drain() would only start a second wait loop: report the first.
  if (!before.draining) {
    daemon.drain().then(
      (drained) => log.info(drained ? 'drained: no connections left' : 'drain timed out; still draining'),
      (err: Error) => log.error('drain failed', { error: err.message }),
    );
  }
  done(202, { self: before.self, draining: true, already: before.draining });
}

/** POST /undrain: the host takes and forwards new connections again. */
function handleUndrain(daemon: HttpDaemon, req: http.IncomingMessage, done: (code: number, body: unknown) => void): void {
  if (req.method !== 'POST') return done(405, { error: 'use POST /undrain' });
  if (!isLocalRequest(req)) return done(403, { error: 'undrain is allowed from this host only' });
  const was = daemon.undrain();
  done(200, { self: daemon.status().self, draining: false, was });
}

/** POST /reload: re-reads the configuration; 200 with what changed, 422 naming the key it refused. */
function handleReload(daemon: HttpDaemon, req: http.IncomingMessage, done: (code: number, body: unknown) => void): void {
  if (req.method !== 'POST') return done(405, { error: 'use POST /reload' });
  if (!isLocalRequest(req)) return done(403, { error: 'reload is allowed from this host only' });
  daemon.reload().then(
    (r) => done(r.ok ? 200 : 422, r),
    (err: Error) => done(500, { ok: false, key: 'reload', reason: err.message }),
  );
}

/** /metrics for Prometheus, /status (JSON) for `dpr status`, POST /drain, /undrain and /reload for the commands of those names. */
export function startHttp(daemon: HttpDaemon, address: string, port: number): Promise<http.Server> {
  const { registry, refresh } = createMetrics(daemon);
  const server = http.createServer((req, res) => {
    const done = (code: number, type: string, body: string): void => {
      res.writeHead(code, { 'content-type': type });
      res.end(body);
    };
    const json = (code: number, body: unknown): void => done(code, 'application/json', JSON.stringify(body) + '\n');
    if (req.url === '/metrics') {
      refresh();
      registry.metrics().then(
        (text) => done(200, registry.contentType, text),
        (err: Error) => done(500, 'text/plain', err.message),
      );
    } else if (req.url === '/status') {
      done(200, 'application/json', JSON.stringify(daemon.statusWithKernel ? daemon.statusWithKernel() : daemon.status()));
    } else if (req.url === '/drain') {
      handleDrain(daemon, req, json);
    } else if (req.url === '/undrain') {
      handleUndrain(daemon, req, json);
    } else if (req.url === '/reload') {
      handleReload(daemon, req, json);
    } else {
      done(404, 'text/plain', 'try /metrics, /status or POST /drain, /undrain, /reload\n');
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, address, () => resolve(server));
  });
}
