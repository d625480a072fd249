// The membership source a configuration asks for (lib/membership/source.ts).
import { cidrContains, parseCidr, parseIpv4 } from '../ipv4';
import { cidr6Contains, parseCidr6, parseIpv6 } from '../ipv6';
import { maxHostId, readEtcdSecrets, type DprConfig, type HostEntry } from '../config';
import type { Logger } from '../log';
import { EtcdSource, type EtcdSourceOptions } from './etcd';
import type { MembershipSource } from './source';
import { StaticSource } from './static';

export type { Membership, MembershipEvents, MembershipSource, MembershipState, MembershipStatus } from './source';
export { ClusterMember, StoppedBeforeStart, type MemberStatus } from './member';
export { lastKnown, withMembership } from './resolve';

export function createSource(c: Readonly<DprConfig>, log: Logger): MembershipSource {
  if (c.membership.source === 'static') return new StaticSource(c.self, c.hosts);
  return new EtcdSource(etcdOptions(c, log));
}

export function etcdOptions(c: Readonly<DprConfig>, log: Logger): EtcdSourceOptions {
  const e = c.membership.etcd;
  return {
    endpoints: [...e.endpoints],
    prefix: e.prefix,
    leaseTtlS: e.leaseTtlS,
    ...(c.membership.service ? { service: c.membership.service, cluster: c.membership.cluster } : {}),
    ...(c.membership.service6 ? { service6: c.membership.service6, cluster6: c.membership.cluster6 } : {}),
    weight: c.membership.weight,
    self: c.self,
    maxHosts: e.maxHosts,
    stateFile: e.stateFile,
    retryMinMs: e.retryMinMs,
    retryMaxMs: e.retryMaxMs,
    ...readEtcdSecrets(c),
    check: memberCheck(c),
    log,
  };
}

/**
 * What a host registered by someone else must satisfy to be one of ours: the
 * rules this host runs were made for ids below maxHosts, cluster addresses in
 * clusterCidr and restore addresses apart from every host's. IPv6 is
 * cluster-wide (lib/config.ts checkIpv6): a dual-stack host takes only
 * dual-stack records, an IPv4-only host only IPv4-only ones, so that two
 * hosts either see each other or neither does (one that forwarded IPv6 to a
 * host that ignores it, or forwarded to a host that does not hold its
 * service address, would break those connections).
 */
export function memberCheck(c: Pick<DprConfig, 'hosts' | 'membership' | 'mode' | 'clusterCidr' | 'restoreCidr' | 'clusterCidr6' | 'restoreCidr6'>): (h: HostEntry) => string | null {
  const four = Boolean(c.membership.service);
  const cluster = four ? parseCidr(c.clusterCidr) : null;
  const restore = four ? parseCidr(c.restoreCidr) : null;
  const maxId = maxHostId(c);
  const six = Boolean(c.membership.service6);
  const cluster6 = six ? parseCidr6(c.clusterCidr6) : null;
  const restore6 = six ? parseCidr6(c.restoreCidr6) : null;
  return (h) => {
    // The kernel modes put the peers' service addresses on lo (lib/config.ts checkMode).
    if (c.mode !== 'rewrite' && h.service && h.service === h.cluster) return `its cluster address ${h.cluster} is also its service address, and mode '${c.mode}' needs them apart`;
    if (c.mode !== 'rewrite' && h.service6 && h.service6 === h.cluster6) return `its cluster6 address ${h.cluster6} is also its service6 address, and mode '${c.mode}' needs them apart`;
    if (six && !h.service6) return 'it has no IPv6 addresses (service6, cluster6), and this host is dual-stack (membership.service6)';
    if (!six && h.service6) return 'it has IPv6 addresses (service6, cluster6), and this host is IPv4 only (no membership.service6)';
    if (four && !h.service) return 'it has no IPv4 addresses (service, cluster), and this host has (membership.service)';
    if (!four && h.service) return 'it has IPv4 addresses (service, cluster), and this host is IPv6-only (no membership.service)';
    if (cluster6 && !cidr6Contains(cluster6, parseIpv6(h.cluster6!))) return `cluster6 address ${h.cluster6} is outside clusterCidr6 ${c.clusterCidr6}`;
    for (const k of ['service6', 'cluster6'] as const) {
      if (restore6 && cidr6Contains(restore6, parseIpv6(h[k]!))) return `${k} address ${h[k]} lies in restoreCidr6 ${c.restoreCidr6}`;
    }
    if (h.id > maxId) return `id ${h.id} is not below membership.etcd.maxHosts (${maxId + 1})`;
    if (!cluster || !restore) return null;
    if (!cidrContains(cluster, parseIpv4(h.cluster!))) return `cluster address ${h.cluster} is outside clusterCidr ${c.clusterCidr}`;
    for (const k of ['service', 'cluster'] as const) {
      if (cidrContains(restore, parseIpv4(h[k]!))) return `${k} address ${h[k]} lies in restoreCidr ${c.restoreCidr}`;
    }
    return null;
  };
}
