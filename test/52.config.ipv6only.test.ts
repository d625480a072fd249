// IPv6-only hosts (issue 15): hosts without `service` and `cluster`, read and
// checked by the configuration; the rules they render (ip6tables only) and
// the etcd file of such a host.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { forwardedInAddresses, hasIpv4, hasIpv6, thisHost } from '../lib/config';
import { renderInstallScript, renderRules } from '../lib/rules';
import { load, refuses } from './support/config-checks';

const KEY = '00112233445566778899aabbccddeeff';

/** An N-host IPv6-only cluster: host i is 2001:2::(i+1), cluster6 2001:2:0:1::(i+1). */
function v6only(hosts: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    self: 0,
    hosts: Array.from({ length: hosts }, (_, i) => ({ id: i, service6: `2001:2::${i + 1}`, cluster6: `2001:2:0:1::${i + 1}` })),
    clusterCidr6: '2001:2::/48', restoreCidr6: '2001:2:ff::/64', peers: { key: KEY, family: 'ipv6' },
    ...extra,
  };
}

test('52.config.ipv6only: hosts with IPv6 addresses only load, with no IPv4 address and no clusterCidr', () => {
  const c = load(v6only(3));
  assert.equal(hasIpv4(c), false);
  assert.equal(hasIpv6(c), true);
  assert.deepEqual(thisHost(c), { id: 0, service6: '2001:2::1', cluster6: '2001:2:0:1::1', weight: 1 });
  assert.equal(c.clusterCidr, '');
  // Forwarded-in sockets: the IPv6 restore addresses only (rewrite), the peers' service6 (direct).
  assert.deepEqual([...forwardedInAddresses(c, [1, 2])], ['2001:2:ff::2', '2001:2:ff::3']);
  assert.deepEqual([...forwardedInAddresses(load(v6only(3, { mode: 'direct' })), [1])], ['2001:2::2']);
});

test('52.config.ipv6only: IPv4 is cluster-wide: one host without IPv4 among IPv4 hosts is named, with the reason', () => {
  const c = v6only(3);
  const hosts = c.hosts as Array<Record<string, unknown>>;
  hosts[0] = { ...hosts[0], service: '198.18.0.1', cluster: '198.18.0.1' };
  refuses({ ...c, clusterCidr: '198.18.0.0/24' }, 'hosts[1].service', /is missing while other hosts have IPv4 addresses; IPv4 is cluster-wide/);
  const half = v6only(2);
  (half.hosts as Array<Record<string, unknown>>)[1]!.service = '198.18.0.2';
  refuses(half, 'hosts', /hosts\[1\]\.cluster must be an IPv4 address string/);
  const noSix = v6only(2);
  delete (noSix.hosts as Array<Record<string, unknown>>)[1]!.cluster6;
  refuses(noSix, 'hosts', /hosts\[1\] needs cluster6 with service6 \(it has no IPv4 addresses\)/);
  const nothing = v6only(2);
  (nothing.hosts as Array<Record<string, unknown>>)[1] = { id: 1 };
  refuses(nothing, 'hosts', /hosts\[1\]\.service must be an IPv4 address string/);
});

test('52.config.ipv6only: heartbeats must go over IPv6, tunnel is refused (its VXLAN underlay is IPv4), clusterCidr must stay empty', () => {
  refuses(v6only(2, { peers: { key: KEY } }), 'peers.family', /must be 'ipv6' when the hosts are IPv6-only/);
  refuses(v6only(2, { mode: 'tunnel' }), 'mode', /'tunnel' carries packets in VXLAN between the IPv4 cluster addresses, and the hosts are IPv6-only/);
  refuses(v6only(2, { clusterCidr: '198.18.0.0/24' }), 'clusterCidr', /is for IPv4 cluster addresses, and the hosts are IPv6-only; leave it empty/);
  refuses(v6only(2, { clusterCidr6: '' }), 'clusterCidr6', /is required when the hosts have IPv6 addresses/);
  assert.equal(load(v6only(2, { mode: 'direct' })).mode, 'direct');
});

test('52.config.ipv6only: the rules are ip6tables ones only, in rewrite and direct; install sets IPv6 forwarding alone', () => {
  for (const mode of ['rewrite', 'direct']) {
    const r = renderRules(load(v6only(3, { mode })));
    assert.equal(r.restore, '', `${mode}: iptables rules for IPv6-only hosts`);
    assert.deepEqual(r.jumps, []);
    assert.deepEqual(r.localAddresses, []);
    assert.deepEqual(r.sysctls, [['net.ipv6.conf.*.forwarding', '1']]);
    assert.ok(r.ipv6?.restore.includes('-d 2001:2::1/128 -p tcp -m multiport --dports 80 -j DPR_ENTRY'), `${mode}: no IPv6 entry rule`);
    assert.match(r.ipv6!.restore, /-A DPR_INPUT -s 2001:2::\/48 -d 2001:2:0:1::1\/128 -p udp -m udp --dport \d+ -j ACCEPT/, `${mode}: heartbeats not let in over IPv6`);
    const script = renderInstallScript(r);
    assert.doesNotMatch(script, /iptables-restore|iptables -w|ip rule|ip route|net\.ipv4/, `${mode}: the install script touches IPv4`);
  }
  const k = renderRules(load(v6only(3, { mode: 'direct' }))).kernel!;
  assert.deepEqual(k.sets.map((s) => s[0]), ['dpr6_to1', 'dpr6_to2', 'dpr6_fin']);
  assert.deepEqual([k.routes, k.rules], [[], []]);
  assert.deepEqual(k.routes6.map((r) => r[2]), ['2001:2:0:1::2', '2001:2:0:1::3']);
  assert.equal(k.rules6.length, 2);
});

test('52.config.ipv6only: an etcd host is IPv6-only with membership.service6 and .cluster6 and no membership.service', () => {
  const file = {
    membership: { source: 'etcd', service6: '2001:2::1', cluster6: '2001:2:0:1::1', etcd: { endpoints: ['http://[2001:2::e]:2379'] } },
    clusterCidr6: '2001:2::/48', restoreCidr6: '2001:2:ff::/64', peers: { key: KEY, family: 'ipv6' },
  };
  const c = load(file);
  assert.equal(hasIpv4(c), false);
  assert.deepEqual(thisHost(c), { service6: '2001:2::1', cluster6: '2001:2:0:1::1' });
  assert.equal(renderRules(c).restore, '');
  assert.ok(renderRules(c).ipv6?.restore.includes('-d 2001:2::1/128'));
  refuses({ ...file, membership: { ...file.membership, service6: '' , cluster6: '' } }, 'membership.service', /is required with membership.source etcd: this host's service address \(an IPv6-only host sets membership.service6 and .cluster6 instead\)/);
  refuses({ ...file, peers: { key: KEY } }, 'peers.family', /must be 'ipv6' when the hosts are IPv6-only/);
});
