// The Maglev table both policies push to the entry queue: the hash policy
// routes by it, the load policy takes it as its first choice, and for both it
// tells the data path which hosts are live (a SYN retransmitted towards a
// host that left is decided again). A host's share of the slots follows its
// weight.
import type { Eligibility } from '../eligibility';
import { buildMaglevTable, buildWeightedMaglevTable } from '../maglev';
import type { NativeQueue } from '../native';

export function tableFor(e: Eligibility): Uint16Array {
  // Failing open, this host serves alone whatever its weight.
  if (e.failOpen) return buildMaglevTable(e.hosts);
  return buildWeightedMaglevTable(e.hosts.map((id, i) => ({ id, weight: e.weights[i]! })));
}

export function pushTable(entry: NativeQueue | null, e: Eligibility): void {
  entry?.setLookupTable(tableFor(e));
}
