// A running cluster changes without a restart: a fourth host joins (its peers
// reload with `dpr reload` and with SIGHUP) while long-lived connections run,
// serves new connections, and leaves again; a configuration the daemon
// cannot take is refused, naming the key, and the old one stays; the
// heartbeat key rotates across the hosts without one rejected heartbeat.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, hostAddress } from '../tools/cluster';
import { assertHeld, sleep, waitFor } from './support/wait';

const OLD = '5eb63bbbe01eeed093cb22bb8f5acdc3';
const NEW = '0f1e2d3c4b5a69788796a5b4c3d2e1f0';

describe('68.cluster.reload', () => {
  test('a host joins and leaves a running cluster by reload: it serves while in, nothing breaks; bad configurations are refused; the key rotates', async () => {
    const cluster = await Cluster.create({ hosts: 4, members: [0, 1, 2], tag: 'rl' });
    const reload = (id: number): void => {
      const r = cluster.cli(id, ['reload']);
      assert.equal(r.code, 0, `dpr reload on h${id}: ${r.stdout}${r.stderr}`);
    };
    const sighup = (id: number): void => {
      process.kill(cluster.daemonPid(id)!, 'SIGHUP');
    };
    const badMacs = (): number => [0, 1, 2].reduce((n, id) => n + cluster.status(id).heartbeats!.rejected.bad_mac, 0);
    try {
      const held = cluster.holdOpen({ address: hostAddress(0), connections: 24, intervalMs: 200 });
      await sleep(1000);

      // Join: every host's configuration names host 3; the new host starts, the others reload.
      cluster.setMembers([0, 1, 2, 3]);
      cluster.install(3);
      await cluster.startDaemon(3);
      reload(0);
      sighup(1);
      reload(2);
      await waitFor('every host sees host 3 up', () => [0, 1, 2].every((id) => cluster.status(id).liveHosts.includes(3)), 10000);
      const joined = await cluster.load({ targets: [{ address: hostAddress(0) }], requests: 400, concurrency: 8 });
      assert.equal(joined.errors, 0, `errors: ${JSON.stringify(joined.errorKinds)}`);
      assert.ok((joined.servedBy['3'] ?? 0) > 40, `host 3 served ${joined.servedBy['3'] ?? 0} of 400 after joining`);

      // Leave: the host list shrinks again while host 3 still runs (as a host being retired does), then it stops.
      cluster.setMembers([0, 1, 2]);
      for (const id of [0, 1, 2]) reload(id);
      await waitFor('host 3 out of every table', () => [0, 1, 2].every((id) => !cluster.status(id).liveHosts.includes(3)), 5000);
      assert.equal(await cluster.signalDaemon(3, 'SIGTERM', 20000), 0);
      const left = await cluster.load({ targets: [{ address: hostAddress(0) }], requests: 200, concurrency: 8 });
      assert.equal(left.errors, 0, `errors: ${JSON.stringify(left.errorKinds)}, served by ${JSON.stringify(left.servedBy)}`);
      assert.equal(left.servedBy['3'] ?? 0, 0, 'a removed host got new connections');

      // Refused: a key that needs a restart, a configuration that does not validate.
      cluster.patchConfig(0, { queues: { maxLen: 8 } });
      const restart = cluster.cli(0, ['reload']);
      assert.equal(restart.code, 2, restart.stderr);
      assert.match(restart.stderr, /reload refused, the daemon keeps its configuration: queues\.maxLen: cannot change while dpr runs/);
      cluster.patchConfig(0, { queues: { maxLen: 4096 }, clusterCidr: '10.0.0.0/24' });
      const invalid = cluster.cli(0, ['reload']);
      assert.equal(invalid.code, 2, invalid.stderr);
      assert.match(invalid.stderr, /hosts\[0\]\.cluster: .* is outside clusterCidr/);
      cluster.patchConfig(0, { clusterCidr: '198.18.0.0/24' });
      assert.deepEqual(cluster.status(0).liveHosts, [0, 1, 2], 'the refused reloads changed nothing');

      // Key rotation, host by host at each step: accept both, sign with the new one, drop the old one.
      const before = badMacs();
      const peersWith = (p: Record<string, string>): void => {
        for (const id of [0, 1, 2]) cluster.patchConfig(id, { peers: { key: '', rotationKey: '', ...p } });
      };
      const steps: Array<Record<string, string>> = [{ key: OLD, rotationKey: NEW }, { key: NEW, rotationKey: OLD }, { key: NEW }];
      for (const step of steps) {
        peersWith(step);
        for (const id of [0, 1, 2]) {
          reload(id);
          await sleep(150);
        }
      }
      await sleep(500);
      assert.equal(badMacs(), before, 'heartbeats were rejected during the key rotation');
      assert.deepEqual(cluster.status(0).liveHosts, [0, 1, 2]);

      const conns = await held.stop();
      assertHeld(conns, { minOk: 10, atLeast: 24 });
    } finally {
      await cluster.destroy();
    }
  });
});
