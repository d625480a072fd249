// The daemon in a 4-host namespace cluster with the hash policy: real rules
// from install.sh, real `dpr start`, real HTTP over new TCP connections. The
// hosts have a front network (the client, the service addresses) and a back
// network the client is not on (the cluster addresses), as the README's
// example deployment does: forwarded packets cross the back network, answers
// go straight to the client on the front.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { backAddress, Cluster, hostAddress } from '../tools/cluster';
import { assertHeld, sleep, waitFor } from './support/wait';
import { assertReusedTuplesStayAcrossRestart } from './support/reused-ports';

const HOSTS = 4;

describe('60.cluster.hash', () => {
  let cluster: Cluster;
  before(async () => {
    cluster = await Cluster.create({ hosts: HOSTS, policy: 'hash', tag: 'h', networks: 'split' });
  });
  after(async () => {
    await cluster?.destroy();
  });

  /** Brings a host's daemon back (if a test stopped it) so one failure does not cascade into the next test. */
  async function ensureRunning(id: number): Promise<void> {
    if (!cluster.daemonRunning(id)) await cluster.startDaemon(id);
    await cluster.waitForMembership();
  }

  test('every host serves 1/N ± 20% of 3000 skewed connections, and the client always sees the address it dialled', async () => {
    const rx = (id: number): number => Number(cluster.bed.exec(`h${id}`, ['cat', '/sys/class/net/eth1/statistics/rx_packets']));
    const backBefore = [1, 2, 3].map(rx);
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
    // Forwarded packets reached the peers over the back network, whose
    // addresses the client cannot reach: at least a SYN, an ACK and a request
    // per connection h0 forwarded.
    const backIn = [1, 2, 3].map((id, i) => rx(id) - backBefore[i]!).reduce((a, b) => a + b, 0);
    assert.ok(backIn >= 3 * entry.newFlows.forwarded * 0.9, `${backIn} packets on the back network for ${entry.newFlows.forwarded} forwarded connections`);
    assert.ok(cluster.status(0).peers.every((p) => p.address === backAddress(p.id)), 'heartbeats use the cluster addresses');
  });

  test('/metrics exposes the documented counters', () => {
    const text = cluster.metrics(0);
    for (const name of ['dpr_packets_total', 'dpr_connections_total', 'dpr_flows', 'dpr_peer_up', 'dpr_peer_load', 'dpr_heartbeats_rejected_total']) {
      assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), `${name} missing`);
    }
    assert.match(text, /^dpr_peer_up\{peer="1"\} 1$/m);
  });

  test('long-lived connections keep their host while another host leaves and joins', async () => {
    try {
      const held = cluster.hold({ address: hostAddress(0), connections: 32, intervalMs: 150, durationMs: 5000 });
      await sleep(1200);
      await cluster.signalDaemon(3, 'SIGKILL');
      await waitFor('h0 drops host 3 from its table', () => cluster.status(0).liveHosts.join() === '0,1,2', 5000);
      await cluster.startDaemon(3);
      await cluster.waitForMembership();
      const conns = await held;
      // 5 s at one request per 150 ms: ~33 answers; a connection stalled by
      // the change would have far fewer.
      assertHeld(conns, { only: (c) => c.servedBy !== '3', minOk: 20, atLeast: 16 });
    } finally {
      await ensureRunning(3);
    }
  });

  test('a stopped peer gets no new connections once h0 has dropped it from its table', async () => {
    try {
      await cluster.signalDaemon(2, 'SIGKILL');
      await waitFor('h0 drops host 2 from its table', () => !cluster.status(0).liveHosts.includes(2), 5000);
      const s = await cluster.load({ targets: [{ address: hostAddress(0) }], requests: 400, concurrency: 8 });
      assert.equal(s.errors, 0, `errors: ${JSON.stringify(s.errorKinds)}`);
      assert.equal(s.servedBy['2'] ?? 0, 0);
      assert.ok((s.servedBy['1'] ?? 0) > 0 && (s.servedBy['3'] ?? 0) > 0);
    } finally {
      await ensureRunning(2);
    }
  });

  test('SIGKILL of the daemon leaves its host serving its own connections (fail-open); restarted, it serves the 4-tuples still in TIME_WAIT there', async () => {
    try {
      await cluster.signalDaemon(1, 'SIGKILL');
      const s = await cluster.load({ targets: [{ address: hostAddress(1) }], requests: 200, concurrency: 8 });
      assert.equal(s.errors, 0, `errors: ${JSON.stringify(s.errorKinds)}`);
      assert.equal(s.servedBy['1'], 200);
      await assertReusedTuplesStayAcrossRestart(cluster, 1, `http://${hostAddress(1)}/`);
    } finally {
      await ensureRunning(1);
    }
  });

  test('SIGTERM drains: new connections stay local, forwarded ones finish, then the daemon exits 0', async () => {
    try {
      const held = cluster.hold({ address: hostAddress(0), connections: 16, intervalMs: 150, durationMs: 3000 });
      await sleep(800);
      const exit = cluster.signalDaemon(0, 'SIGTERM');
      await waitFor('h0 draining', () => cluster.status(0).draining, 3000, 20);
      const during = await cluster.load({ targets: [{ address: hostAddress(0) }], requests: 100, concurrency: 4 });
      const conns = await held;
      assert.equal(await exit, 0);
      assert.equal(during.errors, 0, `errors: ${JSON.stringify(during.errorKinds)}, served by ${JSON.stringify(during.servedBy)}`);
      assert.equal(during.servedBy['0'], 100, `new connections while draining went to ${JSON.stringify(during.servedBy)}`);
      assertHeld(conns, { only: (c) => c.servedBy !== '0', minOk: 12, atLeast: 1 });
      assertHeld(conns, { minOk: 12, atLeast: 16 });
    } finally {
      await ensureRunning(0);
    }
  });
});
