// What a reload may change while the daemon runs, and what needs a restart.
// Live: the cluster's hosts (joining, leaving), the keys (a rotation), the
// load policy's threshold, health checks, the log level, the drain timeout,
// and what only the rules read (`clusterCidr`, `clusterCidr6`); not this
// host's own IPv6 addresses (ownIpv6Changes). Everything else is fixed in
// native queues, sockets or files at start (`peers.routersBetween` too: the
// engines check TTLs and peers' MACs by it); a
// reload that changes any of it is refused as a whole, naming the keys, so a
// reload never half-applies.
import type { DprConfig } from './config';

export interface ReloadPlan {
  /** Changed keys that need a restart (the reload is refused if any). */
  restartNeeded: string[];
  /** Changed keys that the reload applies. */
  live: string[];
}

/** Key prefixes a reload applies. */
const LIVE = ['hosts', 'peers.key', 'peers.keyFile', 'peers.rotationKey', 'peers.rotationKeyFile',
  'clusterCidr', 'clusterCidr6', 'load.threshold', 'health.', 'log.level', 'drain.timeoutMs'];

/**
 * This host's own IPv6 addresses are fixed in its engines at start (an
 * engine started without them handles no IPv6): a cluster that gains or
 * loses IPv6, or a host whose own IPv6 address changes, needs a restart. Its
 * peers' IPv6 addresses come and go with them, live.
 */
function ownIpv6Changes(now: Readonly<DprConfig>, next: Readonly<DprConfig>): string[] {
  if (now.hosts === null || next.hosts === null) return [];
  const i = next.hosts.findIndex((h) => h.id === next.self);
  const a = now.hosts.find((h) => h.id === now.self);
  const b = next.hosts[i];
  if (!a || !b) return [];
  return (['service6', 'cluster6'] as const).filter((k) => a[k] !== b[k]).map((k) => `hosts[${i}].${k}`);
}

function leaves(o: unknown, prefix = ''): Map<string, string> {
  const out = new Map<string, string>();
  if (o && typeof o === 'object' && !Array.isArray(o)) {
    for (const [k, v] of Object.entries(o)) for (const [kk, vv] of leaves(v, prefix ? `${prefix}.${k}` : k)) out.set(kk, vv);
  } else {
    out.set(prefix, JSON.stringify(o));
  }
  return out;
}

export function planReload(now: Readonly<DprConfig>, next: Readonly<DprConfig>): ReloadPlan {
  const a = leaves(now);
  const b = leaves(next);
  const changed = [...new Set([...a.keys(), ...b.keys()])].filter((k) => a.get(k) !== b.get(k)).sort();
  const isLive = (k: string): boolean => LIVE.some((p) => (p.endsWith('.') ? k.startsWith(p) : k === p));
  return { restartNeeded: [...ownIpv6Changes(now, next), ...changed.filter((k) => !isLive(k))], live: changed.filter(isLive) };
}
