// The hash policy (the paper's stateless variant): Maglev consistent hashing
// over the client's address and port, computed per packet in native code from
// the table pushed here. No decision ever crosses into JavaScript.
import type { Eligibility } from '../eligibility';
import type { NativeQueue } from '../native';
import type { DecisionCounts, RoutingPolicy } from './policy';
import { pushTable } from './table';

export class HashPolicy implements RoutingPolicy {
  readonly name = 'hash' as const;
  readonly onDecide = undefined;
  private entry: NativeQueue | null = null;

  attach(entry: NativeQueue): void {
    this.entry = entry;
  }

  setEligible(e: Eligibility): void {
    pushTable(this.entry, e);
  }

  decisions(): DecisionCounts {
    return { local: 0, forwarded: 0, byPeer: {} };
  }

  reconfigure(): void {
    // nothing of its own to change
  }
}
