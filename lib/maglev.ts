// Maglev consistent hashing (Eisenbud et al., NSDI 2016) for the `hash` policy.
//
// The table maps a flow hash to a host id: native code picks
// table[hash(client addr, port) % table.length] per packet, so the table is the
// whole policy. Maglev gives two properties we need:
//  - balance: every live host owns floor(M/N) or ceil(M/N) slots;
//  - minimal disruption: when a host dies, most slots of the survivors stay
//    where they were, so flows not yet in the flow table mostly keep their host.
// Both follow from each host's slot preferences depending only on its own id.
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
 * Builds the lookup table for the live hosts. Host i prefers slots in the
 * order (offset_i + j * skip_i) % M; hosts take turns claiming their next
 * preferred free slot until the table is full.
 *
 * Hosts take turns in ascending id order, whatever order the caller passes,
 * so the same set always gives the same table (every host builds it alone
 * and they must agree).
 */
export function buildMaglevTable(hostIds: readonly number[], size: number = MAGLEV_SIZES.default): Uint16Array {
  validate(hostIds, size);
  const ids = [...hostIds].sort((a, b) => a - b);
  const n = ids.length;
  // Each host's position in its own permutation, advanced by its skip: the
  // N x M permutation matrix of the paper is never materialised (168 MB for
  // 64 hosts and M = 655373).
  // Int32 and a subtraction instead of `%`: skip < size, so one wrap suffices;
  // the inner loop runs about M ln M times (measured: 4x faster than doubles).
  const pos = new Int32Array(n);
  const skip = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const { h1, h2 } = hostHashes(ids[i]!);
    pos[i] = h1 % size;
    skip[i] = (h2 % (size - 1)) + 1;
  }

  const table = new Uint16Array(size);
  const taken = new Uint8Array(size);
  let filled = 0;
  while (filled < size) {
    for (let i = 0; i < n && filled < size; i++) {
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
      filled++;
    }
  }
  return table;
}
