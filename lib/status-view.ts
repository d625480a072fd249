// What `dpr status` shows: two /status samples of the local daemon turned into
// one view (hosts, flows, connection rates, rejected heartbeats), printed as a
// table for people or as JSON for scripts. Pure functions: no I/O here.
import type { DaemonStatus } from './daemon';
import type { EngineStats } from './native';

export interface HostRow {
  id: number;
  /** This host (the one whose daemon answered). */
  self: boolean;
  /** Cluster address; null when the configuration does not name this host. */
  address: string | null;
  /** IPv6 cluster address, on a dual-stack cluster; else null. */
  address6: string | null;
  up: boolean;
  /** Its web service passes its health checks (for a peer: as its last heartbeat said). */
  healthy: boolean;
  load: number;
  draining: boolean;
  /** Ms since this host last heard the peer; null for this host and for peers never heard. */
  heartbeatAgeMs: number | null;
}

type FlowCounts = Pick<EngineStats['flows'], 'pending' | 'syn' | 'established' | 'closing'>;

export interface StatusView {
  self: number;
  policy: DaemonStatus['policy'];
  draining: boolean;
  uptimeMs: number;
  /**
   * Hosts in this host's routing table: itself while its service is healthy,
   * and live, healthy peers that do not drain. While this host drains it
   * serves every new connection itself.
   */
  liveHosts: number[];
  /** No host is healthy: this host serves everything that reaches it. */
  failOpen: boolean;
  /** This host's own health checks, port by port. */
  health: DaemonStatus['health'];
  hosts: HostRow[];
  /** The entry flow table; `forwarded` are those another host serves. */
  flows: (FlowCounts & { forwarded: FlowCounts }) | null;
  /** Dual-stack: this host's IPv6 service address, the IPv6 packets through both queues, the IPv6 flows of the entry table; null without IPv6. */
  ipv6: { service: string; packets: number; flows: number } | null;
  /** New connections per second over the sample, decided here: served here, or forwarded to a peer. */
  connectionsPerSecond: { local: number; forwarded: number } | null;
  sampleMs: number;
  /** Date.now() of the second sample. */
  at: number;
  heartbeatsRejected: { total: number; byReason: Record<string, number> } | null;
  /** The data path (`rewrite`, `direct`, `tunnel`); absent from daemons older than the kernel modes. */
  mode?: DaemonStatus['mode'];
  /** Kernel modes: forwarded flows the kernel routes (ipset entries) and packets it routed by them, by peer. */
  kernel?: DaemonStatus['kernel'];
  /** Where the host list comes from and how that goes (null: a daemon too old to say). */
  membership: NonNullable<DaemonStatus['membership']> | null;
}

export interface Sample {
  status: DaemonStatus;
  /** Date.now() when it was read. */
  at: number;
}

const pickFlows = (f: FlowCounts): FlowCounts => ({ pending: f.pending, syn: f.syn, established: f.established, closing: f.closing });

/**
 * Rates come from the native new-flow counters, which count every decision
 * (hash, load, draining, table full) for both policies alike.
 */
function rates(a: Sample, b: Sample): StatusView['connectionsPerSecond'] {
  const ea = a.status.entry;
  const eb = b.status.entry;
  const seconds = (b.at - a.at) / 1000;
  if (!ea || !eb || seconds <= 0) return null;
  const per = (x: number, y: number): number => Math.max(0, y - x) / seconds;
  return { local: per(ea.newFlows.local, eb.newFlows.local), forwarded: per(ea.newFlows.forwarded, eb.newFlows.forwarded) };
}

/** The IPv6 part of the view, from the daemon's own addresses and the queues' IPv6 counters. */
function ipv6Of(s: DaemonStatus): StatusView['ipv6'] {
  if (!s.addresses?.service6) return null;
  return {
    service: s.addresses.service6,
    packets: (s.entry?.ipv6?.packets ?? 0) + (s.serve?.ipv6?.packets ?? 0),
    flows: s.entry?.ipv6?.flows ?? 0,
  };
}

/** `addresses` maps host id to cluster address (from the configuration), `addresses6` to IPv6 cluster address. */
export function buildView(first: Sample, second: Sample, addresses: ReadonlyMap<number, string>, addresses6: ReadonlyMap<number, string> = new Map()): StatusView {
  const s = second.status;
  const me: HostRow = {
    id: s.self, self: true, address: addresses.get(s.self) ?? null, address6: addresses6.get(s.self) ?? null, up: true, healthy: s.health.healthy, load: s.load, draining: s.draining, heartbeatAgeMs: null,
  };
  // A peer's address is the one its heartbeats come from: its cluster6 with peers.family ipv6.
  const peers: HostRow[] = s.peers.map((p) => ({
    id: p.id, self: false, up: p.up, healthy: p.healthy, load: p.load, draining: p.draining, heartbeatAgeMs: p.lastHeardMs,
    ...(p.address.includes(':') ? { address: addresses.get(p.id) ?? null, address6: p.address } : { address: p.address, address6: addresses6.get(p.id) ?? null }),
  }));
  const rejected = s.heartbeats?.rejected;
  return {
    self: s.self,
    policy: s.policy,
    draining: s.draining,
    uptimeMs: Math.max(0, second.at - s.startedAt),
    liveHosts: s.liveHosts,
    failOpen: s.failOpen,
    health: s.health,
    hosts: [me, ...peers].sort((x, y) => x.id - y.id),
    flows: s.entry ? { ...pickFlows(s.entry.flows), forwarded: pickFlows(s.entry.flows.forwarded) } : null,
    ipv6: ipv6Of(s),
    connectionsPerSecond: rates(first, second),
    sampleMs: second.at - first.at,
    at: second.at,
    heartbeatsRejected: rejected
      ? { total: Object.values(rejected).reduce((t, v) => t + v, 0), byReason: { ...rejected } }
      : null,
    ...(s.mode ? { mode: s.mode } : {}),
    ...(s.kernel ? { kernel: s.kernel } : {}),
    membership: s.membership ?? null,
  };
}

/** One line on the membership: where the list comes from, and whether etcd can be reached. */
function membershipLine(m: NonNullable<StatusView['membership']>, at: number): string {
  const hosts = `${m.hosts} host${m.hosts === 1 ? '' : 's'}`;
  const since = duration(Math.max(0, at - m.since));
  const refused = m.refused ? `; ${m.refused} host list(s) REFUSED (see the log)` : '';
  const ignored = m.ignoredRecords ? `; ${m.ignoredRecords} record(s) in etcd ignored (see the log)` : '';
  switch (m.state) {
    case 'static': return `static (${hosts} in the configuration)${refused}`;
    case 'registered': return `etcd: registered as id ${m.self}, lease ${m.lease}, ${hosts}${refused}${ignored}`;
    case 'connecting': return 'etcd: registering';
    case 'unreachable': return `etcd UNREACHABLE for ${since} (${m.lastError}): keeping the last ${hosts}, ${m.retries} retries${refused}`;
    case 'waiting': return `etcd: WAITING for ${since} to hold an id (${m.lastError}); keeping the last ${hosts}${refused}`;
  }
}

function age(ms: number | null): string {
  if (ms === null) return 'never';
  return ms < 1000 ? `${ms} ms ago` : `${(ms / 1000).toFixed(1)} s ago`;
}

export function duration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600)}h`;
}

/** Left-aligned columns, two spaces apart. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}

function hostTable(v: StatusView): string {
  // The IPv6 column only where a host has an IPv6 address.
  const six = v.hosts.some((h) => h.address6 !== null);
  const rows = [['HOST', 'ADDRESS', ...(six ? ['IPV6 ADDRESS'] : []), 'STATE', 'HEALTH', 'LOAD', 'DRAINING', 'LAST HEARTBEAT']];
  for (const h of v.hosts) {
    rows.push([
      h.self ? `${h.id} (this)` : String(h.id),
      h.address ?? '-',
      ...(six ? [h.address6 ?? '-'] : []),
      h.up ? 'up' : 'down',
      h.up ? (h.healthy ? 'healthy' : 'UNHEALTHY') : '-',
      String(h.load),
      h.draining ? 'yes' : 'no',
      h.self ? '-' : age(h.heartbeatAgeMs),
    ]);
  }
  return table(rows);
}

const counts = (f: FlowCounts): string => `pending ${f.pending}, syn ${f.syn}, established ${f.established}, closing ${f.closing}`;

export function renderText(v: StatusView): string {
  const head = `dpr: host ${v.self}, ${v.policy} policy${v.mode && v.mode !== 'rewrite' ? `, ${v.mode} mode` : ''}, up ${duration(v.uptimeMs)}${v.draining ? ', DRAINING (forwards no new connections; peers forward none to it)' : ''}\n`;
  const lines: Array<[string, string]> = [];
  lines.push(['new connections to', v.draining ? 'this host only (draining)' : v.failOpen ? 'this host only (no host is healthy: fail open)' : `hosts ${v.liveHosts.join(', ')}`]);
  const bad = v.health.ports.filter((p) => p.healthy !== true);
  lines.push(['health checks', v.health.type === 'none' ? 'off (health.type none)'
    : `${v.health.type} on port${v.health.ports.length > 1 ? 's' : ''} ${v.health.ports.map((p) => p.port).join(', ')}: ${bad.length ? `FAILING (${bad.map((p) => `${p.port}: ${p.lastError ?? 'no result yet'}`).join('; ')})` : 'passing'}`]);
  if (v.flows) {
    lines.push(['flows', counts(v.flows)]);
    lines.push(['  of which forwarded', counts(v.flows.forwarded)]);
  }
  if (v.ipv6) lines.push(['IPv6', `service ${v.ipv6.service}: ${v.ipv6.flows} flows, ${v.ipv6.packets} packets`]);
  if (v.kernel) {
    // After the SYN the kernel routes forwarded flows: the flow table above only sees SYNs.
    const per = v.kernel.byPeer.map((p) => `${p.id}: ${p.entries}`).join(', ');
    lines.push(['in the kernel', `${v.kernel.entries} forwarded flows (${per || 'no peers'}), ${v.kernel.packets} packets routed without a queue`]);
  }
  const r = v.connectionsPerSecond;
  lines.push(['connections/s', r ? `local ${r.local.toFixed(1)}, forwarded ${r.forwarded.toFixed(1)} (over ${(v.sampleMs / 1000).toFixed(1)} s)` : 'n/a (no entry queue)']);
  const hb = v.heartbeatsRejected;
  const reasons = hb ? Object.entries(hb.byReason).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`) : [];
  lines.push(['heartbeats rejected', hb ? `${hb.total}${reasons.length ? ` (${reasons.join(', ')})` : ''}` : 'n/a']);
  if (v.membership) lines.push(['membership', membershipLine(v.membership, v.at)]);
  return `${head}\n${hostTable(v)}\n${table(lines.map(([k, val]) => [k, val]))}`;
}
