// Maglev consistent hashing (Eisenbud et al., NSDI 2016) for the `hash` policy.
//
// The table maps a flow hash to a host id: native code picks
// table[hash(client addr, port) % table.length] per packet, so the table is the
// whole policy. Maglev gives two properties we need:
//  - balance: every live host owns floor(M/N) or ceil(M/N) slots;
//  - minimal disruption: when a host dies, most slots of the survivors stay
//    where they were, so flows not yet in the flow table mostly keep their host.
// Both follow from each host's slot preferences depending only on its own id.
//
// Weights (buildWeightedMaglevTable): a host of weight w claims slots at w
// times the rate of a host of weight 1, so it owns a share of the table
// proportional to its weight; weight 0 owns nothing.
import { createHash } from 'node:crypto';

/**
 * Table sizes. The size must be prime (so every skip in 1..M-1 visits every
 * slot) and much larger than the number of hosts: the paper keeps M >= 100 * N
 * so that the orders in which hosts claim slots stay spread out.
 * - default: 65537, for clusters up to ~650 hosts (256 KiB as Uint16Array);
 * - large: 655373, for bigger clusters or finer balance (1.25 MiB).
 */
export const MAGLEV_SIZES = Object.freeze({ default: 65537, large: 655373 });

/** Table entries are Uint16, so host ids are too. */
const MAX_HOST_ID = 0xffff;
/** A bound on memory and build time, far above any sensible size. */
const MAX_SIZE = 1 << 24;
/**
 * Largest weight. Weights are relative capacities, and 100 to 1 covers any
 * mix of real machines. Finer would mean nothing: the table's size limits how
 * exactly a small weight is served (a weight-1 host beside 8 hosts of weight
 * 100 owns 82 of 65537 slots), and the claim order's period, the sum of the
 * weights, stays short (at most 25,600 turns for 256 hosts).
 */
export const MAX_WEIGHT = 100;

export interface WeightedHost {
  id: number;
  /** Integer 0..MAX_WEIGHT; 0: no slots (no new connections). */
  weight: number;
}

/** True when n is a prime integer (trial division: sizes are at most 2^24). */
export function isPrime(n: number): boolean {
  if (!Number.isSafeInteger(n) || n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) {
    if (n % d === 0) return false;
  }
  return true;
}

/**
 * Two independent hashes of a host, from its id alone. SHA-256 is overkill for
 * speed but runs N times per build, and a well-mixed digest keeps offsets and
 * skips of neighbouring ids (host-1, host-2) unrelated. 48-bit slices keep the
 * modulo bias negligible for any table size up to 2^24.
 */
function hostHashes(id: number): { h1: number; h2: number } {
  const digest = (salt: string): Buffer => createHash('sha256').update(`${salt}:host-${id}`).digest();
  return { h1: digest('maglev-offset').readUIntBE(0, 6), h2: digest('maglev-skip').readUIntBE(0, 6) };
}

function validate(hostIds: readonly number[], size: number): void {
  if (!Number.isSafeInteger(size) || size < 2 || size > MAX_SIZE) {
    throw new RangeError(`maglev: table size must be an integer in 2..${MAX_SIZE}, got ${size}`);
  }
  if (!isPrime(size)) throw new RangeError(`maglev: table size must be prime, got ${size}`);
  if (hostIds.length === 0) throw new RangeError('maglev: the list of live hosts is empty');
  if (hostIds.length > size) {
    throw new RangeError(`maglev: ${hostIds.length} hosts do not fit a table of ${size} slots`);
  }
  const seen = new Set<number>();
  for (const id of hostIds) {
    if (!Number.isInteger(id) || id < 0 || id > MAX_HOST_ID) {
      throw new RangeError(`maglev: host id must be an integer in 0..${MAX_HOST_ID}, got ${id}`);
    }
    if (seen.has(id)) throw new RangeError(`maglev: duplicate host id ${id}`);
    seen.add(id);
  }
}

/**
 * Fills the table: at each turn the host `order` names (an index into `ids`,
 * the order repeating) claims its next preferred free slot. Host i prefers
 * slots in the order (offset_i + j * skip_i) % M.
 *
 * The N x M permutation matrix of the paper is never materialised (168 MB for
 * 64 hosts and M = 655373): each host keeps only its position, advanced by
 * its skip. Int32 and a subtraction instead of `%`: skip < size, so one wrap
 * suffices; the inner loop runs about M ln M times (measured: 4x faster than
 * doubles).
 */
function fill(ids: readonly number[], size: number, order: Int32Array): Uint16Array {
  const n = ids.length;
  const pos = new Int32Array(n);
  const skip = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const { h1, h2 } = hostHashes(ids[i]!);
    pos[i] = h1 % size;
    skip[i] = (h2 % (size - 1)) + 1;
  }
  const table = new Uint16Array(size);
  const taken = new Uint8Array(size);
  for (let filled = 0, turn = 0; filled < size; filled++) {
    const i = order[turn]!;
    if (++turn === order.length) turn = 0;
    const step = skip[i]!;
    let slot = pos[i]!;
    while (taken[slot]) {
      slot += step;
      if (slot >= size) slot -= size;
    }
    taken[slot] = 1;
    table[slot] = ids[i]!;
    slot += step;
    pos[i] = slot >= size ? slot - size : slot;
  }
  return table;
}

/**
 * Builds the lookup table for the live hosts, all of weight 1: hosts take
 * turns claiming their next preferred free slot until the table is full.
 *
 * Hosts take turns in ascending id order, whatever order the caller passes,
 * so the same set always gives the same table (every host builds it alone
 * and they must agree).
 */
export function buildMaglevTable(hostIds: readonly number[], size: number = MAGLEV_SIZES.default): Uint16Array {
  validate(hostIds, size);
  const ids = [...hostIds].sort((a, b) => a - b);
  return fill(ids, size, Int32Array.from(ids, (_, i) => i));
}

function validateWeights(hosts: readonly WeightedHost[]): void {
  for (const h of hosts) {
    if (!Number.isInteger(h.weight) || h.weight < 0 || h.weight > MAX_WEIGHT) {
      throw new RangeError(`maglev: host ${h.id}: weight must be an integer in 0..${MAX_WEIGHT}, got ${h.weight}`);
    }
  }
  if (hosts.length > 0 && hosts.every((h) => h.weight === 0)) {
    throw new RangeError('maglev: every live host has weight 0: no host may take new connections');
  }
}

/**
 * The table for hosts with weights: host i owns about M * w_i / sum(w) slots
 * (within one slot), weight 0 none. With equal weights it is exactly
 * buildMaglevTable's table, and weights that differ by a common factor
 * (2, 2, 4 and 1, 1, 2) give the same table.
 *
 * The turns follow stride scheduling: host i's k-th claim (k = 0, 1, ...)
 * comes at virtual time (k + 1/2) / w_i, and claims go in that order, ties by
 * ascending id. Equal weights tie at every step: plain Maglev's rounds.
 * Changing one host's weight moves only that host's turns among the others,
 * whose order among themselves stays, so few slots change hands beyond the
 * ones the new shares require (test/20.maglev measures it).
 */
export function buildWeightedMaglevTable(hosts: readonly WeightedHost[], size: number = MAGLEV_SIZES.default): Uint16Array {
  validate(hosts.map((h) => h.id), size);
  validateWeights(hosts);
  const sorted = hosts.filter((h) => h.weight > 0).sort((a, b) => a.id - b.id);
  return fill(sorted.map((h) => h.id), size, claimOrder(sorted.map((h) => h.weight)));
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/**
 * One period of the claim order, as indices into `weights`. In every unit
 * of virtual time host i claims exactly w_i times, at the same offsets, so
 * the order repeats with period sum(w) claims. Times are compared as cross
 * products of integers, (2k_a + 1) w_b < (2k_b + 1) w_a: exact, so every
 * host computes the same order. Dividing by the weights' common factor keeps
 * the period short and changes nothing (the shorter period repeated is the
 * longer one).
 */
function claimOrder(weights: readonly number[]): Int32Array {
  const g = weights.reduce(gcd);
  const w = weights.map((x) => x / g);
  const turns: Array<[host: number, k: number]> = [];
  w.forEach((count, host) => {
    for (let k = 0; k < count; k++) turns.push([host, k]);
  });
  turns.sort(([a, ka], [b, kb]) => (2 * ka + 1) * w[b]! - (2 * kb + 1) * w[a]! || a - b);
  return Int32Array.from(turns, ([host]) => host);
}
