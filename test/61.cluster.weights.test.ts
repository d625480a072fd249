// hosts[].weight in a real cluster: a host of weight 2 gets about twice the
// connections of a host of weight 1, under the hash policy (its share of the
// Maglev table) and under the load policy (loads compared per weight); and
// weight 0, set by a reload, takes a host out of new connections while the
// ones it serves go on (drain by weight).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, hostAddress } from '../tools/cluster';
import { assertHeld, sleep, waitFor } from './support/wait';

const share = (servedBy: Record<string, number>, id: number, total: number): number => (servedBy[String(id)] ?? 0) / total;

describe('61.cluster.weights', () => {
  test('hash: a host of weight 2 gets half the connections of three, and weight 0 by reload drains a host without breaking what it serves', async () => {
    const cluster = await Cluster.create({ hosts: 3, weights: [1, 2, 1], tag: 'wh' });
    try {
      const s = await cluster.load({ targets: [{ address: hostAddress(0) }], requests: 600, concurrency: 8 });
      assert.equal(s.errors, 0, `errors: ${JSON.stringify(s.errorKinds)}, served by ${JSON.stringify(s.servedBy)}`);
      console.log(`weights 1, 2, 1 (hash): served ${JSON.stringify(s.servedBy)} of ${s.ok}`);
      assert.ok(Math.abs(share(s.servedBy, 1, s.ok) - 0.5) < 0.1, `weight 2 of 4 served ${share(s.servedBy, 1, s.ok).toFixed(2)}`);
      for (const id of [0, 2]) assert.ok(Math.abs(share(s.servedBy, id, s.ok) - 0.25) < 0.08, `h${id} served ${share(s.servedBy, id, s.ok).toFixed(2)}`);

      // Drain h2 by weight: long-lived connections through h0, some served by h2, keep going.
      const held = cluster.holdOpen({ address: hostAddress(0), connections: 24, intervalMs: 200 });
      await sleep(1000);
      cluster.setWeights([1, 2, 0]);
      for (const id of [0, 1, 2]) assert.equal(cluster.cli(id, ['reload']).code, 0);
      await waitFor('h2 out of every table', () => [0, 1, 2].every((id) => !cluster.status(id).liveHosts.includes(2)), 5000);
      const after = await cluster.load({ targets: [0, 1, 2].map((id) => ({ address: hostAddress(id) })), requests: 300, concurrency: 8 });
      assert.equal(after.errors, 0, `errors: ${JSON.stringify(after.errorKinds)}, served by ${JSON.stringify(after.servedBy)}`);
      assert.equal(after.servedBy['2'] ?? 0, 0, 'a host of weight 0 got new connections');
      await sleep(1000);
      const conns = await held.stop();
      assertHeld(conns, { minOk: 5, atLeast: 24 });
      assert.ok(conns.some((c) => c.servedBy === '2'), 'no held connection was served by h2: the drain shows nothing');
    } finally {
      await cluster.destroy();
    }
  });

  test('load: with even arrivals, a host of weight 2 serves about twice what each host of weight 1 serves', async () => {
    const cluster = await Cluster.create({
      // 100 ms of service, mostly waiting: a host whose core a CPU hog
      // shares answers later by a smaller part of it (with 40 ms, one
      // beside the hog served 0.36, 0.25 and 0.38).
      hosts: 3, policy: 'load', weights: [1, 2, 1], slots: 64, serviceMs: 100, tag: 'wl',
      config: { load: { threshold: 0 } },
    });
    try {
      const s = await cluster.load({ targets: [0, 1, 2].map((id) => ({ address: hostAddress(id) })), requests: 900, concurrency: 24 });
      assert.equal(s.errors, 0, `errors: ${JSON.stringify(s.errorKinds)}, served by ${JSON.stringify(s.servedBy)}`);
      const [a, b, c] = [0, 1, 2].map((id) => share(s.servedBy, id, s.ok));
      console.log(`weights 1, 2, 1 (load, even arrivals): served ${JSON.stringify(s.servedBy)} of ${s.ok}`);
      assert.ok(b! > 0.38 && b! < 0.6, `the weight-2 host served ${b!.toFixed(2)}`);
      // Each host of weight 1 stays within the mean x 1.1 (lib/policy/load-choice): 1.64x expected.
      // Against the mean of the two weight-1 hosts: which of them runs on a
      // starved core (a CPU hog, a busy 2-core machine) reports its load late
      // and draws more than its share, at the other's expense (seen: 0.34
      // and 0.24 beside 0.42), a matter of balance (issue 13), not of weights.
      // Weights ignored would give about 1.0.
      assert.ok(b! / ((a! + c!) / 2) > 1.35, `shares ${a!.toFixed(2)}, ${b!.toFixed(2)}, ${c!.toFixed(2)}`);
    } finally {
      await cluster.destroy();
    }
  });
});
