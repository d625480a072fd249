// What a reload applies and what it refuses (lib/reload-plan.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig, type DprConfig } from '../lib/config';
import { planReload } from '../lib/reload-plan';
import { clusterConfig, writeConfig } from './support/configs';

const load = (extra: Record<string, unknown> = {}, hosts = 3): Readonly<DprConfig> =>
  loadConfig({ file: writeConfig(clusterConfig(0, { hosts }, extra)), env: {}, ephemeralRange: [32768, 60999] });

test('27.reload-plan: hosts, keys, threshold, health, log level and drain timeout are applied live', () => {
  const now = load();
  const next = load({
    load: { threshold: 3 }, health: { type: 'http', intervalMs: 500 }, log: { level: 'debug' }, drain: { timeoutMs: 5 },
    peers: { key: 'ffeeddccbbaa99887766554433221100', rotationKey: '00112233445566778899aabbccddeeff', heartbeatMs: 100, deadAfterMs: 600 },
  }, 4);
  const plan = planReload(now, next);
  assert.deepEqual(plan.restartNeeded, []);
  assert.deepEqual(plan.live, ['drain.timeoutMs', 'health.intervalMs', 'health.type', 'hosts', 'load.threshold', 'log.level', 'peers.key', 'peers.rotationKey']);
});

test('27.reload-plan: what the native queues, sockets or files hold is refused, every such key named', () => {
  const plan = planReload(load(), load({ queues: { maxLen: 8 }, flows: { max: 1024, maxEmbryonic: 512 }, metrics: { port: 9999 }, peers: { key: '00112233445566778899aabbccddeeff', heartbeatMs: 50, deadAfterMs: 600 } }));
  assert.deepEqual(plan.restartNeeded, ['flows.max', 'flows.maxEmbryonic', 'metrics.port', 'peers.heartbeatMs', 'queues.maxLen']);
});

test('27.reload-plan: the same configuration changes nothing', () => {
  assert.deepEqual(planReload(load(), load()), { restartNeeded: [], live: [] });
});
