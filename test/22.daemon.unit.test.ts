// The daemon without root: a fake queue (test/support/fake-queue) in place of
// the addon's, a health probe the test controls, and a real peer (lib/peers)
// on loopback. What it holds: who gets new connections as peers come and go
// and services fail and recover, under both policies.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import winston from 'winston';
import { Daemon } from '../lib/daemon';
import { loadConfig, type DprConfig } from '../lib/config';
import { Peers } from '../lib/peers';
import { FakeQueue } from './support/fake-queue';
import { writeConfig } from './support/configs';
import { waitFor } from './support/wait';

const KEY = '00112233445566778899aabbccddeeff';
const quiet = winston.createLogger({ silent: true });

/** A UDP port free on both loopback addresses the two hosts use (the daemon binds its configured port). */
async function freePort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const HOST = (id: number) => ({ id, service: `198.18.0.${id + 1}`, cluster: `127.0.0.${id + 1}` });

function configText(policy: 'hash' | 'load', port: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    self: 0,
    hosts: [HOST(0), HOST(1)],
    clusterCidr: '127.0.0.0/8',
    policy,
    peers: { key: KEY, port, heartbeatMs: 50, deadAfterMs: 300 },
    health: { intervalMs: 20, fastIntervalMs: 20, fall: 2, rise: 2 },
    load: { threshold: 8 },
    flows: { stateFile: '' },
    ...extra,
  };
}

interface Bed {
  daemon: Daemon;
  entry: FakeQueue;
  peer: Peers;
  port: number;
  /** The configuration the next reload reads. */
  rewrite(text: Record<string, unknown>): void;
  /** The configurations the daemon's rules were installed for (reloads). */
  rules: Array<Readonly<DprConfig>>;
  setOwnHealth(ok: boolean): void;
  setOwnLoad(n: number): void;
  setPeer(o: { healthy?: boolean; load?: number }): void;
  stop(): Promise<void>;
}

async function start(policy: 'hash' | 'load'): Promise<Bed> {
  FakeQueue.reset();
  const port = await freePort();
  let file = writeConfig(configText(policy, port));
  const c = loadConfig({ file, env: {} });
  const rules: Array<Readonly<DprConfig>> = [];
  let ownHealthy = true;
  let ownLoad = 0;
  const peerState = { healthy: true, load: 0 };
  const daemon = new Daemon(c, {
    QueueClass: FakeQueue as never,
    probe: async () => (ownHealthy ? { ok: true } : { ok: false, error: 'ECONNREFUSED' }),
    countLoad: () => ownLoad,
    loadConfig: () => loadConfig({ file, env: {} }),
    applyRules: (config) => rules.push(config),
  });
  await daemon.start();
  const entry = FakeQueue.made.find((q) => q.engine.role === 'entry')!;
  // Host 1: a bare Peers on 127.0.0.2, heartbeating to the daemon.
  const peer = new Peers({
    self: 1, bindAddress: '127.0.0.2', port, peers: [{ id: 0, address: '127.0.0.1' }], key: Buffer.from(KEY, 'hex'),
    heartbeatMs: 50, deadAfterMs: 300, log: quiet,
  });
  peer.setLocal(peerState);
  await peer.start();
  return {
    daemon, entry, peer, port, rules,
    rewrite: (text) => (file = writeConfig(text)),
    setOwnHealth: (ok) => (ownHealthy = ok),
    setOwnLoad: (n) => (ownLoad = n),
    setPeer: (o) => {
      Object.assign(peerState, o);
      peer.setLocal(peerState);
      peer.announce();
    },
    stop: async () => {
      await peer.stop();
      await daemon.stop();
    },
  };
}

const hostsOf = (b: Bed): string => b.entry.lastHosts().join();

describe('22.daemon: hash policy', () => {
  let b: Bed;
  before(async () => {
    b = await start('hash');
  });
  after(async () => {
    await b?.stop();
  });

  test('new connections go to this host alone until the peer is heard, then to both', async () => {
    assert.equal(b.entry.tables[0]!.join(), '0', 'the first table, before any peer is heard');
    await waitFor('the peer in the table', () => hostsOf(b) === '0,1', 2000);
    assert.equal(b.daemon.status().failOpen, false);
  });

  test('a failing own service takes this host out of its own table, and the peer hears it at once', async () => {
    b.setOwnHealth(false);
    await waitFor('only the peer in the table', () => hostsOf(b) === '1', 2000);
    await waitFor('the peer sees host 0 unhealthy', () => b.peer.snapshot()[0]!.healthy === false, 1000);
    assert.equal(b.daemon.status().health.healthy, false);
    assert.equal(b.peer.snapshot()[0]!.up, true, 'an unhealthy host still heartbeats: it routes');
  });

  test('with no healthy host, this host serves everything itself (fail open)', async () => {
    b.setPeer({ healthy: false });
    await waitFor('fail open', () => b.daemon.status().failOpen, 2000);
    assert.equal(hostsOf(b), '0');
  });

  test('the own service recovers after `rise` good checks; the peer comes back when it says so', async () => {
    b.setOwnHealth(true);
    await waitFor('healthy again', () => b.daemon.status().health.healthy, 2000);
    assert.equal(hostsOf(b), '0');
    assert.equal(b.daemon.status().failOpen, false);
    const ports = b.daemon.status().health.ports;
    assert.ok(ports.every((p) => p.streak >= 2), `healthy after fewer than rise=2 good checks: ${JSON.stringify(ports)}`);
    b.setPeer({ healthy: true });
    await waitFor('both again', () => hostsOf(b) === '0,1', 2000);
  });

  test('a peer that stops heartbeating is taken out after deadAfterMs', async () => {
    await b.peer.stop();
    await waitFor('the peer out of the table', () => hostsOf(b) === '0', 2000);
  });
});

describe('22.daemon: load policy', () => {
  let b: Bed;
  before(async () => {
    b = await start('load');
    await waitFor('the peer eligible', () => b.daemon.status().liveHosts.includes(1), 2000);
  });
  after(async () => {
    await b?.stop();
  });

  test('the entry queue gets what the load policy decides on: weights, threshold, every exact load count', async () => {
    assert.deepEqual(b.entry.weights.at(-1), [1, 1]);
    assert.deepEqual(b.entry.thresholds, [8]);
    assert.ok(b.entry.loadCounts.length >= 1, 'a first count before any decision');
    b.setOwnLoad(20);
    await new Promise((r) => setTimeout(r, 600)); // past what /status lets be old
    b.daemon.status();
    assert.equal(b.entry.loadCounts.at(-1)![0], 20, 'the new count went to the queue');
  });

  test('a peer\'s heartbeat reaches the entry queue\'s board without JavaScript: the native estimate follows it', async () => {
    b.setPeer({ load: 7 });
    await waitFor('the report on the board', () => b.entry.engineForLoads().loadEstimate(1) === 7, 1000);
    b.setPeer({ load: 0 });
    await waitFor('the next report', () => b.entry.engineForLoads().loadEstimate(1) === 0, 1000);
  });

  test('an unhealthy peer is out of the table the decisions draw from; an unhealthy host keeps only healthy peers', async () => {
    b.setPeer({ healthy: false });
    await waitFor('peer 1 out of the table', () => hostsOf(b) === '0', 1000);
    b.setPeer({ healthy: true });
    b.setOwnHealth(false);
    await waitFor('only the peer in the table', () => hostsOf(b) === '1', 2000);
    b.setOwnHealth(true);
    await waitFor('healthy again', () => hostsOf(b) === '0,1', 2000);
  });

  test('a reload hands the queue the new threshold and weights', async () => {
    b.rewrite(configText('load', b.port, { hosts: [HOST(0), { ...HOST(1), weight: 3 }], load: { threshold: 2 } }));
    assert.deepEqual(await b.daemon.reload(), { ok: true, changed: ['hosts', 'load.threshold'] });
    assert.deepEqual(b.entry.weights.at(-1), [1, 3]);
    assert.equal(b.entry.thresholds.at(-1), 2);
  });

  test('a draining host tells the data path, which keeps every new connection', async () => {
    void b.daemon.drain(50);
    await waitFor('draining', () => b.daemon.status().draining, 1000);
    assert.equal(b.entry.draining.at(-1), true, 'the data path was told');
  });
});

describe('22.daemon: reload', () => {
  let b: Bed;
  before(async () => {
    b = await start('hash');
    await waitFor('the peer in the table', () => hostsOf(b) === '0,1', 2000);
  });
  after(async () => {
    await b?.stop();
  });

  test('a host added to the configuration joins: the data path, the rules and the peers are told', async () => {
    b.rewrite(configText('hash', b.port, { hosts: [HOST(0), HOST(1), HOST(2)] }));
    const r = await b.daemon.reload();
    assert.deepEqual(r, { ok: true, changed: ['hosts'] });
    assert.deepEqual(b.rules.at(-1)!.hosts.map((h) => h.id), [0, 1, 2], 'rules for all three');
    assert.equal(b.entry.hosts.at(-1)![1].length, 3, 'the entry engine knows host 2\'s addresses');
    assert.deepEqual(b.daemon.status().peers.map((p) => [p.id, p.up]), [[1, true], [2, false]], 'host 2 unheard, so not in the table');
    assert.equal(hostsOf(b), '0,1');
  });

  test('a host removed from the configuration gets no new connections, but stays in the data path and rules for its connections', async () => {
    b.rewrite(configText('hash', b.port, { hosts: [HOST(0), HOST(2)] }));
    const r = await b.daemon.reload();
    assert.deepEqual(r, { ok: true, changed: ['hosts'] });
    await waitFor('host 1 out of the table', () => hostsOf(b) === '0', 2000);
    assert.deepEqual(b.daemon.status().peers.map((p) => p.id), [2]);
    assert.deepEqual(b.rules.at(-1)!.hosts.map((h) => h.id), [0, 1, 2], 'host 1 retired, not forgotten');
    const [, cluster] = b.entry.hosts.at(-1)!;
    assert.notEqual(cluster[1], 0, 'host 1\'s cluster address still known to the engine');
  });

  test('a configuration that does not validate is refused naming the key, and the running one stays', async () => {
    b.rewrite({ ...configText('hash', b.port, { hosts: [HOST(0), HOST(2)] }), clusterCidr: '10.0.0.0/24' });
    const r = await b.daemon.reload();
    assert.equal(r.ok, false);
    assert.match(r.ok ? '' : `${r.key}: ${r.reason}`, /hosts\[0\]\.cluster: .* outside clusterCidr/);
    assert.deepEqual(b.daemon.status().peers.map((p) => p.id), [2], 'nothing changed');
  });

  test('a change that needs a restart is refused as a whole, naming it', async () => {
    const rulesBefore = b.rules.length;
    b.rewrite(configText('hash', b.port, { hosts: [HOST(0), HOST(1), HOST(2)], queues: { maxLen: 8 } }));
    const r = await b.daemon.reload();
    assert.deepEqual(r.ok ? null : r.key, 'queues.maxLen');
    assert.match(r.ok ? '' : r.reason, /restart dpr/);
    assert.equal(b.rules.length, rulesBefore, 'no half-applied reload: the host list change was not applied either');
    assert.deepEqual(b.daemon.status().peers.map((p) => p.id), [2]);
  });

  test('the heartbeat key rotates without a rejected heartbeat: a second key is accepted during the rotation', async () => {
    const NEW = 'ffeeddccbbaa99887766554433221100';
    // The cluster's peer 1 comes back, already signing with the new key.
    b.rewrite(configText('hash', b.port, { hosts: [HOST(0), HOST(1)], peers: { key: KEY, rotationKey: NEW, port: b.port, heartbeatMs: 50, deadAfterMs: 300 } }));
    assert.equal((await b.daemon.reload()).ok, true);
    b.peer.setKeys(Buffer.from(NEW, 'hex'), [Buffer.from(KEY, 'hex')]);
    const badMac = b.daemon.status().heartbeats!.rejected.bad_mac;
    await waitFor('host 1 back in the table', () => hostsOf(b) === '0,1', 3000);
    // Step two: sign with the new key, still accept the old one; then drop the old one everywhere.
    b.rewrite(configText('hash', b.port, { hosts: [HOST(0), HOST(1)], peers: { key: NEW, rotationKey: KEY, port: b.port, heartbeatMs: 50, deadAfterMs: 300 } }));
    assert.equal((await b.daemon.reload()).ok, true);
    // A round is done on every host before the next starts (docs/operations.md):
    // the daemon's heartbeat thread takes the new key at its next tick.
    await new Promise((r) => setTimeout(r, 150));
    b.peer.setKeys(Buffer.from(NEW, 'hex'));
    b.rewrite(configText('hash', b.port, { hosts: [HOST(0), HOST(1)], peers: { key: NEW, port: b.port, heartbeatMs: 50, deadAfterMs: 300 } }));
    assert.equal((await b.daemon.reload()).ok, true);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(b.daemon.status().heartbeats!.rejected.bad_mac, badMac, 'a heartbeat was rejected during the rotation');
    assert.equal(hostsOf(b), '0,1');
    // The peer (signing with NEW only) heard the daemon throughout too.
    assert.equal(b.peer.counters().rejected.bad_mac, 0);
  });
});
