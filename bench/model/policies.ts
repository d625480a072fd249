// The ways of placing a new connection that the model compares (issue 13,
// item 1): what runs today, the central balancers the bench measures, and the
// candidate load policies. Each sees only what bench/model/sim.ts's View
// gives it: for a dpr host, its own load exactly and its peers' as estimated.
import type { Policy, View } from './sim';

/** No dpr: a connection is served where it arrived. */
export const fixed: Policy = { name: 'fixed', decide: (v) => v.self };

/** The hash policy: the host the Maglev table names, whatever its load. */
export const hash: Policy = { name: 'hash', decide: (v) => v.maglev() };

/** Kernel DNAT with `statistic --mode nth`: one counter for the whole front. */
export function roundRobin(): Policy {
  let next = 0;
  return { name: 'round-robin', decide: (v) => next++ % v.n };
}

/** HAProxy `balance leastconn`: the fewest outstanding per weight, known exactly; ties in turn. */
export function leastconn(): Policy {
  let turn = 0;
  return {
    name: 'leastconn',
    decide(v) {
      turn++;
      let best = -1;
      let bestLoad = Infinity;
      for (let i = 0; i < v.n; i++) {
        const h = (turn + i) % v.n;
        if (v.weights[h] === 0) continue;
        const l = v.exact(h) / v.weights[h]!;
        if (l < bestLoad) [best, bestLoad] = [h, l];
      }
      return best;
    },
  };
}

/**
 * The load policy as the daemon runs it today (lib/load-policy.ts): forward
 * to the least-loaded peer by estimate when own - peer > threshold; no
 * weights. Run with Knobs.flickerShare to count the report-identity slip.
 */
export function today(threshold: number): Policy {
  return {
    name: `today (threshold ${threshold})`,
    decide(v) {
      let best = -1;
      let bestLoad = Infinity;
      for (let h = 0; h < v.n; h++) {
        if (h === v.self) continue;
        const l = v.estimate(h);
        if (l < bestLoad) [best, bestLoad] = [h, l];
      }
      return best >= 0 && v.own() - bestLoad > threshold ? best : v.self;
    },
  };
}

/** A host's load per weight as `v`'s host sees it (own exact, peers estimated). */
function perWeight(v: View, h: number): number {
  const w = v.weights[h]!;
  if (w === 0) return Infinity;
  return (h === v.self ? v.own() : v.estimate(h)) / w;
}

/** True while this host, with the new connection, stays at or below the cluster mean x (1 + e), per weight. */
function atOrBelowMean(v: View, e: number): boolean {
  let total = 0;
  let weight = 0;
  for (let h = 0; h < v.n; h++) {
    if (v.weights[h] === 0) continue;
    total += h === v.self ? v.own() : v.estimate(h);
    weight += v.weights[h]!;
  }
  const w = v.weights[v.self]!;
  return w > 0 && (v.own() + 1) / w <= ((total + 1) / weight) * (1 + e);
}

/** The least loaded peer by estimate per weight, if it is lighter than this host. */
function leastPeer(v: View): number {
  let best = v.self;
  let bestLoad = perWeight(v, v.self);
  for (let h = 0; h < v.n; h++) {
    if (h === v.self) continue;
    const l = perWeight(v, h);
    if (l < bestLoad) [best, bestLoad] = [h, l];
  }
  return best;
}

/** The lighter of the Maglev choice and one random peer, or this host if it is lighter than both. */
function twoChoices(v: View): number {
  const a = v.maglev();
  const b = v.randomPeer();
  const la = perWeight(v, a);
  const lb = perWeight(v, b);
  const [pick, load] = lb < la ? [b, lb] : [a, la];
  return load < perWeight(v, v.self) ? pick : v.self;
}

/** Local while at or below the mean x (1 + e); above it, the least loaded peer. */
export function meanThenLeast(e: number): Policy {
  return { name: `local <= mean x ${1 + e}, else least`, decide: (v) => (atOrBelowMean(v, e) ? v.self : leastPeer(v)) };
}

/** Local while at or below the mean x (1 + e); above it, the lighter of two choices. */
export function meanThenTwo(e: number): Policy {
  return { name: `local <= mean x ${1 + e}, else two choices`, decide: (v) => (atOrBelowMean(v, e) ? v.self : twoChoices(v)) };
}

/**
 * The load policy as the daemon runs it (native/load_choice.h): local while
 * this host, with the connection, carries at most `threshold` per weight or
 * at most the mean x (1 + e); else the lighter of two choices, if that one,
 * with the connection, is still lighter than this host without it.
 */
export function product(threshold: number, e: number): Policy {
  return {
    name: `as built (threshold ${threshold}, mean x ${1 + e}, a move must even out)`,
    decide(v) {
      const w = v.weights[v.self]!;
      if (w > 0 && ((v.own() + 1) / w <= threshold || atOrBelowMean(v, e))) return v.self;
      const a = v.maglev();
      const b = v.randomPeer();
      const [pick, load] = perWeight(v, b) < perWeight(v, a) ? [b, v.estimate(b)] : [a, v.estimate(a)];
      if (pick === v.self || v.weights[pick] === 0) return v.self;
      if (w === 0) return pick;
      return (load + 1) / v.weights[pick]! < v.own() / w ? pick : v.self;
    },
  };
}

/** Two choices at every connection (the Maglev choice and a random peer), with no local preference. */
export const twoAlways: Policy = {
  name: 'two choices always',
  decide(v) {
    const a = v.maglev();
    const b = v.randomPeer();
    return perWeight(v, b) < perWeight(v, a) ? b : a;
  },
};

/**
 * Join-Idle-Queue: a host with a free slot serves; a full one sends the
 * connection to a host whose idle token it holds, or serves it if it holds
 * none. A host that frees a slot with nothing queued tells `d` random peers.
 * (It needs each host's capacity, which dpr does not know today.)
 */
export function joinIdleQueue(d: number): Policy {
  return {
    name: `idle tokens to ${d} peer${d > 1 ? 's' : ''}`,
    tokens: d,
    decide(v) {
      if (v.own() < v.slots[v.self]!) return v.self;
      const t = v.takeToken();
      return t >= 0 ? t : v.self;
    },
  };
}

/**
 * A serving host that got a forwarded SYN sends it on once, to the lighter
 * of two choices, when it is above the cluster mean x (1 + e) itself (as
 * far as it knows: it sees its own load exactly). `e` null: when it has no
 * free slot, which needs its capacity (a figure dpr does not have today).
 */
export function withBounce(p: Policy, e: number | null = null): Policy {
  return {
    ...p,
    name: `${p.name}, bounce once ${e === null ? 'when full' : `above mean x ${1 + e}`}`,
    bounce(v) {
      const over = e === null ? v.own() >= v.slots[v.self]! : !atOrBelowMean(v, e);
      if (!over) return -1;
      const pick = twoChoices(v);
      return pick === v.self ? -1 : pick;
    },
  };
}
