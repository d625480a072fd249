// Heartbeats over IPv6 (issue 15, peers.family ipv6): a dual-stack cluster
// whose daemons exchange heartbeats and load reports between their cluster6
// addresses. IPv4 heartbeats are dropped on every host once it runs, so what
// keeps the peers up, carries their loads and notices a death is IPv6 alone.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, CLUSTER_KEY, hostAddress, hostAddress6, hostName } from '../tools/cluster';
import { encodeHeartbeat } from '../lib/heartbeat';
import { sleep, waitFor } from './support/wait';

const HOSTS = 3;
const PORT = 4790;

describe('61.cluster.ipv6.peers', () => {
  let cluster: Cluster;
  let deadAfterMs: number;
  before(async () => {
    cluster = await Cluster.create({
      hosts: HOSTS, policy: 'load', ipv6: true, slots: 4, serviceMs: 20, tag: 'v6p',
      config: { peers: { family: 'ipv6', port: PORT }, load: { threshold: 2 } },
    });
    deadAfterMs = (cluster.configFor(0).peers as { deadAfterMs: number }).deadAfterMs;
    // Before the rules' DPR_INPUT accept (raw comes first): no IPv4 heartbeat arrives anywhere.
    for (let id = 0; id < HOSTS; id++) cluster.bed.exec(hostName(id), ['iptables', '-t', 'raw', '-I', 'PREROUTING', '-p', 'udp', '--dport', String(PORT), '-j', 'DROP']);
  });
  after(async () => {
    await cluster?.destroy();
  });

  test('with IPv4 heartbeats dropped, every host keeps hearing every peer, at its cluster6 address', async () => {
    await sleep(deadAfterMs * 3);
    for (let id = 0; id < HOSTS; id++) {
      const s = cluster.status(id);
      for (let other = 0; other < HOSTS; other++) {
        if (other === id) continue;
        const p = s.peers.find((x) => x.id === other);
        assert.ok(p?.up, `h${id} sees h${other} down: ${JSON.stringify(p)}`);
        assert.equal(p.address, hostAddress6(other));
        assert.ok(p.lastHeardMs !== null && p.lastHeardMs < deadAfterMs, `h${id} last heard h${other} ${p.lastHeardMs} ms ago`);
      }
      assert.ok(s.heartbeats!.accepted > 0);
      assert.equal(s.heartbeats!.rejected.wrong_source, 0);
    }
    // One heartbeat socket, on cluster6; none on IPv4.
    const sockets = cluster.bed.exec('h0', ['ss', '-Hlun', 'sport', '=', `:${PORT}`]);
    assert.match(sockets, new RegExp(`\\[${hostAddress6(0)}\\]:${PORT}`), sockets);
    assert.doesNotMatch(sockets, /\d+\.\d+\.\d+\.\d+:/, sockets);
    // And no IPv4 heartbeat was sent: the drop rule has seen nothing.
    const drops = cluster.bed.exec('h0', ['iptables', '-t', 'raw', '-L', 'PREROUTING', '-v', '-x', '-n']);
    assert.match(drops, new RegExp(`^\\s*0\\s+0\\s+DROP\\s+.*udp dpt:${PORT}`, 'm'), drops);
  });

  test('an overloaded host offloads new IPv6 connections to its peers on their IPv6 load reports', async () => {
    const before = cluster.status(0);
    const s = await cluster.load({ targets: [{ address: hostAddress6(0) }], requests: 300, concurrency: 24 });
    console.log(`ipv6 heartbeats, load: ${JSON.stringify(s.servedBy)} of ${s.ok}, errors ${s.errors}`);
    // Forwarded packets are taken only from their entry host's MAC, learnt from the IPv6 neighbour table here.
    const unknownMac = (): number[] => [1, 2].map((id) => cluster.status(id).serve!.notes.peer_mac_unknown);
    assert.equal(s.errors, 0, `errors: ${JSON.stringify(s.errorKinds)}${s.errors ? `; peer_mac_unknown at h1, h2: ${unknownMac().join(', ')}` : ''}`);
    assert.equal(s.addressMismatch, 0);
    const offloaded = 1 - (s.servedBy['0'] ?? 0) / s.ok;
    assert.ok(offloaded >= 0.3, `only ${(offloaded * 100).toFixed(1)}% offloaded`);
    for (const id of [1, 2]) assert.ok((s.servedBy[String(id)] ?? 0) > 0, `h${id} got nothing`);
    const forwarded = cluster.status(0).entry!.newFlows.forwarded - before.entry!.newFlows.forwarded;
    assert.ok(forwarded >= 90, `${forwarded} decided forwarded`);
  });

  test('IPv4 connections are offloaded too: the data path does not need IPv4 heartbeats', async () => {
    const s = await cluster.load({ targets: [{ address: hostAddress(0) }], requests: 300, concurrency: 24 });
    console.log(`ipv6 heartbeats, IPv4 load: ${JSON.stringify(s.servedBy)} of ${s.ok}, errors ${s.errors}`);
    assert.equal(s.errors, 0, `errors: ${JSON.stringify(s.errorKinds)}`);
    for (const id of [1, 2]) assert.ok((s.servedBy[String(id)] ?? 0) > 0, `h${id} got nothing`);
  });

  test('a heartbeat signed with the key but not from the peer\'s cluster6 is rejected as wrong_source and changes nothing', async () => {
    const before = cluster.status(0).heartbeats!;
    const forged = encodeHeartbeat({ sender: 1, draining: true, healthy: false, epoch: BigInt(Date.now() + 60_000), seq: 1n, load: 0 }, Buffer.from(CLUSTER_KEY, 'hex'));
    // From the client (in clusterCidr6, so DPR_INPUT lets it in) to h0's cluster6.
    const send = `const s=require('dgram').createSocket('udp6');s.send(Buffer.from('${forged.toString('hex')}','hex'),${PORT},'${hostAddress6(0)}',()=>s.close())`;
    cluster.bed.exec('client', [process.execPath, '-e', send]);
    await waitFor('the forged heartbeat counted', () => cluster.status(0).heartbeats!.rejected.wrong_source > before.rejected.wrong_source, 5000);
    const after = cluster.status(0);
    assert.equal(after.heartbeats!.rejected.wrong_source - before.rejected.wrong_source, 1);
    const h1 = after.peers.find((p) => p.id === 1)!;
    assert.ok(h1.up && !h1.draining && h1.healthy, `h1 as h0 sees it: ${JSON.stringify(h1)}`);
  });

  test('a peer whose daemon dies is seen down by the others', async () => {
    await cluster.signalDaemon(2, 'SIGKILL');
    const ms = await waitFor('h0 and h1 to see h2 down', () => [0, 1].every((id) => cluster.status(id).peers.find((p) => p.id === 2)?.up === false), deadAfterMs + 5000);
    console.log(`ipv6 heartbeats: h2's death seen by h0 and h1 within ${ms} ms`);
    for (const id of [0, 1]) assert.ok(cluster.status(id).peers.find((p) => p.id === 1 - id)!.up, `h${id} lost its live peer too`);
  });
});
