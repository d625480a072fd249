import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, loadConfig, peerPortRange } from '../lib/config';
import { clusterConfig, writeConfig } from './support/configs';

const ephemeralRange: [number, number] = [32768, 60999];
const load = (config: unknown, env: NodeJS.ProcessEnv = {}) => loadConfig({ file: writeConfig(config), env, ephemeralRange });

function refuses(config: unknown, key: string, reason: RegExp, env: NodeJS.ProcessEnv = {}): void {
  assert.throws(() => load(config, env), (err: unknown) => {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    assert.equal(err.key, key);
    assert.match(err.reason, reason);
    return true;
  });
}

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
  ['direct mode is not there yet', () => ({ ...clusterConfig(0, { hosts: 2 }), mode: 'direct' }), 'mode', /not implemented yet/],
  ['no key with peers', () => ({ ...clusterConfig(0, { hosts: 2 }), peers: {} }), 'peers.key', /required/],
  ['unknown key', () => ({ ...clusterConfig(0, { hosts: 2 }), policyy: 'hash' }), 'policyy', /unknown key/],
  ['service port out of range', () => ({ ...clusterConfig(0, { hosts: 2 }), servicePorts: [0] }), 'servicePorts', /not a TCP port/],
  ['dead before a heartbeat', () => ({ ...clusterConfig(0, { hosts: 2 }), peers: { key: '00112233445566778899aabbccddeeff', heartbeatMs: 500, deadAfterMs: 400 } }), 'peers.deadAfterMs', /longer than/],
  ['metrics port among the peer ports', () => ({ ...clusterConfig(0, { hosts: 2 }), metrics: { port: 20001 } }), 'metrics.port', /peer ports/],
];

for (const [name, make, key, reason] of bad) {
  test(`50.config: refuses ${name}, naming ${key}`, () => refuses(make(), key, reason));
}

test('50.config: a file that is not JSON names --config and the parse error', () => {
  const file = writeConfig({});
  require('node:fs').writeFileSync(file, '{ not json');
  assert.throws(() => loadConfig({ file, env: {}, ephemeralRange }), (e: unknown) => e instanceof ConfigError && e.key === '--config' && /not valid JSON/.test(e.reason));
});
