// Draining with connections that do not finish in time: `dpr drain --wait`
// gives up after its timeout with exit 1 and says what is left, and a
// SIGTERM's drain gives up after drain.timeoutMs and the daemon exits; the
// saved flow table then lets the next daemon carry those connections on.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, hostAddress } from '../tools/cluster';
import { assertHeld, sleep, waitFor } from './support/wait';

const DRAIN_MS = 2000;

describe('60.cluster.drain', () => {
  test('a drain that cannot finish: `dpr drain --wait` exits 1, SIGTERM exits after drain.timeoutMs, a restart carries the connections on', async () => {
    const cluster = await Cluster.create({ hosts: 2, tag: 'dr', config: { drain: { timeoutMs: DRAIN_MS } } });
    try {
      const held = cluster.holdOpen({ address: hostAddress(0), connections: 12, intervalMs: 200, stallMs: 5000 });
      await waitFor('forwarded connections at h0', () => cluster.status(0).entry!.flows.forwarded.established > 0, 10000);

      const waited = Date.now();
      const r = cluster.cli(0, ['drain', '--wait', '--timeout', '800']);
      const tookMs = Date.now() - waited;
      assert.equal(r.code, 1, `dpr drain --wait exited ${r.code}: ${r.stderr}`);
      assert.match(r.stdout, /is draining/);
      assert.match(r.stderr, /still [1-9]\d* forwarded to peers/);
      assert.ok(tookMs >= 800, `gave up after ${tookMs} ms`);
      assert.equal(cluster.status(0).draining, true);

      const termAt = Date.now();
      const code = await cluster.signalDaemon(0, 'SIGTERM', DRAIN_MS + 15000);
      const exitedMs = Date.now() - termAt;
      assert.equal(code, 0, 'the daemon exits 0 when its drain times out');
      assert.ok(exitedMs >= DRAIN_MS, `exited ${exitedMs} ms after SIGTERM, before drain.timeoutMs`);
      assert.ok(exitedMs < DRAIN_MS + 10000, `took ${exitedMs} ms to exit`);

      await cluster.startDaemon(0);
      await cluster.waitForMembership();
      await sleep(1000);
      const conns = await held.stop();
      assertHeld(conns, { only: (c) => c.servedBy !== '0', minOk: 5, atLeast: 1 });
    } finally {
      await cluster.destroy();
    }
  });
});
