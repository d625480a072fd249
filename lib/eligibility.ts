// Which hosts may get new connections: the one rule both policies follow.
// A peer is eligible while it heartbeats, its web service is healthy, it does
// not drain and its weight is above 0; this host while its own service is
// healthy and its weight is above 0. A host whose service fails, or whose
// weight is 0, keeps routing: what arrives at it goes to eligible peers (only
// a design where every host routes can do that). With no eligible host at
// all, each host serves what reaches it (fail open: a refused connection is
// no worse than none, and a check may be wrong).
export interface Candidate {
  id: number;
  up: boolean;
  healthy: boolean;
  draining: boolean;
}

export interface Eligibility {
  /** The hosts new connections may go to, ascending: what the Maglev table is built from. */
  hosts: number[];
  /** Their weights (hosts[].weight), in the same order; all above 0 unless failOpen. */
  weights: number[];
  /** This host is one of them. */
  selfEligible: boolean;
  /** Nobody is eligible: this host serves everything that reaches it. */
  failOpen: boolean;
}

/** `weightOf`: a host's configured weight (hosts[].weight). */
export function eligibleHosts(self: number, selfHealthy: boolean, peers: readonly Candidate[], weightOf: (id: number) => number = () => 1): Eligibility {
  const peerIds = peers.filter((p) => p.id !== self && p.up && p.healthy && !p.draining && weightOf(p.id) > 0).map((p) => p.id);
  const make = (ids: number[], selfEligible: boolean, failOpen = false): Eligibility => {
    const hosts = [...ids].sort((a, b) => a - b);
    return { hosts, weights: hosts.map(weightOf), selfEligible, failOpen };
  };
  if (selfHealthy && weightOf(self) > 0) return make([self, ...peerIds], true);
  if (peerIds.length > 0) return make(peerIds, false);
  return make([self], true, true);
}

export function sameEligibility(a: Eligibility | null, b: Eligibility): boolean {
  return a !== null && a.failOpen === b.failOpen && a.hosts.join() === b.hosts.join() && a.weights.join() === b.weights.join();
}
