// Restarts without broken connections: the flow table is saved (every
// flows.snapshotMs and at exit) and read back at start; while no daemon runs,
// packets of forwarded flows are held back (dropped, so TCP sends them again)
// instead of being reset by the local stack.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, hostAddress } from '../tools/cluster';
import { assertHeld, RESTART_STALL_MS, sleep } from './support/wait';

for (const policy of ['hash', 'load'] as const) {
  describe(`63.cluster.restart.${policy}`, () => {
    test(`a crashed and restarted daemon breaks no established connection, forwarded ones included (${policy})`, async () => {
      const cluster = await Cluster.create({ hosts: 3, policy, tag: 'rs', config: { load: { threshold: 1 } } });
      try {
        // Two waves: the load policy forwards the second, once the first is measured.
        const first = cluster.hold({ address: hostAddress(0), connections: 12, intervalMs: 200, durationMs: 7000, stallMs: RESTART_STALL_MS });
        await sleep(600);
        const second = cluster.hold({ address: hostAddress(0), connections: 12, intervalMs: 200, durationMs: 6400, stallMs: RESTART_STALL_MS });
        const held = Promise.all([first, second]).then(([a, b]) => [...a, ...b]);
        await sleep(2000); // past one snapshot (snapshotMs 1000) after both waves connected
        await cluster.signalDaemon(0, 'SIGKILL');
        await cluster.startDaemon(0);
        const restored = cluster.status(0).restored;
        const conns = await held;
        const forwarded = conns.filter((c) => c.servedBy !== '0');
        console.log(`restart (${policy}): ${forwarded.length} of ${conns.length} held connections forwarded; ` +
          `restored ${restored.flows} flows (${restored.forwarded} forwarded); longest wait ${Math.max(...conns.map((c) => c.maxWaitMs))} ms`);
        assert.ok(forwarded.length > 0, 'no connection was forwarded: the test shows nothing');
        // ~32 requests per connection; a connection that stalled at the
        // restart and never recovered has at most the ~12 before it.
        assertHeld(conns, { minOk: 20, atLeast: 24 });
        // The new daemon read every forwarded flow back from the snapshot:
        // without it, those connections would only have survived by chance
        // (the hash still naming the same host).
        assert.ok(restored.forwarded >= forwarded.length, `${restored.forwarded} forwarded flows restored for ${forwarded.length} forwarded connections`);
      } finally {
        await cluster.destroy();
      }
    });
  });
}
