import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig, peerPortRange } from '../lib/config';
import { schema } from '../lib/config-schema';
import { leaves } from '../scripts/config-docs';
import { clusterConfig, writeConfig } from './support/configs';
import { EPHEMERAL_RANGE, load, refuses } from './support/config-checks';


test('50.config: a valid file loads with defaults filled in and frozen', () => {
  const c = load(clusterConfig(1, { hosts: 3 }));
  assert.equal(c.self, 1);
  assert.deepEqual(c.servicePorts, [80]);
  assert.equal(c.policy, 'hash');
  assert.equal(c.queues.entry, 0);
  assert.deepEqual(peerPortRange(c), [20000, 20002]);
  assert.ok(Object.isFrozen(c) && Object.isFrozen(c.queues));
});

test('50.config: DPR_* environment variables override the file', () => {
  const c = load(clusterConfig(0, { hosts: 2 }), { DPR_POLICY: 'load', DPR_LOAD_THRESHOLD: '3', DPR_SERVICE_PORTS: '80,8080' });
  assert.equal(c.policy, 'load');
  assert.equal(c.load.threshold, 3);
  assert.deepEqual(c.servicePorts, [80, 8080]);
});

const bad: Array<[string, () => unknown, string, RegExp]> = [
  ['self is not a host id', () => clusterConfig(7, { hosts: 2 }), 'self', /not the id of any host/],
  ['duplicate ids', () => ({ ...clusterConfig(0, { hosts: 2 }), hosts: [{ id: 0, service: '198.18.0.1', cluster: '198.18.0.1' }, { id: 0, service: '198.18.0.2', cluster: '198.18.0.2' }] }), 'hosts[1].id', /used twice/],
  ['a bad address', () => ({ ...clusterConfig(0, { hosts: 1 }), hosts: [{ id: 0, service: '198.18.0.300', cluster: '198.18.0.1' }] }), 'hosts', /not an IPv4 address/],
  ['cluster address outside clusterCidr', () => ({ ...clusterConfig(0, { hosts: 2 }), clusterCidr: '198.19.0.0/24' }), 'hosts[0].cluster', /outside clusterCidr/],
  ['peer ports overlap a service port', () => ({ ...clusterConfig(0, { hosts: 2 }), servicePorts: [80, 20001] }), 'peerPortBase', /include service port 20001/],
  ['peer ports overlap the ephemeral range', () => ({ ...clusterConfig(0, { hosts: 2 }), peerPortBase: 40000 }), 'peerPortBase', /ephemeral range/],
  ['peer ports run past 65535', () => ({ ...clusterConfig(0, { hosts: 2 }), peerPortBase: 65535 }), 'peerPortBase', /past 65535/],
  ['same queue twice', () => ({ ...clusterConfig(0, { hosts: 2 }), queues: { entry: 3, serve: 3 } }), 'queues.serve', /must differ/],
  ['marks share bits', () => ({ ...clusterConfig(0, { hosts: 2 }), marks: { forward: 0x3, serve: 0x2 } }), 'marks.serve', /shares bits/],
  ['unknown policy', () => ({ ...clusterConfig(0, { hosts: 2 }), policy: 'random' }), 'policy', /must be one of/],
  ['direct mode with one address per host', () => ({ ...clusterConfig(0, { hosts: 2 }), mode: 'direct' }), 'hosts[0].cluster', /mode 'direct' needs a cluster address of its own/],
  ['tunnel mode with one address per host', () => ({ ...clusterConfig(0, { hosts: 2 }), mode: 'tunnel' }), 'hosts[0].cluster', /mode 'tunnel' needs a cluster address of its own/],
  ['an unknown mode', () => ({ ...clusterConfig(0, { hosts: 2 }), mode: 'ipip' }), 'mode', /must be one of/],
  ['a peer mark mask sharing bits with marks.forward', () => ({ ...clusterConfig(0, { hosts: 2 }), hosts: [{ id: 0, service: '198.18.0.1', cluster: '198.18.1.1' }, { id: 1, service: '198.18.0.2', cluster: '198.18.1.2' }], clusterCidr: '198.18.1.0/24', mode: 'direct', marks: { peerMask: 0x1ff0000 } }), 'marks.peerMask', /shares bits/],
  ['a peer mark mask of split bits', () => ({ ...clusterConfig(0, { hosts: 2 }), hosts: [{ id: 0, service: '198.18.0.1', cluster: '198.18.1.1' }, { id: 1, service: '198.18.0.2', cluster: '198.18.1.2' }], clusterCidr: '198.18.1.0/24', mode: 'direct', marks: { peerMask: 0x50000 } }), 'marks.peerMask', /contiguous/],
  ['a peer mark mask too small for the host ids', () => ({ ...clusterConfig(0, { hosts: 2 }), clusterCidr: '198.18.1.0/24', mode: 'direct', marks: { peerMask: 0x10000 }, hosts: [{ id: 0, service: '198.18.0.1', cluster: '198.18.1.1' }, { id: 2, service: '198.18.0.3', cluster: '198.18.1.3' }] }), 'marks.peerMask', /room for host ids up to 1/],
  ['the tunnel on a service port', () => ({ ...clusterConfig(0, { hosts: 2 }), hosts: [{ id: 0, service: '198.18.0.1', cluster: '198.18.1.1' }, { id: 1, service: '198.18.0.2', cluster: '198.18.1.2' }], clusterCidr: '198.18.1.0/24', mode: 'tunnel', tunnel: { port: 80 } }), 'tunnel.port', /service port/],
  ['a tunnel MTU below 576', () => ({ ...clusterConfig(0, { hosts: 2 }), hosts: [{ id: 0, service: '198.18.0.1', cluster: '198.18.1.1' }, { id: 1, service: '198.18.0.2', cluster: '198.18.1.2' }], clusterCidr: '198.18.1.0/24', mode: 'tunnel', tunnel: { mtu: 500 } }), 'tunnel.mtu', /576/],
  ['no key with peers', () => ({ ...clusterConfig(0, { hosts: 2 }), peers: {} }), 'peers.key', /required/],
  ['unknown key', () => ({ ...clusterConfig(0, { hosts: 2 }), policyy: 'hash' }), 'policyy', /unknown key/],
  ['a key earlier versions had, saying why it is gone', () => ({ ...clusterConfig(0, { hosts: 2 }), load: { decisionTimeoutMs: 50 } }), 'load.decisionTimeoutMs', /decides in the data path now/],
  ['service port out of range', () => ({ ...clusterConfig(0, { hosts: 2 }), servicePorts: [0] }), 'servicePorts', /not a TCP port/],
  ['dead before a heartbeat', () => ({ ...clusterConfig(0, { hosts: 2 }), peers: { key: '00112233445566778899aabbccddeeff', heartbeatMs: 500, deadAfterMs: 400 } }), 'peers.deadAfterMs', /longer than/],
  ['metrics port among the peer ports', () => ({ ...clusterConfig(0, { hosts: 2 }), metrics: { port: 20001 } }), 'metrics.port', /peer ports/],
];

test('50.config: direct and tunnel load with a cluster address of its own per host', () => {
  for (const mode of ['direct', 'tunnel']) {
    const file = writeConfig({ ...clusterConfig(0, { hosts: 2 }), hosts: [{ id: 0, service: '198.18.0.1', cluster: '198.18.1.1' }, { id: 1, service: '198.18.0.2', cluster: '198.18.1.2' }], clusterCidr: '198.18.1.0/24', mode });
    assert.equal(loadConfig({ file, env: {}, ephemeralRange: EPHEMERAL_RANGE }).mode, mode);
  }
});

for (const [name, make, key, reason] of bad) {
  test(`50.config: refuses ${name}, naming ${key}`, () => refuses(make(), key, reason));
}

test('50.config: a file that is not JSON names --config and the parse error', () => {
  const file = writeConfig({});
  require('node:fs').writeFileSync(file, '{ not json');
  assert.throws(() => loadConfig({ file, env: {}, ephemeralRange: EPHEMERAL_RANGE }), (e: unknown) => e instanceof ConfigError && e.key === '--config' && /not valid JSON/.test(e.reason));
});

// What an operator meets on the second day: every way a configuration can be
// wrong is a ConfigError that names the key and says why (issue 14).

test('50.config: no configuration at all says what is missing, naming --config', () => {
  assert.throws(() => loadConfig({ env: {}, ephemeralRange: EPHEMERAL_RANGE }), (e: unknown) => {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
    assert.equal(e.key, '--config');
    assert.match(e.reason, /no configuration: give --config FILE or set DPR_CONFIG/);
    return true;
  });
});

test('50.config: a required key missing from the file is named as required, not as a bad value', () => {
  const { self: _self, ...rest } = clusterConfig(0, { hosts: 2 });
  refuses(rest, 'self', /is required/);
  const { clusterCidr: _cidr, ...noCidr } = clusterConfig(0, { hosts: 2 });
  refuses(noCidr, 'clusterCidr', /is required/);
});

test('50.config: DPR_HOSTS that is not JSON names hosts and the parse error', () => {
  refuses(clusterConfig(0, { hosts: 2 }), 'hosts', /not JSON/, { DPR_HOSTS: 'not json' });
});

// One value per format that does not parse as that format. Numbers with
// trailing junk are the trap: parseInt('1x') is 1.
const unparsable: Record<string, string> = {
  nat: '1x', port: '80x', 'positive-int': '5 ms', 'queue-num': '1x', mark: '0x10zz', cidr: '198.18.0.0/33',
  ipv4: '127.0.0', 'port-list': '80,http', hosts: '[{"id":0,', enum: 'neither',
};

for (const { key, leaf } of leaves(schema)) {
  const format = Array.isArray(leaf.format) ? 'enum' : typeof leaf.format === 'string' ? leaf.format : 'string';
  const value = unparsable[format];
  if (!leaf.env || value === undefined) continue;
  test(`50.config: ${leaf.env}=${JSON.stringify(value)} is refused naming ${key}`, () => {
    // The reason quotes the value, so the operator sees which text was read.
    const quoted = format === 'port-list' ? value.split(',').pop()! : value;
    const reason = format === 'hosts' ? /not JSON/ : new RegExp(quoted.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&'));
    refuses(clusterConfig(0, { hosts: 2 }), key, reason, { [leaf.env!]: value });
  });
}

test('50.config: a short peers.key is refused naming peers.key, without printing the key', () => {
  const secret = 'c2hvcnRzZWNyZXQ'; // base64 of 11 bytes
  assert.throws(() => load(clusterConfig(0, { hosts: 2 }), { DPR_PEERS_KEY: secret }), (e: unknown) => {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
    assert.equal(e.key, 'peers.key');
    assert.match(e.reason, /11 bytes, at least 16/);
    assert.ok(!e.message.includes(secret), 'the message shows the key');
    return true;
  });
  refuses({ ...clusterConfig(0, { hosts: 2 }), peers: { key: 'not a key!' } }, 'peers.key', /not hex or base64/);
});

test('50.config: an unreadable or short peers.keyFile is refused naming peers.keyFile', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpr-key-'));
  try {
    const missing = path.join(dir, 'absent.key');
    refuses({ ...clusterConfig(0, { hosts: 2 }), peers: { keyFile: missing } }, 'peers.keyFile', new RegExp(`cannot read ${missing}`));
    const short = path.join(dir, 'short.key');
    fs.writeFileSync(short, '00112233\n');
    refuses({ ...clusterConfig(0, { hosts: 2 }), peers: { keyFile: short } }, 'peers.keyFile', /4 bytes, at least 16/);
    const good = path.join(dir, 'good.key');
    fs.writeFileSync(good, '00112233445566778899aabbccddeeff\n');
    assert.equal(load({ ...clusterConfig(0, { hosts: 2 }), peers: { keyFile: good } }).peers.keyFile, good);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('50.config: 16 service ports are refused (iptables multiport matches at most 15)', () => {
  const ports = Array.from({ length: 16 }, (_, i) => 8000 + i);
  refuses({ ...clusterConfig(0, { hosts: 2 }), servicePorts: ports }, 'servicePorts', /at most 15/);
  assert.equal(load({ ...clusterConfig(0, { hosts: 2 }), servicePorts: ports.slice(0, 15) }).servicePorts.length, 15);
});
