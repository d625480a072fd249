// The daemon with the load policy: decisions cross into JavaScript once per
// new connection, batched; heartbeats carry each host's load.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, hostAddress } from '../tools/cluster';
import path from 'node:path';
import { encodeHeartbeat } from '../lib/heartbeat';
import type { HeldConnection } from '../tools/hold';
import { waitForLine } from './support/lines';
import { whyUndecided } from './support/undecided';
import { sleep, waitFor } from './support/wait';

const HOSTS = 4;

/** Share of responses served by the host the client dialled. */
function localShare(s: Awaited<ReturnType<Cluster['load']>>): number {
  let local = 0;
  for (let id = 0; id < HOSTS; id++) local += s.byTarget[hostAddress(id)]?.servedBy[String(id)] ?? 0;
  return local / s.ok;
}

describe('61.cluster.load', () => {
  let cluster: Cluster;
  before(async () => {
    // A decision deadline well above the event loop's stalls on this shared
    // machine: these tests are about where connections go, not about the
    // deadline (test/32 holds what a missed deadline does).
    cluster = await Cluster.create({ hosts: HOSTS, policy: 'load', slots: 4, serviceMs: 20, tag: 'l', config: { load: { threshold: 6 }, flows: { synTimeoutMs: 1000 } } });
  });
  after(async () => {
    await cluster?.destroy();
  });

  test('a balanced load stays local: at least 80% of connections served where they arrived', async () => {
    // 8 concurrent connections over 4 hosts: about 2 each, far below
    // load.threshold (6). The margin is for the count between two exact ones:
    // the kernel's sockets in use include connections closing (seen: 76%
    // local at a threshold of 4).
    const s = await cluster.load({ targets: [0, 1, 2, 3].map((id) => ({ address: hostAddress(id) })), requests: 800, concurrency: 8 });
    assert.equal(s.errors, 0, `errors: ${JSON.stringify(s.errorKinds)}`);
    assert.equal(s.addressMismatch, 0);
    const share = localShare(s);
    assert.ok(share >= 0.8, `only ${(share * 100).toFixed(1)}% local`);
  });

  test('an overloaded host offloads new connections to its peers', async () => {
    const before = cluster.status(0);
    const s = await cluster.load({ targets: [{ address: hostAddress(0) }], requests: 1000, concurrency: 48 });
    assert.equal(s.errors, 0, `errors: ${JSON.stringify(s.errorKinds)}`);
    assert.equal(s.addressMismatch, 0);
    const offloaded = 1 - (s.servedBy['0'] ?? 0) / s.ok;
    assert.ok(offloaded >= 0.3, `only ${(offloaded * 100).toFixed(1)}% offloaded`);
    for (const id of [1, 2, 3]) assert.ok((s.servedBy[String(id)] ?? 0) > 0, `host ${id} got nothing`);
    const st = cluster.status(0);
    const forwarded = st.entry!.newFlows.forwarded - before.entry!.newFlows.forwarded;
    assert.ok(forwarded >= 300, `${forwarded} decided forwarded`);
    // Every connection was decided at its SYN in the entry queue, or (a client
    // port reused while h0 remembers the earlier flow: closing, or only its
    // SYN seen, as for a local flow) followed its earlier connection's host
    // (syn_on_flow: that host's TIME_WAIT takes it).
    const decided = st.entry!.newFlows.forwarded + st.entry!.newFlows.local - before.entry!.newFlows.forwarded - before.entry!.newFlows.local;
    const followed = st.entry!.notes.syn_on_flow - before.entry!.notes.syn_on_flow;
    // Seen once, in the third of three fresh-clone runs (the one with a CPU
    // hog): 997 of 1000; not reproduced alone. The message says where the
    // rest might have gone.
    assert.ok(decided + followed >= 1000, `${decided} decided and ${followed} SYNs on earlier flows for 1000 connections` + (decided + followed >= 1000 ? '' : `; ${whyUndecided(cluster, 0, before, st)}`));
  });

  test('a new connection reusing the 4-tuple of one in TIME_WAIT here stays here, even when the policy would forward it', async () => {
    // From a port outside the client's ephemeral range (32768-60999): an
    // earlier test's connection from the same port would still be in h0's flow
    // table, and its SYN would follow that flow instead of being decided.
    const curlOther = (): string => {
      const body = cluster.bed.exec('client', ['curl', '-sS', '--max-time', '5', '--local-port', '61234', `http://${hostAddress(0)}/`]).trim();
      return body === 'host=0' ? 'local' : 'forwarded';
    };
    const curl = (): string =>
      cluster.bed.exec('client', ['curl', '-sS', '--max-time', '5', '--http1.0', '--local-port', '45123', `http://${hostAddress(0)}/?close=1`]).trim();
    assert.equal(curl(), 'host=0'); // the server closes first and keeps the 4-tuple in TIME_WAIT
    assert.match(cluster.bed.exec('h0', ['ss', '-tan', 'state', 'time-wait', 'sport', '= :80']), /:45123/);
    // Past flows.synTimeoutMs, the flow table has forgotten the first connection
    // (its later packets never left the kernel): only the socket remembers it.
    await sleep(1500);
    // Make h0 look busy, so that the policy forwards new connections: from
    // h0's own namespace, where connections to its server count as its load
    // but never pass the entry queue (the policy cannot spread them).
    const spec = { address: '127.0.0.1', connections: 16, intervalMs: 200, durationMs: 3000 };
    const holder = cluster.bed.spawn('h0', [process.execPath, path.resolve(__dirname, '..', 'tools', 'hold.js'), JSON.stringify(spec)]);
    const held = waitForLine(holder, (l) => l.startsWith('['), 30000, 'local connections on h0').then((l) => JSON.parse(l) as HeldConnection[]);
    // h0's queue counts its own load (sockets in use, calibrated by the daemon's count); the peers' reports must say
    // they are idle (their load reaches h0 with their heartbeats).
    await waitFor('h0 busy with its 16 local connections', () => cluster.status(0).load >= 16, 5000);
    const forwardedBefore = cluster.status(0).entry!.newFlows.forwarded;
    assert.equal(curlOther(), 'forwarded', 'the policy did not forward a fresh connection: the test shows nothing');
    assert.ok(cluster.status(0).entry!.newFlows.forwarded > forwardedBefore);
    const before = cluster.status(0).entry!.notes.kept_for_local_socket;
    assert.equal(curl(), 'host=0');
    const after = cluster.status(0).entry!;
    assert.equal(after.notes.kept_for_local_socket - before, 1, 'the TIME_WAIT socket was not found');
    assert.equal(after.queue.sockDiagErrors, 0);
    for (const c of await held) {
      assert.equal(c.error, null);
      assert.ok(c.ok >= 5, `a local connection on h0 had only ${c.ok} answers`);
    }
  });

  test('forged heartbeats are rejected and counted, and routing does not change', async () => {
    const before = cluster.status(0);
    const forged = encodeHeartbeat(
      { sender: 1, draining: true, healthy: false, epoch: BigInt(Date.now() + 60_000), seq: 1n, load: 0 },
      Buffer.from('0123456789abcdef0123456789abcdef', 'hex'),
    );
    // From a peer's own address (so only the MAC can give it away) and from the client (outside the cluster).
    const send = `const s=require('dgram').createSocket('udp4');s.send(Buffer.from('${forged.toString('hex')}','hex'),4790,'${hostAddress(0)}',()=>s.close())`;
    for (let i = 0; i < 5; i++) cluster.bed.exec('h1', [process.execPath, '-e', send]);
    cluster.bed.exec('client', [process.execPath, '-e', send]);
    const rejectedNow = (): { bad_mac: number; wrong_source: number } => cluster.status(0).heartbeats!.rejected;
    await waitFor('the forged heartbeats counted', () => {
      const r = rejectedNow();
      return r.bad_mac - before.heartbeats!.rejected.bad_mac >= 5 && r.wrong_source > before.heartbeats!.rejected.wrong_source;
    }, 5000);
    const after = cluster.status(0);
    const rejected = after.heartbeats!.rejected;
    assert.equal(rejected.bad_mac - before.heartbeats!.rejected.bad_mac, 5);
    assert.ok(rejected.wrong_source - before.heartbeats!.rejected.wrong_source >= 1);
    assert.deepEqual(after.liveHosts, [0, 1, 2, 3]);
    assert.equal(after.peers.find((p) => p.id === 1)!.draining, false);
    assert.match(cluster.metrics(0), /^dpr_heartbeats_rejected_total\{reason="bad_mac"\} [1-9]/m);
  });
});
