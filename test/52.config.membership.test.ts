// The membership keys (issue 16): with `membership.source` `etcd` the file
// describes this host only, and every mistake is named by its key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { peerPortRange } from '../lib/config';
import { etcdOptions, lastKnown, memberCheck, withMembership } from '../lib/membership';
import { writeClaim } from '../lib/membership/claim-file';
import { renderRules } from '../lib/rules';
import { clusterConfig } from './support/configs';
import { load, refuses } from './support/config-checks';
import winston from 'winston';

const quiet = winston.createLogger({ silent: true });

/** This host only: its addresses, the etcd servers, the shared key. */
function etcdHost(extra: Record<string, unknown> = {}, etcd: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    clusterCidr: '198.18.0.0/24',
    peers: { key: '00112233445566778899aabbccddeeff' },
    membership: { source: 'etcd', service: '198.18.0.1', cluster: '198.18.0.1', etcd: { endpoints: ['http://198.18.0.250:2379'], ...etcd } },
    ...extra,
  };
}

test('52.config.membership: static stays the default and needs nothing new', () => {
  const c = load(clusterConfig(0, { hosts: 2 }));
  assert.equal(c.membership.source, 'static');
  assert.equal(c.membership.etcd.prefix, '/dpr/');
});

test('52.config.membership: an etcd host needs no hosts and no self; the peer ports cover every id it may meet', () => {
  const c = load(etcdHost());
  assert.equal(c.membership.source, 'etcd');
  assert.equal(c.hosts, null);
  assert.equal(c.self, null);
  // Ids 0..63 by default: the rules need not change when a host joins.
  assert.deepEqual(peerPortRange(c), [20000, 20063]);
  const o = etcdOptions(c, quiet);
  assert.deepEqual(o.endpoints, ['http://198.18.0.250:2379']);
  assert.equal(o.self, null);
  assert.equal(o.leaseTtlS, 10);
  assert.equal(o.stateFile, '/var/lib/dpr/membership.json');
});

test('52.config.membership: the environment sets etcd membership too', () => {
  const c = load({ clusterCidr: '198.18.0.0/24', peers: { key: '00112233445566778899aabbccddeeff' } }, {
    DPR_MEMBERSHIP_SOURCE: 'etcd', DPR_MEMBERSHIP_SERVICE: '198.18.0.5', DPR_MEMBERSHIP_CLUSTER: '198.18.0.5',
    DPR_ETCD_ENDPOINTS: 'http://198.18.0.250:2379, https://198.18.0.251:2379', DPR_SELF: '3', DPR_ETCD_LEASE_TTL_S: '4',
  });
  assert.deepEqual(c.membership.etcd.endpoints, ['http://198.18.0.250:2379', 'https://198.18.0.251:2379']);
  assert.equal(c.self, 3);
  assert.equal(c.membership.etcd.leaseTtlS, 4);
});

const bad: Array<[string, () => unknown, string, RegExp]> = [
  ['hosts with etcd membership', () => etcdHost({ hosts: [{ id: 0, service: '198.18.0.1', cluster: '198.18.0.1', weight: 1 }] }), 'hosts', /must not be set with membership.source etcd/],
  ['an etcd host without its service address', () => etcdHost({ membership: { source: 'etcd', cluster: '198.18.0.1', etcd: { endpoints: ['http://198.18.0.250:2379'] } } }), 'membership.service', /required with membership.source etcd/],
  ['an etcd host without endpoints', () => etcdHost({}, { endpoints: [] }), 'membership.etcd.endpoints', /at least one etcd URL/],
  ['an endpoint that is not a URL', () => etcdHost({}, { endpoints: ['198.18.0.250:2379'] }), 'membership.etcd.endpoints', /not a URL/],
  ['a prefix without its slashes', () => etcdHost({}, { prefix: 'dpr' }), 'membership.etcd.prefix', /starts and ends with '\/'/],
  ['self past maxHosts', () => etcdHost({ self: 9 }, { maxHosts: 8 }), 'self', /not below membership.etcd.maxHosts \(8\)/],
  ['maxHosts past the id space', () => etcdHost({}, { maxHosts: 300 }), 'membership.etcd.maxHosts', /at most 256/],
  ['peer ports of maxHosts ids into the ephemeral range', () => etcdHost({ peerPortBase: 32720 }), 'peerPortBase', /ephemeral range/],
  ['restoreCidr too small for maxHosts', () => etcdHost({ restoreCidr: '169.254.77.0/28' }), 'restoreCidr', /too small for host ids up to 63/],
  ['a cluster address outside clusterCidr', () => etcdHost({ clusterCidr: '198.19.0.0/24' }), 'membership.cluster', /outside clusterCidr/],
  ['no shared key, even alone', () => etcdHost({ peers: {} }), 'peers.key', /required when there are peers/],
  ['a lease shorter than etcd takes', () => etcdHost({}, { leaseTtlS: 1 }), 'membership.etcd.leaseTtlS', /at least 2 s/],
  ['a client certificate without its key', () => etcdHost({}, { tls: { cert: '/etc/dpr/etcd.crt' } }), 'membership.etcd.tls.key', /both tls.cert and tls.key/],
  ['a password without a user', () => etcdHost({}, { password: 'x' }), 'membership.etcd.username', /required with a password/],
  ['a user without a password', () => etcdHost({}, { username: 'dpr' }), 'membership.etcd.password', /needs password or passwordFile/],
  ['a weight past 100', () => etcdHost({ membership: { source: 'etcd', service: '198.18.0.1', cluster: '198.18.0.1', weight: 101, etcd: { endpoints: ['http://198.18.0.250:2379'] } } }), 'membership.weight', /must be an integer 0\.\.100/],
  ['a retry ceiling below the floor', () => etcdHost({}, { retryMinMs: 1000, retryMaxMs: 500 }), 'membership.etcd.retryMaxMs', /not be below/],
  ['static membership with etcd addresses', () => ({ ...clusterConfig(0, { hosts: 2 }), membership: { service: '198.18.0.1' } }), 'membership.service', /is for membership.source etcd/],
  ['static membership without hosts', () => { const { hosts: _h, ...rest } = clusterConfig(0, { hosts: 2 }); return rest; }, 'hosts', /is required/],
];

for (const [name, make, key, reason] of bad) {
  test(`52.config.membership: refuses ${name}, naming ${key}`, () => refuses(make(), key, reason));
}

test('52.config.membership: TLS and password files are read at load, and one that cannot be read is named', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpr-etcd-cfg-'));
  try {
    const ca = path.join(dir, 'ca.pem');
    const pw = path.join(dir, 'pw');
    fs.writeFileSync(ca, '-----BEGIN CERTIFICATE-----\n');
    fs.writeFileSync(pw, 's3cret\n');
    const c = load(etcdHost({}, { tls: { ca }, username: 'dpr', passwordFile: pw }));
    const o = etcdOptions(c, quiet);
    assert.equal(o.tls?.ca?.toString(), '-----BEGIN CERTIFICATE-----\n');
    assert.deepEqual(o.auth, { username: 'dpr', password: 's3cret' });
    refuses(etcdHost({}, { tls: { ca: path.join(dir, 'missing.pem') } }), 'membership.etcd.tls.ca', /cannot read .*missing\.pem: ENOENT/);
    refuses(etcdHost({}, { username: 'dpr', passwordFile: path.join(dir, 'nope') }), 'membership.etcd.passwordFile', /ENOENT/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("52.config.membership: a host registered by someone else is checked against this host's rules", () => {
  const check = memberCheck(load(etcdHost({}, { maxHosts: 8 })));
  assert.equal(check({ id: 3, service: '198.18.0.4', cluster: '198.18.0.4', weight: 1 }), null);
  assert.match(check({ id: 8, service: '198.18.0.9', cluster: '198.18.0.9', weight: 1 }) ?? '', /not below membership.etcd.maxHosts \(8\)/);
  assert.match(check({ id: 2, service: '198.18.0.9', cluster: '198.18.5.9', weight: 1 }) ?? '', /outside clusterCidr/);
  assert.match(check({ id: 2, service: '169.254.77.9', cluster: '198.18.0.9', weight: 1 }) ?? '', /restoreCidr/);
});

test('52.config.membership: IPv6 is cluster-wide in etcd too: a dual-stack host takes only dual-stack records, an IPv4-only host only IPv4-only ones', () => {
  const six = { clusterCidr6: '2001:2::/48', restoreCidr6: '2001:2:ff::/64' };
  const dualFile = etcdHost(six);
  (dualFile.membership as Record<string, unknown>).service6 = '2001:2::1';
  (dualFile.membership as Record<string, unknown>).cluster6 = '2001:2:0:1::1';
  const dual = memberCheck(load(dualFile));
  const v4 = memberCheck(load(etcdHost(six)));
  const plain = { id: 3, service: '198.18.0.4', cluster: '198.18.0.4', weight: 1 };
  const both = { ...plain, service6: '2001:2::4', cluster6: '2001:2:0:1::4' };
  assert.equal(dual(both), null);
  assert.match(dual(plain) ?? '', /has no IPv6 addresses .* this host is dual-stack/);
  assert.equal(v4(plain), null);
  assert.match(v4(both) ?? '', /has IPv6 addresses .* this host is IPv4 only/);
  assert.match(dual({ ...both, cluster6: '2001:3::4' }) ?? '', /cluster6 address 2001:3::4 is outside clusterCidr6 2001:2::\/48/);
  assert.match(dual({ ...both, service6: '2001:2:ff::4' }) ?? '', /service6 address 2001:2:ff::4 lies in restoreCidr6/);
  // The kernel modes: peers hold the service addresses on lo, so a record must keep them apart from its cluster ones.
  const direct = memberCheck(load({ ...dualFile, mode: 'direct', membership: { ...(dualFile.membership as object), cluster: '198.18.0.101', cluster6: '2001:2:0:1::1' } }));
  assert.match(direct({ ...both, cluster: '198.18.0.14' , service6: '2001:2::14', cluster6: '2001:2::14' }) ?? '', /cluster6 address 2001:2::14 is also its service6 address, and mode 'direct' needs them apart/);
  assert.match(direct(both) ?? '', /cluster address 198\.18\.0\.4 is also its service address, and mode 'direct'/);
  assert.equal(direct({ ...both, cluster: '198.18.0.14' }), null);
});

test('52.config.membership: IPv4 is cluster-wide in etcd too: an IPv6-only host takes only IPv6-only records, and its own resolved list has no IPv4', () => {
  const file = {
    clusterCidr6: '2001:2::/48', restoreCidr6: '2001:2:ff::/64', peers: { key: '00112233445566778899aabbccddeeff', family: 'ipv6' },
    membership: { source: 'etcd', service6: '2001:2::1', cluster6: '2001:2:0:1::1', etcd: { endpoints: ['http://[2001:2::e]:2379'] } },
  };
  const c = load(file);
  const only6 = memberCheck(c);
  const six = { id: 3, service6: '2001:2::4', cluster6: '2001:2:0:1::4', weight: 1 };
  assert.equal(only6(six), null);
  assert.match(only6({ ...six, service: '198.18.0.4', cluster: '198.18.0.4' }) ?? '', /has IPv4 addresses \(service, cluster\), and this host is IPv6-only/);
  assert.match(only6({ ...six, cluster6: '2001:3::4' }) ?? '', /outside clusterCidr6/);
  // The kernel modes keep service and cluster addresses apart: of the family the record has.
  const direct = memberCheck(load({ ...file, mode: 'direct' }));
  assert.equal(direct(six), null);
  assert.match(direct({ ...six, cluster6: '2001:2::4' }) ?? '', /cluster6 address 2001:2::4 is also its service6 address/);
  const dual = memberCheck(load({ ...file, clusterCidr: '198.18.0.0/24', peers: { key: '00112233445566778899aabbccddeeff' }, membership: { ...file.membership, service: '198.18.0.1', cluster: '198.18.0.1' } }));
  assert.match(dual(six) ?? '', /has no IPv4 addresses \(service, cluster\), and this host has/);
  const o = etcdOptions(c, quiet);
  assert.equal(o.service, undefined);
  assert.equal(o.service6, '2001:2::1');
  const resolved = withMembership(c, { self: 0, hosts: [{ id: 0, service6: '2001:2::1', cluster6: '2001:2:0:1::1', weight: 1 }, six] });
  assert.deepEqual(resolved.hosts, [{ id: 0, service6: '2001:2::1', cluster6: '2001:2:0:1::1', weight: 1 }, six]);
});

test("52.config.membership: an etcd host's IPv6 addresses go into its record and its own entry of the resolved list", () => {
  const file = etcdHost({ clusterCidr6: '2001:2::/48', restoreCidr6: '2001:2:ff::/64' });
  Object.assign(file.membership as object, { service6: '2001:2::1', cluster6: '2001:2:0:1::1' });
  const c = load(file);
  const o = etcdOptions(c, quiet);
  assert.equal(o.service6, '2001:2::1');
  assert.equal(o.cluster6, '2001:2:0:1::1');
  const peer = { id: 1, service: '198.18.0.2', cluster: '198.18.0.2', service6: '2001:2::2', cluster6: '2001:2:0:1::2', weight: 1 };
  const resolved = withMembership(c, { self: 0, hosts: [{ id: 0, service: '198.18.0.1', cluster: '198.18.0.1', weight: 1 }, peer] });
  assert.deepEqual(resolved.hosts, [{ id: 0, service: '198.18.0.1', cluster: '198.18.0.1', service6: '2001:2::1', cluster6: '2001:2:0:1::1', weight: 1 }, peer]);
  // The peer's IPv6 rules are there: its service6 DNATed to its restore address.
  assert.ok(renderRules(resolved).ipv6?.restore.includes('-d 2001:2::2/128'), 'no IPv6 rule for the peer');
});

test("52.config.membership: before the daemon runs, an etcd host's rules are rendered with the claim file's last list", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpr-etcd-last-'));
  try {
    const stateFile = path.join(dir, 'membership.json');
    const c = load(etcdHost({}, { stateFile }));
    assert.equal(lastKnown(c), c, 'no claim file: this host only');
    assert.deepEqual(renderRules(lastKnown(c)).localAddresses, []);
    const hosts = [0, 1, 2].map((id) => ({ id, service: `198.18.0.${id + 1}`, cluster: `198.18.0.${id + 1}`, weight: 1 }));
    writeClaim(stateFile, { prefix: '/dpr/', id: 0, lease: null, hosts });
    const last = lastKnown(c);
    assert.equal(last.self, 0);
    assert.deepEqual(renderRules(last).localAddresses, ['169.254.77.2', '169.254.77.3']);
    // A list this file cannot hold (its own address is not in it) is not used.
    writeClaim(stateFile, { prefix: '/dpr/', id: 0, lease: null, hosts: hosts.slice(1) });
    assert.equal(lastKnown(c), c);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
