// The routing policy named by the configuration.
import type { DprConfig } from '../config';
import { HashPolicy } from './hash';
import { LoadPolicy } from './load';
import type { RoutingPolicy } from './policy';

export type { RoutingPolicy } from './policy';

export function createPolicy(c: Readonly<DprConfig>): RoutingPolicy {
  switch (c.policy) {
    case 'hash': return new HashPolicy();
    case 'load': return new LoadPolicy(c);
  }
}
