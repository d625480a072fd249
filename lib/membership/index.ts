// The membership source a configuration asks for (lib/membership/source.ts).
import { cidrContains, parseCidr, parseIpv4 } from '../ipv4';
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
    service: c.membership.service,
    cluster: c.membership.cluster,
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
 * clusterCidr and restore addresses apart from every host's.
 */
export function memberCheck(c: Pick<DprConfig, 'hosts' | 'membership' | 'clusterCidr' | 'restoreCidr'>): (h: HostEntry) => string | null {
  const cluster = parseCidr(c.clusterCidr);
  const restore = parseCidr(c.restoreCidr);
  const maxId = maxHostId(c);
  return (h) => {
    if (h.id > maxId) return `id ${h.id} is not below membership.etcd.maxHosts (${maxId + 1})`;
    if (!cidrContains(cluster, parseIpv4(h.cluster))) return `cluster address ${h.cluster} is outside clusterCidr ${c.clusterCidr}`;
    for (const k of ['service', 'cluster'] as const) {
      if (cidrContains(restore, parseIpv4(h[k]))) return `${k} address ${h[k]} lies in restoreCidr ${c.restoreCidr}`;
    }
    return null;
  };
}
