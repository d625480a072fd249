// The load policy: each new connection is served here or sent to a lighter
// peer, decided in the entry queue's thread (the rule: native/load_choice.h;
// its inputs: native/load_decider.h). What it decides on comes from here:
// the eligible hosts (the Maglev table, whose choice is also its first
// candidate), the weights, the threshold; this host's load counts (the
// daemon hands each exact count to the queue, lib/daemon.ts) and peers'
// reports (the heartbeat thread publishes them to the queue directly).
import type { DprConfig, HostEntry } from '../config';
import type { Eligibility } from '../eligibility';
import type { NativeQueue } from '../native';
import type { RoutingPolicy } from './policy';
import { pushTable } from './table';

/** hosts[].weight by host id, as the data path takes them. */
export function weightsById(hosts: readonly HostEntry[]): Uint8Array {
  const out = new Uint8Array(Math.max(...hosts.map((h) => h.id)) + 1).fill(1);
  for (const h of hosts) out[h.id] = h.weight;
  return out;
}

export class LoadPolicy implements RoutingPolicy {
  readonly name = 'load' as const;
  private entry: NativeQueue | null = null;

  constructor(private config: Readonly<DprConfig>) {}

  attach(entry: NativeQueue): void {
    this.entry = entry;
    this.push();
  }

  setEligible(e: Eligibility): void {
    pushTable(this.entry, e);
  }

  reconfigure(c: Readonly<DprConfig>): void {
    this.config = c;
    this.push();
  }

  private push(): void {
    this.entry?.setWeights(weightsById(this.config.hosts));
    this.entry?.setLoadThreshold(this.config.load.threshold);
  }
}
