// The routing policy named by the configuration.
import type { DprConfig } from '../config';
import { HashPolicy } from './hash';
import { LoadPolicy, type LoadPolicyDeps } from './load';
import type { RoutingPolicy } from './policy';

export type { DecisionCounts, RoutingPolicy } from './policy';

export function createPolicy(c: Readonly<DprConfig>, deps: Omit<LoadPolicyDeps, 'self' | 'threshold' | 'hostIds'>): RoutingPolicy {
  switch (c.policy) {
    case 'hash': return new HashPolicy();
    case 'load': return new LoadPolicy({ ...deps, self: c.self, threshold: c.load.threshold, hostIds: Math.max(...c.hosts.map((h) => h.id)) + 1 });
  }
}
