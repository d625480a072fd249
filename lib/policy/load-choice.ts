// The load policy's rule for one new connection, with no I/O (unit-tested as
// it is). Loads are compared per unit of weight (hosts[].weight).
//
// Serve it here while this host, with it, carries at most `threshold`
// connections per weight, or at most the cluster mean per weight x (1 +
// HEADROOM). Above that, send it to the lighter of two peers: the one the
// Maglev table names for it and one drawn at random, if that one is lighter
// than this host. Least-loaded-peer herds when several hosts forward on the
// same stale reports; two choices do not (Mitzenmacher, "How useful is old
// information?", 2000). The model's figures for each part (docs/design-notes.md,
// "The load policy"): 0.99x of the ideal on the cluster trial's skew,
// 1.00x balanced, 0.95x where 4 of 8 hosts forward at once; the threshold
// costs nothing up to about the mean load and keeps hosts that are not busy
// from forwarding at all.

/** How far above the cluster mean per weight a host goes before it forwards (model: 0.1 beats 0 and 0.25). */
export const HEADROOM = 0.1;

export interface Contender {
  id: number;
  weight: number;
  /** Its load now, as estimated (lib/policy/peer-estimates.ts). */
  load: number;
}

export interface Situation {
  self: number;
  ownWeight: number;
  /** This host's load now (its own measurement, plus what it kept since). */
  ownLoad: number;
  /** This host may take new connections (healthy, weight > 0, not failing open alone). */
  selfEligible: boolean;
  /** The eligible peers (not this host), with weight > 0. */
  peers: readonly Contender[];
  /** The host the Maglev table names for this connection. */
  hashTarget: number;
  /** A uniform draw in [0, 1), for the random choice. */
  random: number;
}

const perWeight = (c: { load: number; weight: number }): number => c.load / c.weight;

export function chooseHost(s: Situation, threshold: number): number {
  const { peers } = s;
  if (peers.length === 0) return s.self;
  if (s.selfEligible) {
    let total = s.ownLoad;
    let weight = s.ownWeight;
    for (const p of peers) {
      total += p.load;
      weight += p.weight;
    }
    const after = (s.ownLoad + 1) / s.ownWeight;
    if (after <= Math.max(threshold, ((total + 1) / weight) * (1 + HEADROOM))) return s.self;
  }
  const first = peers.find((p) => p.id === s.hashTarget);
  // The second choice: a random peer other than the first (the first itself if it is the only one).
  const others = first === undefined ? peers.length : peers.length - 1;
  let second: Contender | undefined;
  if (others > 0) {
    let k = Math.min(others - 1, Math.floor(s.random * others));
    for (const p of peers) {
      if (p === first) continue;
      if (k-- === 0) {
        second = p;
        break;
      }
    }
  }
  let pick = first ?? second!;
  if (first !== undefined && second !== undefined && perWeight(second) < perWeight(first)) pick = second;
  if (!s.selfEligible) return pick.id;
  return perWeight(pick) < s.ownLoad / s.ownWeight ? pick.id : s.self;
}
