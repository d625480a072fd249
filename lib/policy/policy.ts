// What a routing policy is to the daemon: told which hosts may get new
// connections, it hands the data path what that policy decides on. Both
// decide every new connection natively, in the entry queue's thread (the
// hash policy by the Maglev table, the load policy also on loads:
// native/load_decider.h), so no packet waits for JavaScript. One module per
// policy (hash.ts, load.ts), made by createPolicy (index.ts).
import type { DprConfig } from '../config';
import type { Eligibility } from '../eligibility';
import type { NativeQueue, PolicyName } from '../native';

export interface RoutingPolicy {
  readonly name: PolicyName;
  /** The entry queue this policy routes for (before it starts). */
  attach(entry: NativeQueue): void;
  /** The hosts new connections may go to changed (and at start). */
  setEligible(e: Eligibility): void;
  /** A reload: the policy's own settings may have changed (never the policy itself). */
  reconfigure(c: Readonly<DprConfig>): void;
}
