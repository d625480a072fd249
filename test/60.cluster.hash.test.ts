// The daemon in a 4-host namespace cluster with the hash policy: real rules
// from install.sh, real `dpr start`, real HTTP over new TCP connections.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, hostAddress } from '../tools/cluster';

const HOSTS = 4;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('60.cluster.hash', () => {
  let cluster: Cluster;
  before(async () => {
    cluster = await Cluster.create({ hosts: HOSTS, policy: 'hash', tag: 'h' });
  });
  after(async () => {
    await cluster?.destroy();
  });

  test('every host serves 1/N ± 20% of 3000 skewed connections, and the client always sees the address it dialled', async () => {
    const s = await cluster.load({
      targets: [0, 1, 2, 3].map((id) => ({ address: hostAddress(id), weight: id === 0 ? 7 : 1 })),
      requests: 3000,
      concurrency: 24,
    });
    assert.equal(s.errors, 0, `errors: ${JSON.stringify(s.errorKinds)}`);
    assert.equal(s.addressMismatch, 0);
    for (let id = 0; id < HOSTS; id++) {
      const share = (s.servedBy[String(id)] ?? 0) / s.ok;
      assert.ok(Math.abs(share - 1 / HOSTS) <= 0.2 / HOSTS, `host ${id} served ${(share * 100).toFixed(1)}%`);
    }
    // The skew is real: host 0 received most connections, yet served its share only.
    assert.ok(s.byTarget[hostAddress(0)]!.sent > 0.6 * s.requests);
    const entry = cluster.status(0).entry!;
    assert.ok(entry.newFlows.forwarded > 0 && entry.actions.forward > 0);
  });

  test('/metrics exposes the documented counters', () => {
    const text = cluster.metrics(0);
    for (const name of ['dpr_packets_total', 'dpr_connections_total', 'dpr_flows', 'dpr_peer_up', 'dpr_peer_load', 'dpr_heartbeats_rejected_total']) {
      assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), `${name} missing`);
    }
    assert.match(text, /^dpr_peer_up\{peer="1"\} 1$/m);
  });

  test('long-lived connections keep their host while another host leaves and joins', async () => {
    const held = cluster.hold({ address: hostAddress(0), connections: 32, intervalMs: 150, durationMs: 5000 });
    await sleep(1200);
    await cluster.signalDaemon(3, 'SIGKILL');
    await sleep(1500); // > deadAfterMs: host 3 is out of the table
    assert.deepEqual(cluster.status(0).liveHosts, [0, 1, 2]);
    await cluster.startDaemon(3);
    await cluster.waitForMembership();
    const conns = await held;
    const survivors = conns.filter((c) => c.servedBy !== '3');
    assert.ok(survivors.length >= 16, `only ${survivors.length} connections on hosts 0-2`);
    for (const c of survivors) {
      assert.equal(c.error, null, `a connection served by ${c.servedBy} broke: ${c.error}`);
      assert.equal(c.moved, false);
      assert.ok(c.ok >= 20, `only ${c.ok} requests on a connection`);
    }
  });

  test('a stopped peer gets no new connections once deadAfterMs has passed', async () => {
    await cluster.signalDaemon(2, 'SIGKILL');
    await sleep(500 + 1000); // deadAfterMs + generous margin; bench measures the real figure
    const s = await cluster.load({ targets: [{ address: hostAddress(0) }], requests: 400, concurrency: 8 });
    assert.equal(s.errors, 0, `errors: ${JSON.stringify(s.errorKinds)}`);
    assert.equal(s.servedBy['2'] ?? 0, 0);
    assert.ok((s.servedBy['1'] ?? 0) > 0 && (s.servedBy['3'] ?? 0) > 0);
    await cluster.startDaemon(2);
    await cluster.waitForMembership();
  });

  test('SIGKILL of the daemon leaves its host serving its own connections (fail-open)', async () => {
    await cluster.signalDaemon(1, 'SIGKILL');
    const s = await cluster.load({ targets: [{ address: hostAddress(1) }], requests: 200, concurrency: 8 });
    assert.equal(s.errors, 0, `errors: ${JSON.stringify(s.errorKinds)}`);
    assert.equal(s.servedBy['1'], 200);
    await cluster.startDaemon(1);
    await cluster.waitForMembership();
  });

  test('SIGTERM drains: new connections stay local, forwarded ones finish, then the daemon exits 0', async () => {
    const held = cluster.hold({ address: hostAddress(0), connections: 16, intervalMs: 150, durationMs: 3000 });
    await sleep(800);
    const exit = cluster.signalDaemon(0, 'SIGTERM');
    await sleep(300);
    const during = await cluster.load({ targets: [{ address: hostAddress(0) }], requests: 100, concurrency: 4 });
    const conns = await held;
    assert.equal(await exit, 0);
    assert.equal(during.errors, 0);
    assert.equal(during.servedBy['0'], 100, `new connections while draining went to ${JSON.stringify(during.servedBy)}`);
    assert.ok(conns.some((c) => c.servedBy !== '0'), 'no connection was forwarded: the test shows nothing');
    for (const c of conns) assert.equal(c.error, null, `a connection served by ${c.servedBy} broke: ${c.error}`);
  });
});
