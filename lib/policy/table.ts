// The Maglev table both policies push to the entry queue: the hash policy
// routes by it, and for both it tells the data path which hosts are live (a
// SYN retransmitted towards a host that left is decided again).
import type { Eligibility } from '../eligibility';
import { buildMaglevTable } from '../maglev';
import type { NativeQueue } from '../native';

export function pushTable(entry: NativeQueue | null, e: Eligibility): void {
  entry?.setLookupTable(buildMaglevTable(e.hosts));
}
