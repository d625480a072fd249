// The daemon's IPv6 wiring without root (issue 15): the addresses the
// engines get, reloads, health checks over both families, the flow-table
// file with IPv6 flows, and what `dpr status` and the metrics show.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import winston from 'winston';
import { loadConfig } from '../lib/config';
import { Daemon, type DaemonStatus } from '../lib/daemon';
import { loadFlows, saveFlows } from '../lib/flow-state';
import { FlowSnapshots } from '../lib/flow-snapshots';
import { makeDualProbe, type HealthSettings } from '../lib/health';
import { createMetrics } from '../lib/metrics';
import { FLOW_WORDS, FLOW_WORDS6, type NativeQueue, type QueueStats } from '../lib/native';
import { engineOptions } from '../lib/plan';
import { planReload } from '../lib/reload-plan';
import { buildView, renderText } from '../lib/status-view';
import { clusterConfig, dualStack, writeConfig } from './support/configs';
import { load } from './support/config-checks';
import { FakeQueue } from './support/fake-queue';

const quiet = winston.createLogger({ silent: true });

test('22.daemon.ipv6: the engines get four big-endian words per host id, zero for an id with no host; none without IPv6', () => {
  const c = load(dualStack({ ...clusterConfig(0, { hosts: 3 }), hosts: (clusterConfig(0, { hosts: 3 }).hosts as Array<{ id: number }>).filter((h) => h.id !== 1) }));
  const o = engineOptions(c, 'entry');
  assert.deepEqual([...o.serviceAddrs6!], [0x20010002, 0, 0, 1, 0, 0, 0, 0, 0x20010002, 0, 0, 3]);
  assert.deepEqual([...o.clusterAddrs6!], [0x20010002, 0, 0, 1, 0, 0, 0, 0, 0x20010002, 0, 0, 3]);
  const v4 = engineOptions(load(clusterConfig(0, { hosts: 2 })), 'serve');
  assert.equal(v4.serviceAddrs6, undefined);
  assert.equal(v4.clusterAddrs6, undefined);
});

test('22.daemon.ipv6: a reload hands both queues the IPv6 addresses with the IPv4 ones; this host\'s own IPv6 address needs a restart', async () => {
  FakeQueue.reset();
  // Cluster addresses on loopback, as 22.daemon: the daemon binds its heartbeat socket there.
  const text = (hosts: number): Record<string, unknown> => {
    const c = dualStack(clusterConfig(0, { hosts }, { clusterCidr: '127.0.0.0/8', flows: { stateFile: '' }, metrics: { port: 0 }, peers: { key: '00112233445566778899aabbccddeeff', port: 0, heartbeatMs: 50, deadAfterMs: 300 } }));
    for (const h of c.hosts as Array<Record<string, unknown>>) h.cluster = `127.0.0.${(h.id as number) + 1}`;
    return c;
  };
  let file = writeConfig(text(2));
  const daemon = new Daemon(loadConfig({ file, env: {} }), {
    QueueClass: FakeQueue as never, probe: async () => ({ ok: true }), countLoad: () => 0,
    loadConfig: () => loadConfig({ file, env: {} }), applyRules: () => undefined,
  });
  await daemon.start();
  try {
    assert.deepEqual(daemon.status().addresses, { service: '198.18.0.1', cluster: '127.0.0.1', service6: '2001:2::1', cluster6: '2001:2::1' });
    file = writeConfig(text(3));
    assert.deepEqual(await daemon.reload(), { ok: true, changed: ['hosts'] });
    for (const q of FakeQueue.made) {
      const [service6, cluster6] = q.hosts6.at(-1)!;
      assert.equal(service6.length, 12, `${q.engine.role}: three hosts of four words`);
      assert.deepEqual(service6.slice(8), [0x20010002, 0, 0, 3]);
      assert.deepEqual(cluster6.slice(8), [0x20010002, 0, 0, 3]);
    }
    const moved = text(3);
    (moved.hosts as Array<Record<string, unknown>>)[0]!.service6 = '2001:2::99';
    file = writeConfig(moved);
    const r = await daemon.reload();
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.key, 'hosts[0].service6');
  } finally {
    await daemon.stop();
  }
  // A cluster that gains IPv6 needs a restart too; a peer's IPv6 address is live.
  const v4 = load(clusterConfig(0, { hosts: 2 }));
  assert.deepEqual(planReload(v4, load(dualStack(clusterConfig(0, { hosts: 2 })))).restartNeeded.slice(0, 2), ['hosts[0].service6', 'hosts[0].cluster6']);
  const peerMoved = dualStack(clusterConfig(0, { hosts: 2 }));
  (peerMoved.hosts as Array<Record<string, unknown>>)[1]!.cluster6 = '2001:2::77';
  assert.deepEqual(planReload(load(dualStack(clusterConfig(0, { hosts: 2 }))), load(peerMoved)), { restartNeeded: [], live: ['hosts'] });
});

/** A TCP server on `host` (a port the kernel picks), and its port. */
async function listen(host: string): Promise<{ port: number; close(): Promise<void> }> {
  const server = net.createServer((s) => s.destroy());
  await new Promise<void>((r) => server.listen({ host, port: 0, ipv6Only: false }, () => r()));
  return { port: (server.address() as net.AddressInfo).port, close: () => new Promise((r) => server.close(() => r())) };
}

test('22.daemon.ipv6: a dual-stack health check fails when the service answers on one family only, and says which', async (t) => {
  if (!os.networkInterfaces().lo?.some((a) => a.family === 'IPv6')) return t.skip('no ::1 on lo here');
  const settings = (ports: number[]): HealthSettings => ({ type: 'tcp', address: '127.0.0.1', ports, intervalMs: 1000, fastIntervalMs: 100, timeoutMs: 1000, fall: 1, rise: 1, listenerCheckMs: 0, http: { path: '/', statuses: '200-399', host: '' } });
  const v4only = await listen('127.0.0.1');
  const both = await listen('::');
  try {
    const p1 = makeDualProbe(settings([v4only.port]), '198.18.0.1', '::1', '2001:2::1');
    const r1 = await p1(v4only.port);
    assert.equal(r1.ok, false);
    assert.match(r1.error!, /^IPv6: ECONNREFUSED/);
    const p2 = makeDualProbe(settings([both.port]), '198.18.0.1', '::1', '2001:2::1');
    assert.deepEqual(await p2(both.port), { ok: true });
  } finally {
    await v4only.close();
    await both.close();
  }
});

/** `n` flows of `per` words, each a distinct pattern, ages `age`. */
function flows(n: number, per: number, age: number): Uint32Array {
  const w = new Uint32Array(n * per);
  for (let i = 0; i < w.length; i++) w[i] = (i % per === per - 1) ? age : 0x1000 * i + 7;
  return w;
}

test('22.daemon.ipv6: the flow-table file keeps IPv6 flows beside IPv4 ones; a file from before IPv6 still loads', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpr-flows6-'));
  try {
    const file = path.join(dir, 'flows.bin');
    const v4 = flows(3, FLOW_WORDS, 100);
    const v6 = flows(2, FLOW_WORDS6, 200);
    await saveFlows(file, v4, v6, 1_000_000);
    const back = loadFlows(file, 1_000_050)!;
    assert.equal(back.savedAgoMs, 50);
    assert.deepEqual([...back.words], [...flows(3, FLOW_WORDS, 150)]);
    assert.deepEqual([...back.words6], [...flows(2, FLOW_WORDS6, 250)]);
    // Cut short, or a count that does not match the size: not read.
    const whole = fs.readFileSync(file);
    fs.writeFileSync(file, whole.subarray(0, whole.length - 4));
    assert.equal(loadFlows(file), null);
    // Version 2, as dpr wrote it before IPv6: header, then IPv4 flows only.
    const header = Buffer.alloc(16);
    header.write('DPRF', 0, 'ascii');
    header.writeUInt32LE(2, 4);
    header.writeDoubleLE(1_000_000, 8);
    fs.writeFileSync(file, Buffer.concat([header, Buffer.from(v4.buffer)]));
    const old = loadFlows(file, 1_000_010)!;
    assert.deepEqual([...old.words], [...flows(3, FLOW_WORDS, 110)]);
    assert.equal(old.words6.length, 0);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('22.daemon.ipv6: snapshots save the IPv6 table and a restart imports it', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpr-flows6-'));
  try {
    const file = path.join(dir, 'flows.bin');
    const imported: Uint32Array[] = [];
    const zero = { syn: 0, probation: 0, established: 0, closing: 0 };
    const entry = {
      packets: () => 1,
      exportFlowsAsync: async () => flows(1, FLOW_WORDS, 5),
      exportFlows6Async: async () => flows(2, FLOW_WORDS6, 5),
      importFlows: (w: Uint32Array) => w.length / FLOW_WORDS,
      importFlows6: (w: Uint32Array) => (imported.push(w), w.length / FLOW_WORDS6),
      stats: () => ({ flows: { forwarded: zero } }) as unknown as QueueStats,
    } as unknown as NativeQueue;
    await new FlowSnapshots(file, 0, quiet).stop(entry);
    const restored = new FlowSnapshots(file, 0, quiet).restore(entry);
    assert.equal(restored.flows, 3, 'one IPv4 flow and two IPv6 flows taken');
    assert.equal(imported[0]!.length, 2 * FLOW_WORDS6);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

function dualStatus(): DaemonStatus {
  const q = (packets: number, flows: number) => ({
    newFlows: { local: 0, forwarded: 0, byHost: [] }, actions: { accept: 0, forward: 0, restore: 0, drop: 0 }, malformed: {},
    flows: { pending: 0, syn: 0, established: 4, closing: 0, forwarded: { pending: 0, syn: 0, established: 1, closing: 0 }, expired: 0, closed: 0 },
    queue: { batches: 0, batchPackets: 0, recvErrors: 0, enobufs: 0, sendErrors: 0, verdictErrors: 0 },
    ipv6: { packets, flows },
  }) as unknown as QueueStats;
  return {
    self: 0, policy: 'hash', draining: false, startedAt: 0, load: 0, liveHosts: [0, 1], failOpen: false,
    health: { type: 'tcp', healthy: true, since: 0, ports: [] },
    peers: [{ id: 1, address: '198.18.0.2', up: true, load: 0, draining: false, healthy: true, report: null, lastHeardMs: 10, epoch: 1 }],
    entry: q(30, 3), serve: q(12, 0), heartbeats: null, restored: { flows: 0, forwarded: 0 }, eventLoopLagMaxMs: 0,
    addresses: { service: '198.18.0.1', cluster: '198.18.0.1', service6: '2001:2::1', cluster6: '2001:2::1' },
  };
}

test('22.daemon.ipv6: dpr status shows the IPv6 addresses and the IPv6 flows and packets', () => {
  const s = { status: dualStatus(), at: 1000 };
  const v = buildView(s, s, new Map([[0, '198.18.0.1'], [1, '198.18.0.2']]), new Map([[0, '2001:2::1'], [1, '2001:2::2']]));
  assert.deepEqual(v.ipv6, { service: '2001:2::1', packets: 42, flows: 3 });
  const text = renderText(v);
  assert.match(text, /^HOST\s+ADDRESS\s+IPV6 ADDRESS\s+STATE/m);
  assert.match(text, /^1\s+198\.18\.0\.2\s+2001:2::2\s+up/m);
  assert.match(text, /^IPv6\s+service 2001:2::1: 3 flows, 42 packets$/m);
  // An IPv4-only host: no IPv6 column, no IPv6 line.
  const v4 = { status: { ...dualStatus(), addresses: { service: '198.18.0.1', cluster: '198.18.0.1' } }, at: 1000 };
  const text4 = renderText(buildView(v4, v4, new Map([[0, '198.18.0.1']])));
  assert.doesNotMatch(text4, /IPV6|IPv6/);
});

test('22.daemon.ipv6: the metrics carry the IPv6 packets by queue, the IPv6 flows and this host\'s addresses', async () => {
  const m = createMetrics({ status: dualStatus });
  m.refresh();
  const text = await m.registry.metrics();
  assert.match(text, /^dpr_ipv6_packets_total\{queue="entry"\} 30$/m);
  assert.match(text, /^dpr_ipv6_packets_total\{queue="serve"\} 12$/m);
  assert.match(text, /^dpr_ipv6_flows 3$/m);
  assert.match(text, /^dpr_address_info\{family="6",role="service",address="2001:2::1"\} 1$/m);
  assert.match(text, /^dpr_address_info\{family="4",role="cluster",address="198.18.0.1"\} 1$/m);
});
