// A peer host dies (its web server and daemon gone) while new connections
// keep arriving at another host: once peers.deadAfterMs has passed (plus a
// heartbeat and a margin for this shared machine) no new connection goes to
// it, and the client sees no errors but for the connections that were in
// flight to it or were sent to it before the others noticed. The bench
// (`npm run bench -- reliability`) measures how soon, as p50/p99.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster } from '../tools/cluster';
import { peerDeath, reviveHost } from './support/faults';

describe('67.faults.peerdeath', () => {
  // Filled by the first test, judged by the second (which names the gap).
  let retried: number | null = null;

  test('a dead peer gets no new connections after deadAfterMs + 1 s, and only connections sent to it fail', async () => {
    const cluster = await Cluster.create({ hosts: 3, tag: 'pd' });
    retried = null;
    try {
      const peers = cluster.configFor(0).peers as { heartbeatMs: number; deadAfterMs: number };
      const settleMs = peers.deadAfterMs + peers.heartbeatMs + 1000;
      const r = await peerDeath(cluster, { entry: 0, victim: 2, intervalMs: 10, beforeMs: 1500, afterMs: settleMs + 1500, timeoutMs: 3000, settleMs });
      console.log(`peer death: detected by h0 after ${r.detectedMs} ms (deadAfterMs ${peers.deadAfterMs}, heartbeat ${peers.heartbeatMs}); ` +
        `last new connection sent to the dead host ${r.lastToDeadMs} ms after the kill; ${r.probes} connections, ` +
        `failed: ${r.inFlight} in flight at the kill + ${r.sentToDead} sent to it before h0 noticed (${JSON.stringify(r.errorKinds)}); ` +
        `after ${settleMs} ms: ${r.lateErrors} errors, ${r.lateToDead} to the dead host`);
      assert.ok(r.servedByVictimBefore > 0, 'the victim served nothing before it died: the test shows nothing');
      assert.notEqual(r.detectedMs, null, `h0 still lists host 2 ${settleMs} ms after it died`);
      assert.equal(r.lateToDead, 0);
      assert.equal(r.lateErrors, 0);
      // Every failure is a connection that went to the dead host before h0 noticed: none started after it did.
      assert.ok(r.lastToDeadMs === null || r.lastToDeadMs <= settleMs, `a connection started ${r.lastToDeadMs} ms after the kill failed`);

      // The same once more, with clients that wait for two SYN retransmissions (1 s and 3 s).
      await reviveHost(cluster, 2);
      const again = await peerDeath(cluster, { entry: 0, victim: 2, intervalMs: 10, beforeMs: 1000, afterMs: settleMs, timeoutMs: 5000, settleMs });
      retried = again.sentToDead;
      console.log(`peer death, clients waiting 5 s: detected after ${again.detectedMs} ms; ${again.sentToDead} connections sent to the dead host before h0 noticed still failed ` +
        `(${JSON.stringify(again.errorKinds)}; ${again.inFlight} in flight at the kill)`);
    } finally {
      await cluster.destroy();
    }
  });

  test('a connection whose SYN went to the dead host connects on a retransmission once the host is known dead', () => {
    assert.notEqual(retried, null, 'the first test did not get that far');
    assert.equal(retried, 0, `${retried} connections never reached a live host`);
  });
});
