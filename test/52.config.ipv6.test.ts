// Dual-stack hosts (issue 15): hosts[].service6 / .cluster6, clusterCidr6,
// restoreCidr6, read and checked by the configuration; lib/ipv6.ts's forms.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { forwardedInAddresses, hasIpv6, heartbeatAddress, restoreAddress6, thisHost } from '../lib/config';
import { renderRules } from '../lib/rules';
import { canonicalIpv6, cidr6Contains, formatIpv6, fromIpv6Words, ipv6Bytes, ipv6Words, parseCidr6, parseIpv6 } from '../lib/ipv6';
import { clusterConfig } from './support/configs';
import { load, refuses } from './support/config-checks';

/** An N-host dual-stack cluster: host i is 2001:2::(i+1) for both service6 and cluster6 unless `split`. */
function dual(hosts: number, extra: Record<string, unknown> = {}, split = false): Record<string, unknown> {
  const c = clusterConfig(0, { hosts }, { clusterCidr6: '2001:2::/48', restoreCidr6: '2001:2:ff::/64', ...extra });
  c.hosts = (c.hosts as Array<Record<string, unknown>>).map((h, i) => ({
    ...h,
    service6: `2001:2::${(i + 1).toString(16)}`,
    cluster6: split ? `2001:2:0:1::${(i + 1).toString(16)}` : `2001:2::${(i + 1).toString(16)}`,
  }));
  return c;
}

const hostsOf = (c: Record<string, unknown>): Array<Record<string, unknown>> => c.hosts as Array<Record<string, unknown>>;

test('52.config.ipv6: RFC 5952 canonical text, whatever the spelling', () => {
  const cases: Array<[string, string]> = [
    ['2001:0002:0000:0000:0000:0000:0000:000A', '2001:2::a'],
    ['2001:2:0:0:1:0:0:1', '2001:2::1:0:0:1'], // the first of two equal runs
    ['2001:2:0:1:0:0:0:1', '2001:2:0:1::1'], // the longest run, not the first
    ['2001:2:0:1:2:3:4:5', '2001:2:0:1:2:3:4:5'], // one zero group is not shortened
    ['::', '::'],
    ['::1', '::1'],
    ['fe80::', 'fe80::'],
    ['::ffff:198.18.0.1', '::ffff:198.18.0.1'],
    ['2001:2::198.18.0.1', '2001:2::c612:1'],
  ];
  for (const [text, want] of cases) assert.equal(canonicalIpv6(text), want, text);
  for (const bad of ['', ':', '1:2:3:4:5:6:7', '1:2:3:4:5:6:7:8:9', '1::2::3', '12345::', 'g::1', '::1/64', '[::1]', '1.2.3.4', '::1.2.3', 'fe80::1%eth0', '1:2:3:4:5:6:7::8']) {
    assert.throws(() => parseIpv6(bad), /not an IPv6 address/, bad);
  }
});

test('52.config.ipv6: the addon form is four big-endian words (2001:2::a = [0x20010002, 0, 0, 0xa]), and back', () => {
  const a = parseIpv6('2001:2::a');
  assert.deepEqual(ipv6Words(a), [0x20010002, 0, 0, 0xa]);
  assert.deepEqual(ipv6Words(parseIpv6('ffff:ffff::8000:0')), [0xffffffff, 0, 0, 0x80000000]);
  assert.deepEqual([...ipv6Bytes(a)], [0x20, 0x01, 0, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a]);
  assert.equal(formatIpv6(fromIpv6Words(Uint32Array.from([0x20010002, 0, 1, 0xfffe]))), '2001:2::1:0:fffe');
  const cidr = parseCidr6('2001:2:ffff::1/32');
  assert.equal(formatIpv6(cidr.network), '2001:2::');
  assert.ok(cidr6Contains(cidr, parseIpv6('2001:2:ffff::2')));
  assert.ok(!cidr6Contains(cidr, parseIpv6('2001:3::1')));
  for (const bad of ['2001:2::/129', '2001:2::', '2001:2::/x', '198.18.0.0/24', '2001:2::/48/1']) assert.throws(() => parseCidr6(bad), /not an IPv6 CIDR/, bad);
});

test('52.config.ipv6: a dual-stack cluster loads, its IPv6 addresses in canonical form; an IPv4-only one has none', () => {
  const c = dual(3);
  hostsOf(c)[1]!.service6 = '2001:0002:0:0::0002';
  const cfg = load(c);
  assert.deepEqual(cfg.hosts.map((h) => [h.service6, h.cluster6]), [['2001:2::1', '2001:2::1'], ['2001:2::2', '2001:2::2'], ['2001:2::3', '2001:2::3']]);
  assert.equal(hasIpv6(cfg), true);
  assert.equal(cfg.clusterCidr6, '2001:2::/48');
  const v4 = load(clusterConfig(0, { hosts: 2 }));
  assert.equal(hasIpv6(v4), false);
  assert.equal(v4.clusterCidr6, '');
  assert.equal(v4.restoreCidr6, 'fd02:b4eb:33f2::/64');
  assert.equal(v4.hosts[0]!.service6, undefined);
});

test('52.config.ipv6: IPv6 is cluster-wide: a host without service6 or cluster6 among IPv6 hosts is named, with the reason', () => {
  const noService = dual(3);
  delete hostsOf(noService)[2]!.service6;
  refuses(noService, 'hosts[2].service6', /is missing while hosts\[0\] has IPv6 addresses; an IPv6 service address needs IPv6 peers to forward to/);
  const noCluster = dual(3);
  delete hostsOf(noCluster)[1]!.cluster6;
  refuses(noCluster, 'hosts[1].cluster6', /an IPv6 service address needs IPv6 peers to forward to/);
  const onlyLast = clusterConfig(0, { hosts: 2 }, { clusterCidr6: '2001:2::/48' });
  hostsOf(onlyLast)[1]!.service6 = '2001:2::2';
  hostsOf(onlyLast)[1]!.cluster6 = '2001:2::2';
  refuses(onlyLast, 'hosts[0].service6', /is missing while hosts\[1\] has IPv6 addresses/);
});

test('52.config.ipv6: an address that is not IPv6, or no host address, is refused naming the field', () => {
  for (const [value, reason] of [
    ['198.18.0.1', /hosts\[1\]\.service6 '198\.18\.0\.1' is not an IPv6 address/],
    [42, /hosts\[1\]\.service6 must be an IPv6 address string/],
    ['::', /is the unspecified address/],
    ['::1', /is the loopback address/],
    ['ff02::1', /is a multicast address/],
    ['fe80::1', /is link-local/],
    ['::ffff:198.18.0.9', /is IPv4-mapped/],
  ] as const) {
    const c = dual(2);
    hostsOf(c)[1]!.service6 = value;
    refuses(c, 'hosts', reason);
  }
});

test('52.config.ipv6: clusterCidr6 is required with IPv6 hosts and holds every cluster6', () => {
  refuses(dual(2, { clusterCidr6: '' }), 'clusterCidr6', /is required when the hosts have IPv6 addresses: every cluster6 must lie in it/);
  refuses(dual(2, { clusterCidr6: '2001:2:0:1::/64' }), 'hosts[0].cluster6', /2001:2::1 is outside clusterCidr6 2001:2:0:1::\/64/);
  assert.equal(load(dual(2, { clusterCidr6: '2001:2:0:1::/64' }, true)).hosts[1]!.cluster6, '2001:2:0:1::2');
  refuses(dual(2, { clusterCidr6: '198.18.0.0/24' }), 'clusterCidr6', /not an IPv6 CIDR/);
});

test('52.config.ipv6: no IPv6 address twice (in any spelling)', () => {
  const c = dual(3);
  hostsOf(c)[2]!.service6 = '2001:2:0::0:1';
  refuses(c, 'hosts[2].service6', /2001:2::1 is also hosts\[0\]\.service6/);
  const d = dual(2, {}, true);
  hostsOf(d)[1]!.cluster6 = '2001:2:0:1:0::1';
  refuses(d, 'hosts[1].cluster6', /is also hosts\[0\]\.cluster6/);
});

test('52.config.ipv6: restoreCidr6 must not hold a host address and must have room for every host id', () => {
  refuses(dual(2, { restoreCidr6: '2001:2::/64' }), 'restoreCidr6', /contains hosts\[0\]\.service6 2001:2::1/);
  refuses(dual(3, { restoreCidr6: '2001:2:ff::/127' }), 'restoreCidr6', /too small for host ids up to 2/);
  refuses(dual(2, { restoreCidr6: 'fd00::' }), 'restoreCidr6', /not an IPv6 CIDR/);
});

/** A dual-stack config in a kernel mode: cluster addresses of their own in both families. */
function kernelMode(mode: string): Record<string, unknown> {
  const c = dual(2, { mode }, true);
  for (const [i, h] of hostsOf(c).entries()) h.cluster = `198.18.1.${i + 1}`;
  c.clusterCidr = '198.18.1.0/24';
  return c;
}

test('52.config.ipv6: direct and tunnel take IPv6 addresses (tunnel carries them over its IPv4 VXLAN devices)', () => {
  assert.equal(load(kernelMode('direct')).hosts[1]!.service6, '2001:2::2');
  const tunnel = load(kernelMode('tunnel'));
  assert.equal(tunnel.mode, 'tunnel');
  assert.equal(tunnel.hosts[1]!.service6, '2001:2::2');
});

test('52.config.ipv6: tunnel with IPv6 needs tunnel.mtu >= 1330: the devices (mtu - 50) carry IPv6 from 1280 up', () => {
  refuses({ ...kernelMode('tunnel'), tunnel: { mtu: 1329 } }, 'tunnel.mtu', /must be at least 1330 with IPv6 addresses: the tunnel devices \(mtu - 50\) carry IPv6 only from 1280 up/);
  assert.equal(load({ ...kernelMode('tunnel'), tunnel: { mtu: 1330 } }).tunnel.mtu, 1330);
  // IPv4 alone keeps the wider range.
  const v4 = kernelMode('tunnel');
  for (const h of hostsOf(v4)) {
    delete h.service6;
    delete h.cluster6;
  }
  assert.equal(load({ ...v4, tunnel: { mtu: 1000 } }).tunnel.mtu, 1000);
});

for (const mode of ['direct', 'tunnel']) {
  test(`52.config.ipv6: ${mode} needs a cluster6 of its own on every host (peers hold the service6 addresses on lo)`, () => {
    const c = kernelMode(mode);
    hostsOf(c)[1]!.cluster6 = hostsOf(c)[1]!.service6;
    c.clusterCidr6 = '2001:2::/48';
    refuses(c, 'hosts[1].cluster6', new RegExp(`is also the service6 address; mode '${mode}' needs`));
  });
}

/** An etcd host's file (no host list), dual-stack unless `six` is false. */
function etcdFile(six: Record<string, unknown> = { service6: '2001:0002:0000::1', cluster6: '2001:2:0:1::1' }, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    membership: { source: 'etcd', service: '198.18.0.1', cluster: '198.18.1.1', ...six, etcd: { endpoints: ['http://198.18.0.250:2379'] } },
    clusterCidr: '198.18.0.0/15', clusterCidr6: '2001:2::/48', restoreCidr6: '2001:2:ff::/64', peers: { key: '00112233445566778899aabbccddeeff' },
    ...extra,
  };
}

test('52.config.ipv6: an etcd host is dual-stack with membership.service6 and .cluster6 (canonical), and its own IPv6 rules come before the list', () => {
  const c = load(etcdFile());
  assert.equal(c.membership.service6, '2001:2::1');
  assert.equal(c.membership.cluster6, '2001:2:0:1::1');
  assert.ok(hasIpv6(c));
  assert.deepEqual(thisHost(c), { service: '198.18.0.1', cluster: '198.18.1.1', service6: '2001:2::1', cluster6: '2001:2:0:1::1' });
  // No list yet (lib/membership/resolve.ts lastKnown without a claim file): this host's chains, for ip6tables too.
  const rules = renderRules(c);
  assert.ok(rules.ipv6, 'no IPv6 rules for a dual-stack etcd host');
  assert.ok(rules.ipv6.restore.includes('-d 2001:2::1/128'), 'the IPv6 rules do not name membership.service6');
  assert.equal(renderRules(load(etcdFile({}))).ipv6, null, 'an IPv4-only etcd host has IPv6 rules');
  for (const mode of ['direct', 'tunnel']) assert.ok(renderRules(load(etcdFile(undefined, { mode }))).ipv6, `no IPv6 rules in ${mode}`);
});

test('52.config.ipv6: an etcd host\'s IPv6 addresses are checked as a host entry\'s are, naming the membership key', () => {
  refuses(etcdFile({ service6: '2001:2::1' }), 'membership.cluster6', /is required with membership.service6: an IPv6 service address needs IPv6 peers/);
  refuses(etcdFile({ cluster6: '2001:2:0:1::1' }), 'membership.service6', /is required with membership.cluster6/);
  refuses(etcdFile({ service6: '::1', cluster6: '2001:2:0:1::1' }), 'membership.service6', /::1 is the loopback address/);
  refuses(etcdFile({ service6: '2001:2::1', cluster6: 'fe80::1' }), 'membership.cluster6', /is link-local/);
  refuses(etcdFile(undefined, { clusterCidr6: '' }), 'clusterCidr6', /is required when the hosts have IPv6 addresses/);
  refuses(etcdFile({ service6: '2001:2::1', cluster6: '2001:3::1' }), 'membership.cluster6', /2001:3::1 is outside clusterCidr6 2001:2::\/48/);
  refuses(etcdFile({ service6: '2001:2:ff::5', cluster6: '2001:2:0:1::1' }), 'restoreCidr6', /contains membership.service6 2001:2:ff::5/);
  refuses(etcdFile({ service6: '2001:2::1', cluster6: '2001:2::1' }, { mode: 'direct' }), 'membership.cluster6', /is also the service6 address; mode 'direct' needs/);
  const statik = dual(2);
  statik.membership = { service6: '2001:2::1' };
  refuses(statik, 'membership.service6', /is for membership.source etcd/);
});

test('52.config.ipv6: peers.family ipv6 sends heartbeats between the cluster6 addresses; ipv4 (the default) between the cluster ones', () => {
  const v6 = load(dual(3, { peers: { key: '00112233445566778899aabbccddeeff', family: 'ipv6' } }, true));
  assert.deepEqual(v6.hosts.map((h) => heartbeatAddress(v6, h)), ['2001:2:0:1::1', '2001:2:0:1::2', '2001:2:0:1::3']);
  const v4 = load(dual(3, {}, true));
  assert.equal(v4.peers.family, 'ipv4');
  assert.deepEqual(v4.hosts.map((h) => heartbeatAddress(v4, h)), ['198.18.0.1', '198.18.0.2', '198.18.0.3']);
  assert.equal(load(dual(2), { DPR_PEERS_FAMILY: 'ipv6' }).peers.family, 'ipv6');
  refuses(dual(2, { peers: { key: '00112233445566778899aabbccddeeff', family: 'ipv5' } }), 'peers.family', /must be one of the possible values: \["ipv4","ipv6"\]/);
});

test('52.config.ipv6: peers.family ipv6 needs every host\'s cluster6: hosts[].cluster6, or an etcd host\'s membership.cluster6', () => {
  const key = '00112233445566778899aabbccddeeff';
  refuses(clusterConfig(0, { hosts: 2 }, { peers: { key, family: 'ipv6' } }), 'peers.family', /'ipv6' sends heartbeats to the hosts' cluster6 addresses; hosts\[0\] has none/);
  refuses(etcdFile({}, { peers: { key, family: 'ipv6' } }), 'peers.family', /'ipv6' sends heartbeats to the hosts' cluster6 addresses; membership has none/);
  assert.equal(load(etcdFile(undefined, { peers: { key, family: 'ipv6' } })).peers.family, 'ipv6');
});

test('52.config.ipv6: the heartbeat port is let in (DPR_INPUT) in the rules of peers.family only, on this host\'s address of that family', () => {
  const key = '00112233445566778899aabbccddeeff';
  const rule4 = '-A DPR_INPUT -s 198.18.0.0/24 -d 198.18.0.1/32 -p udp -m udp --dport 4790 -j ACCEPT';
  const rule6 = '-A DPR_INPUT -s 2001:2::/48 -d 2001:2::1/128 -p udp -m udp --dport 4790 -j ACCEPT';
  for (const mode of ['rewrite', 'direct'] as const) {
    const c = mode === 'rewrite' ? dual(2) : kernelMode('direct');
    const [to4, to6] = mode === 'rewrite' ? ['198.18.0.1', '2001:2::1'] : ['198.18.1.1', '2001:2:0:1::1'];
    const [r4, r6] = [rule4.replace('198.18.0.0/24', String(c.clusterCidr)).replace('198.18.0.1/32', `${to4}/32`), rule6.replace('2001:2::1/128', `${to6}/128`)];
    const v4 = renderRules(load(c));
    assert.ok(v4.restore.split('\n').includes(r4), `${mode}, ipv4: ${v4.restore}`);
    assert.ok(!v4.ipv6!.restore.includes('--dport 4790'), `${mode}, ipv4: a heartbeat rule in the IPv6 rules`);
    const v6 = renderRules(load({ ...c, peers: { key, family: 'ipv6' } }));
    assert.ok(v6.ipv6!.restore.split('\n').includes(r6), `${mode}, ipv6: ${v6.ipv6!.restore}`);
    assert.ok(!v6.restore.includes('--dport 4790'), `${mode}, ipv6: a heartbeat rule in the IPv4 rules`);
  }
});

test('52.config.ipv6: forwarded-in addresses include the IPv6 restore addresses (network + id + 1, canonical)', () => {
  const cfg = load(dual(3));
  assert.equal(restoreAddress6(cfg, 0), '2001:2:ff::1');
  assert.equal(restoreAddress6(cfg, 254), '2001:2:ff::ff');
  assert.deepEqual([...forwardedInAddresses(cfg, [1, 2])].sort(), ['169.254.77.2', '169.254.77.3', '2001:2:ff::2', '2001:2:ff::3']);
  assert.deepEqual([...forwardedInAddresses(load(clusterConfig(0, { hosts: 3 })), [1])], ['169.254.77.2']);
});
