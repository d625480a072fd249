// IPv6 clients through a dual-stack cluster (issue 15), rewrite mode, both
// policies: every host serves some, the client gets its answers from the
// address it dialled, IPv4 and IPv6 clients at once, and the entry hosts'
// ICMPv6 redirects never reach the client.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, hostAddress, hostAddress6 } from '../tools/cluster';
import { parseRuleCounters } from '../lib/kernel-queue';
import { rulePackets } from './support/faults';

/** Counts ICMPv6 redirects (type 137) arriving at the client (a rule with no target: it only counts). */
function countRedirects(cluster: Cluster): void {
  cluster.bed.exec('client', ['ip6tables', '-A', 'INPUT', '-p', 'ipv6-icmp', '-m', 'icmp6', '--icmpv6-type', '137']);
}
const redirectsAtClient = (cluster: Cluster): number =>
  rulePackets(parseRuleCounters(cluster.bed.exec('client', ['ip6tables-save', '-c'])), 'INPUT', /--icmpv6-type 137/);
const redirectsAttempted = (cluster: Cluster, host: string): number =>
  rulePackets(parseRuleCounters(cluster.bed.exec(host, ['ip6tables-save', '-c'])), 'DPR_OUTPUT', /--icmpv6-type 137/);

const HOSTS = 3;
const targets6 = Array.from({ length: HOSTS }, (_, id) => ({ address: hostAddress6(id) }));

describe('61.cluster.ipv6.hash', () => {
  let cluster: Cluster;
  before(async () => {
    cluster = await Cluster.create({ hosts: HOSTS, policy: 'hash', ipv6: true, tag: 'v6h' });
    countRedirects(cluster);
  });
  after(async () => {
    await cluster?.destroy();
  });

  test('IPv6 clients: every host serves some, every answer comes from the address dialled, nothing fails', async () => {
    const s = await cluster.load({ targets: targets6, requests: 300, concurrency: 16 });
    console.log(`ipv6 hash: ${JSON.stringify(s.servedBy)} of ${s.ok}, errors ${s.errors}, mismatches ${s.addressMismatch}`);
    assert.equal(s.errors, 0, `errors: ${JSON.stringify(s.errorKinds)}`);
    assert.equal(s.addressMismatch, 0, 'an answer came from another address than the one dialled');
    for (let id = 0; id < HOSTS; id++) {
      const t = s.byTarget[hostAddress6(id)]!;
      // Dialled h<id>: served by more than one host, so some were forwarded and answered as h<id>.
      assert.ok(Object.keys(t.servedBy).length >= 2, `connections to h${id} were all served by ${Object.keys(t.servedBy)}: none forwarded`);
      assert.ok((s.servedBy[String(id)] ?? 0) > 0, `h${id} served nothing`);
    }
    const e = cluster.status(0).entry!;
    assert.ok(e.ipv6.packets > 0, 'h0 saw no IPv6 packet');
    assert.ok(e.actions.forward > 0, 'h0 forwarded nothing');
  });

  test('an IPv4 and an IPv6 client at once: both served in full, each from the address it dialled', async () => {
    const targets4 = Array.from({ length: HOSTS }, (_, id) => ({ address: hostAddress(id) }));
    const [s4, s6] = await Promise.all([
      cluster.load({ targets: targets4, requests: 200, concurrency: 8 }),
      cluster.load({ targets: targets6, requests: 200, concurrency: 8 }),
    ]);
    console.log(`ipv4 + ipv6 at once: v4 ${JSON.stringify(s4.servedBy)}, v6 ${JSON.stringify(s6.servedBy)}`);
    for (const [name, s] of [['IPv4', s4], ['IPv6', s6]] as const) {
      assert.equal(s.errors, 0, `${name} errors: ${JSON.stringify(s.errorKinds)}`);
      assert.equal(s.ok, 200);
      assert.equal(s.addressMismatch, 0, `${name}: an answer from another address`);
      assert.ok(Object.keys(s.servedBy).length === HOSTS, `${name}: not every host served`);
      // Forwarded while the other family was: connections to each host served by more than one.
      for (const [address, t] of Object.entries(s.byTarget)) assert.ok(Object.keys(t.servedBy).length >= 2, `${name}: connections to ${address} were none forwarded`);
    }
  });

  test('the entry hosts send the client no ICMPv6 redirect for the packets they forward (dropped in DPR_OUTPUT)', () => {
    const dropped = [0, 1, 2].reduce((n, id) => n + redirectsAttempted(cluster, `h${id}`), 0);
    console.log(`redirects: ${dropped} dropped at the hosts, ${redirectsAtClient(cluster)} at the client`);
    // The kernel did want to send some (it forwarded out of the interface it received on)...
    assert.ok(dropped > 0, 'no redirect was attempted: the test shows nothing');
    // ...and none reached the client.
    assert.equal(redirectsAtClient(cluster), 0);
  });
});

describe('61.cluster.ipv6.load', () => {
  let cluster: Cluster;
  before(async () => {
    cluster = await Cluster.create({ hosts: HOSTS, policy: 'load', ipv6: true, slots: 4, serviceMs: 20, tag: 'v6l', config: { load: { threshold: 2 } } });
  });
  after(async () => {
    await cluster?.destroy();
  });

  test('a skewed IPv6 load on h0 is spread over every host, every answer from h0\'s address', async () => {
    const s = await cluster.load({ targets: [{ address: hostAddress6(0) }], requests: 400, concurrency: 24 });
    console.log(`ipv6 load: ${JSON.stringify(s.servedBy)} of ${s.ok}, errors ${s.errors}`);
    assert.equal(s.errors, 0, `errors: ${JSON.stringify(s.errorKinds)}`);
    assert.equal(s.addressMismatch, 0);
    for (const id of [1, 2]) assert.ok((s.servedBy[String(id)] ?? 0) > 0, `h${id} got nothing`);
    const st = cluster.status(0);
    assert.ok(st.entry!.ipv6.packets > 0);
    assert.deepEqual(st.addresses, { service: hostAddress(0), cluster: hostAddress(0), service6: hostAddress6(0), cluster6: hostAddress6(0) });
  });
});

describe('61.cluster.ipv6.split', () => {
  let cluster: Cluster;
  before(async () => {
    // IPv6 cluster addresses on a back network of their own (2001:2:0:1::/64), apart from the service addresses.
    cluster = await Cluster.create({ hosts: 2, policy: 'hash', ipv6: true, networks: 'split', tag: 'v6s' });
  });
  after(async () => {
    await cluster?.destroy();
  });

  test('forwarded IPv6 connections cross the back network to the peer\'s cluster6 and are answered as the host dialled', async () => {
    const s = await cluster.load({ targets: [{ address: hostAddress6(0) }], requests: 200, concurrency: 8 });
    console.log(`ipv6 split: ${JSON.stringify(s.servedBy)}, errors ${s.errors}`);
    assert.equal(s.errors, 0, `errors: ${JSON.stringify(s.errorKinds)}`);
    assert.equal(s.addressMismatch, 0);
    assert.ok((s.servedBy['1'] ?? 0) > 0, 'nothing forwarded to h1');
    assert.ok(cluster.status(1).serve!.actions.restore > 0, 'h1 restored nothing');
  });
});
