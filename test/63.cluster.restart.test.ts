// Restarts without broken connections: the flow table is saved (every
// flows.snapshotMs and at exit) and read back at start; while no daemon runs,
// packets of forwarded flows are held back (dropped, so TCP sends them again)
// instead of being reset by the local stack.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, hostAddress } from '../tools/cluster';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const policy of ['hash', 'load'] as const) {
  describe(`63.cluster.restart.${policy}`, () => {
    test(`a crashed and restarted daemon breaks no established connection, forwarded ones included (${policy})`, async () => {
      const cluster = await Cluster.create({ hosts: 3, policy, tag: 'rs', config: { load: { threshold: 1 } } });
      try {
        // Two waves: the load policy forwards the second, once the first is measured.
        const first = cluster.hold({ address: hostAddress(0), connections: 12, intervalMs: 200, durationMs: 7000 });
        await sleep(600);
        const second = cluster.hold({ address: hostAddress(0), connections: 12, intervalMs: 200, durationMs: 6400 });
        const held = Promise.all([first, second]).then(([a, b]) => [...a, ...b]);
        await sleep(2000); // past one snapshot (snapshotMs 1000)
        await cluster.signalDaemon(0, 'SIGKILL');
        await cluster.startDaemon(0);
        const conns = await held;
        const forwarded = conns.filter((c) => c.servedBy !== '0');
        assert.ok(forwarded.length > 0, 'no connection was forwarded: the test shows nothing');
        for (const c of conns) {
          assert.equal(c.error, null, `a connection served by ${c.servedBy} broke: ${c.error}`);
          assert.equal(c.moved, false);
        }
        const st = cluster.status(0);
        assert.ok(st.entry!.flows.forwarded.established > 0 || st.entry!.actions.forward > 0, 'restored flows were not forwarded');
      } finally {
        await cluster.destroy();
      }
    });
  });
}
