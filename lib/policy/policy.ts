// What a routing policy is to the daemon: told which hosts may get new
// connections, it routes them; the data path applies its choices. One
// module per policy (hash.ts, load.ts), made by createPolicy (index.ts).
import type { DprConfig } from '../config';
import type { Eligibility } from '../eligibility';
import type { DecisionBatch, NativeQueue, PolicyName } from '../native';

export interface DecisionCounts {
  local: number;
  forwarded: number;
  byPeer: Record<number, number>;
}

export interface RoutingPolicy {
  /** What the data path runs: `hash` decides natively, `load` defers new flows to onDecide. */
  readonly name: PolicyName;
  /** The entry queue's decision callback; undefined when the data path decides alone. */
  readonly onDecide: ((batch: DecisionBatch) => void) | undefined;
  /** The entry queue this policy routes for (before it starts). */
  attach(entry: NativeQueue): void;
  /** The hosts new connections may go to changed (and at start). */
  setEligible(e: Eligibility): void;
  /** Decisions taken in JavaScript (load policy); the hash policy's are counted natively. */
  decisions(): DecisionCounts;
  /** A reload: the policy's own settings may have changed (never the policy itself). */
  reconfigure(c: Readonly<DprConfig>): void;
}
