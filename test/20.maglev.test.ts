import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { buildMaglevTable, buildWeightedMaglevTable, isPrime, MAGLEV_SIZES, MAX_WEIGHT, type WeightedHost } from '../lib/maglev';

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

function shares(table: Uint16Array): Map<number, number> {
  const counts = new Map<number, number>();
  for (const id of table) counts.set(id, (counts.get(id) ?? 0) + 1);
  return counts;
}

test('20.maglev: isPrime knows the table sizes and rejects non-primes', () => {
  assert.ok(isPrime(MAGLEV_SIZES.default));
  assert.ok(isPrime(MAGLEV_SIZES.large));
  assert.ok(isPrime(2) && isPrime(3) && isPrime(7919));
  for (const n of [-7, 0, 1, 4, 9, 65536, 65535, 7.5, NaN, Infinity]) assert.equal(isPrime(n), false, `${n}`);
});

test('20.maglev: every slot holds a live host, whatever order the ids come in', () => {
  const live = [40, 3, 17, 65535, 0];
  const table = buildMaglevTable(live);
  assert.equal(table.length, MAGLEV_SIZES.default);
  const allowed = new Set(live);
  for (const id of table) assert.ok(allowed.has(id), `slot holds ${id}, not a live host`);
  assert.deepEqual(buildMaglevTable([...live].reverse()), table, 'order of the list must not matter');
});

test('20.maglev: each host owns within 1% of size/N for N = 2, 3, 4, 8, 64', () => {
  const size = MAGLEV_SIZES.default;
  for (const n of [2, 3, 4, 8, 64]) {
    const counts = shares(buildMaglevTable(range(n), size));
    assert.equal(counts.size, n, `N=${n}: every host must own slots`);
    const fair = size / n;
    for (const [id, count] of counts) {
      assert.ok(Math.abs(count - fair) <= fair * 0.01, `N=${n}: host ${id} owns ${count}, fair share ${fair.toFixed(1)}`);
    }
  }
});

/**
 * A second implementation, straight from the paper's pseudocode (Eisenbud et
 * al., NSDI 2016, Algorithm 1) with the permutation matrix materialised and
 * the offset/skip hashes as lib/maglev.ts documents them: the optimised build
 * must give exactly this table.
 */
function referenceTable(hostIds: number[], m: number): number[] {
  const ids = [...hostIds].sort((a, b) => a - b);
  const h = (salt: string, id: number): number => createHash('sha256').update(`${salt}:host-${id}`).digest().readUIntBE(0, 6);
  const permutation = ids.map((id) => {
    const offset = h('maglev-offset', id) % m;
    const skip = (h('maglev-skip', id) % (m - 1)) + 1;
    return Array.from({ length: m }, (_, j) => (offset + j * skip) % m);
  });
  const next = ids.map(() => 0);
  const entry: number[] = new Array(m).fill(-1);
  let n = 0;
  for (;;) {
    for (let i = 0; i < ids.length; i++) {
      let c = permutation[i]![next[i]!]!;
      while (entry[c]! >= 0) {
        next[i]!++;
        c = permutation[i]![next[i]!]!;
      }
      entry[c] = ids[i]!;
      next[i]!++;
      n++;
      if (n === m) return entry;
    }
  }
}

test('20.maglev: the table is exactly the paper\'s algorithm, computed independently', () => {
  for (const [ids, m] of [[[0], 13], [[0, 1], 13], [[3, 0, 7], 101], [[0, 1, 2, 3, 4, 5, 6, 7], 1009], [[5, 9, 200, 1000, 65535], 65537]] as Array<[number[], number]>) {
    assert.deepEqual([...buildMaglevTable(ids, m)], referenceTable(ids, m), `hosts ${ids}, size ${m}`);
  }
});

test('20.maglev: removing one of 8 hosts moves few slots between survivors', () => {
  const all = range(8);
  const before = buildMaglevTable(all);
  for (const gone of all) {
    const after = buildMaglevTable(all.filter((id) => id !== gone));
    let orphaned = 0;
    let moved = 0;
    for (let i = 0; i < before.length; i++) {
      if (before[i] === gone) orphaned++;
      else if (after[i] !== before[i]) moved++;
      assert.notEqual(after[i], gone);
    }
    assert.ok(orphaned > 0);
    assert.ok(moved <= before.length * 0.03, `without host ${gone}: ${moved} slots moved between survivors`);
    console.log(`maglev: without host ${gone} of 8: ${moved} of ${before.length} survivor slots moved (${(100 * moved / before.length).toFixed(2)}%)`);
  }
});

test('20.maglev: {0,1,2,3} and {0,1,3} differ in few slots beyond host 2\'s', () => {
  const a = buildMaglevTable([0, 1, 2, 3]);
  const b = buildMaglevTable([0, 1, 3]);
  let moved = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== 2 && a[i] !== b[i]) moved++;
  assert.ok(moved <= a.length * 0.03, `${moved} slots moved between survivors`);
});

test('20.maglev: invalid inputs throw with a message naming the problem', () => {
  const cases: Array<[() => unknown, RegExp]> = [
    [() => buildMaglevTable([]), /empty/],
    [() => buildMaglevTable([0, 1], 65536), /prime/],
    [() => buildMaglevTable([0, 1], 1), /size/],
    [() => buildMaglevTable([0, 1], 12.5), /size/],
    [() => buildMaglevTable([0, 1], 2 ** 25 + 1), /size/],
    [() => buildMaglevTable([0, 1, 1]), /duplicate host id 1/],
    [() => buildMaglevTable([0, -1]), /host id .* -1/],
    [() => buildMaglevTable([0, 65536]), /host id .* 65536/],
    [() => buildMaglevTable([0, 1.5]), /host id .* 1\.5/],
    [() => buildMaglevTable([0, 1, 2, 3], 3), /4 hosts do not fit a table of 3/],
  ];
  for (const [fn, message] of cases) assert.throws(fn, message);
});

// ---- weights (issue 13) ---------------------------------------------------

const weighted = (weights: readonly number[]): WeightedHost[] => weights.map((weight, id) => ({ id, weight }));

test('20.maglev: with equal weights the weighted table is exactly the plain one, whatever the common weight', () => {
  for (const n of [1, 2, 5, 8]) {
    const plain = buildMaglevTable(range(n));
    for (const w of [1, 3, 100]) assert.deepEqual(buildWeightedMaglevTable(weighted(Array(n).fill(w))), plain, `N=${n}, weight ${w}`);
  }
  // Weights that differ by a common factor are the same weights.
  assert.deepEqual(buildWeightedMaglevTable(weighted([2, 2, 4])), buildWeightedMaglevTable(weighted([1, 1, 2])));
  assert.deepEqual(buildWeightedMaglevTable(weighted([30, 20, 10]), 1009), buildWeightedMaglevTable(weighted([3, 2, 1]), 1009));
});

test('20.maglev: a host owns slots in proportion to its weight, within 1% and within one slot', () => {
  const cases = [[1, 2], [2, 1, 1, 1], [1, 2, 3, 4], [1, 1, 1, 1, 1, 1, 1, 2], [100, 1, 50, 7], Array.from({ length: 64 }, (_, i) => 1 + (i % 5))];
  for (const weights of cases) {
    for (const size of [MAGLEV_SIZES.default, MAGLEV_SIZES.large]) {
      const counts = shares(buildWeightedMaglevTable(weighted(weights), size));
      const total = weights.reduce((a, b) => a + b, 0);
      weights.forEach((w, id) => {
        const fair = (size * w) / total;
        const got = counts.get(id) ?? 0;
        assert.ok(Math.abs(got - fair) <= Math.max(1, fair * 0.01), `weights ${weights}, size ${size}: host ${id} owns ${got}, fair ${fair.toFixed(1)}`);
        assert.ok(Math.abs(got - fair) <= 1, `weights ${weights}, size ${size}: host ${id} owns ${got}, more than one slot from ${fair.toFixed(1)}`);
      });
    }
  }
});

test('20.maglev: weight 0 owns no slot, and the table is the one without that host', () => {
  const table = buildWeightedMaglevTable(weighted([1, 0, 2, 1]));
  assert.equal(shares(table).get(1), undefined);
  assert.deepEqual(table, buildWeightedMaglevTable([{ id: 0, weight: 1 }, { id: 2, weight: 2 }, { id: 3, weight: 1 }]));
  assert.deepEqual(buildWeightedMaglevTable(weighted([1, 0, 1, 1])), buildMaglevTable([0, 2, 3]));
});

test('20.maglev: the weighted table depends on the (id, weight) set only, not on the order it comes in', () => {
  const hosts: WeightedHost[] = [{ id: 40, weight: 3 }, { id: 3, weight: 1 }, { id: 17, weight: 0 }, { id: 65535, weight: 2 }];
  const table = buildWeightedMaglevTable(hosts);
  assert.deepEqual(buildWeightedMaglevTable([...hosts].reverse()), table);
  assert.deepEqual(buildWeightedMaglevTable([hosts[2]!, hosts[0]!, hosts[3]!, hosts[1]!]), table);
  for (const id of table) assert.ok(id === 40 || id === 3 || id === 65535, `slot holds ${id}`);
});

/** Slots whose host changed, and the fewest that had to: what the shrinking hosts lost. */
function disruption(before: Uint16Array, after: Uint16Array): { moved: number; needed: number } {
  let moved = 0;
  for (let i = 0; i < before.length; i++) if (before[i] !== after[i]) moved++;
  const a = shares(before);
  const b = shares(after);
  let needed = 0;
  for (const [id, count] of a) needed += Math.max(0, count - (b.get(id) ?? 0));
  return { moved, needed };
}

test('20.maglev: changing one host\'s weight moves at most 10% more slots than the new shares require', () => {
  const changes: Array<[n: number, host: number, from: number, to: number]> = [
    [8, 3, 1, 2], [8, 3, 2, 1], [8, 0, 1, 3], [8, 7, 1, 0], [4, 1, 1, 2], [16, 5, 1, 2], [8, 3, 10, 11], [8, 3, 1, 100],
  ];
  for (const [n, host, from, to] of changes) {
    const at = (w: number) => buildWeightedMaglevTable(weighted(range(n).map((id) => (id === host ? w : 1))));
    const { moved, needed } = disruption(at(from), at(to));
    assert.ok(needed > 0);
    assert.ok(moved <= needed * 1.1, `N=${n}, host ${host} ${from} -> ${to}: ${moved} slots moved, ${needed} needed`);
    console.log(`maglev: N=${n}, host ${host} weight ${from} -> ${to}: ${moved} slots moved (${(100 * moved / MAGLEV_SIZES.default).toFixed(2)}%), ${needed} needed (${(100 * needed / MAGLEV_SIZES.default).toFixed(2)}%)`);
  }
});

test('20.maglev: bad weights throw with a message naming the host and the problem', () => {
  const cases: Array<[WeightedHost[], RegExp]> = [
    [[{ id: 0, weight: 1 }, { id: 1, weight: -1 }], /host 1: weight .* 0\.\.100, got -1/],
    [[{ id: 0, weight: 1.5 }], /host 0: weight .* got 1\.5/],
    [[{ id: 0, weight: 101 }], /host 0: weight .* got 101/],
    [[{ id: 0, weight: NaN }], /host 0: weight .* got NaN/],
    [[{ id: 0, weight: 0 }, { id: 1, weight: 0 }], /every live host has weight 0/],
    [[], /empty/],
    [[{ id: 0, weight: 1 }, { id: 0, weight: 2 }], /duplicate host id 0/],
  ];
  for (const [hosts, message] of cases) assert.throws(() => buildWeightedMaglevTable(hosts), message);
  assert.equal(MAX_WEIGHT, 100);
});
