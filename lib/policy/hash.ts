// The hash policy (the paper's stateless variant): Maglev consistent hashing
// over the client's address and port, computed per new flow in native code
// from the (weighted) table pushed here.
import type { Eligibility } from '../eligibility';
import type { NativeQueue } from '../native';
import type { RoutingPolicy } from './policy';
import { pushTable } from './table';

export class HashPolicy implements RoutingPolicy {
  readonly name = 'hash' as const;
  private entry: NativeQueue | null = null;

  attach(entry: NativeQueue): void {
    this.entry = entry;
  }

  setEligible(e: Eligibility): void {
    pushTable(this.entry, e);
  }

  reconfigure(): void {
    // nothing of its own to change
  }
}
