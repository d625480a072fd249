// A cluster whose host list comes from etcd (issue 16), with real daemons,
// rules, web servers and a real etcd in a namespace of its own: three hosts
// join, a fourth joins under load and serves, it leaves (lease revoked), etcd
// stops and comes back while traffic flows, and a host dies (its lease
// expires). Long-lived connections run throughout: none breaks, apart from
// those the dead host served.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Cluster, hostAddress } from '../tools/cluster';
import { ETCD_BINARY } from './support/etcd';
import { assertHeld, sleep, waitFor } from './support/wait';

const TTL_MS = 3000; // tools/cluster.ts: leaseTtlS 3
const skip = fs.existsSync(ETCD_BINARY) ? false : `${ETCD_BINARY} is missing (Debian's etcd-server; npm run setup installs it)`;

describe('69.cluster.etcd', { skip }, () => {
  test('hosts join, leave and die through etcd, and etcd restarts, with traffic flowing: no connection breaks but the dead host\'s', async () => {
    const cluster = await Cluster.create({ hosts: 4, members: [0, 1, 2], etcd: true, tag: 'et' });
    const m = (id: number) => cluster.status(id).membership!;
    const targets = [{ address: hostAddress(0) }, { address: hostAddress(1) }];
    try {
      // Three hosts joined: each claimed the lowest free id, each knows the others.
      for (const id of [0, 1, 2]) {
        assert.equal(m(id).state, 'registered');
        assert.equal(m(id).self, id);
        assert.equal(m(id).hosts, 3);
        assert.deepEqual(cluster.status(id).liveHosts, [0, 1, 2]);
      }
      const held = [0, 1].map((id) => cluster.holdOpen({ address: hostAddress(id), connections: 16, intervalMs: 200 }));
      await sleep(1000);

      // A fourth joins under load: nobody edits a file or reloads, and it serves.
      const during = cluster.load({ targets, requests: 1200, concurrency: 8 });
      cluster.install(3);
      await cluster.startDaemon(3);
      assert.equal(m(3).self, 3);
      await waitFor('every host to route to host 3', () => [0, 1, 2].every((id) => cluster.status(id).liveHosts.includes(3)), 10000, 100);
      const whileJoining = await during;
      assert.equal(whileJoining.errors, 0, `errors while host 3 joined: ${JSON.stringify(whileJoining.errorKinds)}`);
      const joined = await cluster.load({ targets, requests: 400, concurrency: 8 });
      assert.equal(joined.errors, 0, `errors: ${JSON.stringify(joined.errorKinds)}`);
      assert.ok((joined.servedBy['3'] ?? 0) > 40, `host 3 served ${joined.servedBy['3'] ?? 0} of 400 after joining`);
      assert.equal(joined.addressMismatch, 0);

      // It leaves (SIGTERM: drains, then revokes its lease): out of every list at once, not after the TTL.
      const leaving = cluster.load({ targets, requests: 800, concurrency: 8 });
      assert.equal(await cluster.signalDaemon(3, 'SIGTERM', 20000), 0);
      const leftAfter = await waitFor('host 3 out of every list', () => [0, 1, 2].every((id) => m(id).hosts === 3 && !cluster.status(id).liveHosts.includes(3)), 10000, 100);
      assert.ok(leftAfter < TTL_MS, `host 3 left the lists ${leftAfter} ms after its daemon stopped: its lease was not revoked`);
      const whileLeaving = await leaving;
      assert.equal(whileLeaving.errors, 0, `errors while host 3 left: ${JSON.stringify(whileLeaving.errorKinds)}`);

      // etcd stops while traffic flows: the lists stay, every host says so, and traffic goes on.
      const etcd = cluster.etcd!;
      const outage = cluster.load({ targets, requests: 1500, concurrency: 8 });
      await etcd.stop('SIGKILL');
      await waitFor('every host to see etcd gone', () => [0, 1, 2].every((id) => m(id).state === 'unreachable'), 10000, 200);
      await sleep(TTL_MS + 1000);
      for (const id of [0, 1, 2]) {
        const s = m(id);
        assert.equal(s.state, 'unreachable');
        assert.equal(s.hosts, 3, `host ${id} dropped hosts while etcd was away`);
        assert.ok(s.lastError, 'the reason is in the status');
        assert.deepEqual(cluster.status(id).liveHosts, [0, 1, 2], 'heartbeats still decide who is alive');
        assert.match(cluster.metrics(id), /^dpr_membership_state\{state="unreachable"\} 1$/m);
      }
      await etcd.start();
      await waitFor('every host registered again', () => [0, 1, 2].every((id) => m(id).state === 'registered'), 15000, 200);
      for (const id of [0, 1, 2]) assert.equal(m(id).self, id, 'ids kept across the etcd restart');
      const throughOutage = await outage;
      assert.equal(throughOutage.errors, 0, `errors while etcd was away: ${JSON.stringify(throughOutage.errorKinds)}`);

      // Host 2 dies: heartbeats take it out of routing first, its lease then out of the lists.
      await cluster.signalDaemon(2, 'SIGKILL', 5000);
      await waitFor('hosts 0 and 1 to stop routing to host 2', () => [0, 1].every((id) => !cluster.status(id).liveHosts.includes(2)), 5000, 50);
      await waitFor('host 2 out of the lists once its lease expired', () => [0, 1].every((id) => m(id).hosts === 2), TTL_MS + 10000, 200);
      const afterDeath = await cluster.load({ targets, requests: 400, concurrency: 8 });
      assert.equal(afterDeath.errors, 0, `errors after host 2 died: ${JSON.stringify(afterDeath.errorKinds)}`);
      assert.equal(afterDeath.servedBy['2'] ?? 0, 0);

      const conns = (await Promise.all(held.map((h) => h.stop()))).flat();
      assertHeld(conns, { minOk: 10, only: (c) => c.servedBy !== '2', atLeast: 16 });
    } finally {
      await cluster.destroy();
    }
  });
});
