// Which hosts may get new connections: the one rule both policies follow.
// A peer is eligible while it heartbeats, its web service is healthy and it
// does not drain; this host while its own service is healthy. A host whose
// service fails keeps routing: what arrives at it goes to healthy peers (only
// a design where every host routes can do that). With no healthy host at all,
// each host serves what reaches it (fail open: a refused connection is no
// worse than none, and a check may be wrong).
export interface Candidate {
  id: number;
  up: boolean;
  healthy: boolean;
  draining: boolean;
}

export interface Eligibility {
  /** The hosts new connections may go to, ascending: what the Maglev table is built from. */
  hosts: number[];
  /** This host is one of them. */
  selfEligible: boolean;
  /** Nobody is healthy: this host serves everything that reaches it. */
  failOpen: boolean;
}

export function eligibleHosts(self: number, selfHealthy: boolean, peers: readonly Candidate[]): Eligibility {
  const healthyPeers = peers.filter((p) => p.id !== self && p.up && p.healthy && !p.draining).map((p) => p.id);
  const sorted = (ids: number[]): number[] => [...ids].sort((a, b) => a - b);
  if (selfHealthy) return { hosts: sorted([self, ...healthyPeers]), selfEligible: true, failOpen: false };
  if (healthyPeers.length > 0) return { hosts: sorted(healthyPeers), selfEligible: false, failOpen: false };
  return { hosts: [self], selfEligible: true, failOpen: true };
}

export function sameEligibility(a: Eligibility | null, b: Eligibility): boolean {
  return a !== null && a.failOpen === b.failOpen && a.hosts.join() === b.hosts.join();
}
