// The routing policies without root or a kernel queue. The load policy's
// decisions run in the native engine (native/load_decider.h, its rule in
// native/load_choice.h): driven here through an Engine with SYNs, this
// host's load as the load meter calibrates it, and peers' reports as the
// heartbeat thread publishes them. Then who is eligible with weights, and
// the weighted table both policies push.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { eligibleHosts } from '../lib/eligibility';
import { HashPolicy } from '../lib/policy/hash';
import { LoadPolicy } from '../lib/policy/load';
import { tableFor } from '../lib/policy/table';
import type { DprConfig } from '../lib/config';
import { parseIpv4 } from '../lib/ipv4';
import { Engine, type NativeEngine } from '../lib/native';
import { baseOptions } from './support/fixture-engines';
import { CLIENT } from './support/cluster';
import { ACK, FIN, SYN, buildTcp4 } from './support/packet-builder';
import { FakeQueue } from './support/fake-queue';

// Five hosts, 0 to 4, so the second choice has more than one peer to draw from.
const SERVICE5 = Uint32Array.from([10, 11, 12, 13, 14], (n) => parseIpv4(`198.18.0.${n}`));
const CLUSTER5 = Uint32Array.from([10, 11, 12, 13, 14], (n) => parseIpv4(`198.19.0.${n}`));
const client = parseIpv4(CLIENT);

interface Setup { hosts: number; maglev: number; threshold?: number; seed?: number; weights?: number[]; own: number; loads: Record<number, number>; seldom?: number[] }

/**
 * An entry engine of `hosts` hosts whose Maglev table names `maglev` for
 * almost every client and every host at least once (the table says who is
 * eligible), with this host's load and the peers' reports as given.
 */
function engine(s: Setup): NativeEngine {
  const e = new Engine(baseOptions({
    policy: 'load', loadThreshold: s.threshold ?? 0, randomSeed: s.seed ?? 1,
    serviceAddrs: SERVICE5.slice(0, s.hosts), clusterAddrs: CLUSTER5.slice(0, s.hosts),
  }));
  const table = new Uint16Array(251).fill(s.maglev);
  for (let id = 0; id < s.hosts; ++id) table[id] = id;
  e.setLookupTable(table);
  if (s.weights) e.setWeights(Uint8Array.from(s.weights));
  e.calibrateLoad(s.own, -1);
  for (const [id, load] of Object.entries(s.loads)) e.publishPeerLoad(Number(id), load);
  for (const id of s.seldom ?? []) e.setPeerHeardOften(id, false);
  return e;
}

/** Client ports the table sends to its main host (the few other slots left out). */
function portsTo(e: NativeEngine, host: number, count: number): number[] {
  const out: number[] = [];
  for (let port = 40000; out.length < count; ++port) if (e.hashTarget(client, port) === host) out.push(port);
  return out;
}

function syn(e: NativeEngine, port: number, now = 1000): number {
  const o = e.process(buildTcp4({ src: CLIENT, dst: '198.18.0.10', sport: port, dport: 80, flags: SYN, seq: 1 }), false, now);
  assert.ok(o.action === 'accept' || o.action === 'forward', `a SYN is routed (${o.action})`);
  return o.target;
}

/** Where one SYN goes, for each of `seeds` random seeds (a fresh engine each). */
function targetsOverSeeds(s: Setup, seeds = 24): Set<number> {
  const out = new Set<number>();
  for (let seed = 1; seed <= seeds; ++seed) {
    const e = engine({ ...s, seed });
    out.add(syn(e, portsTo(e, s.maglev, 1)[0]));
  }
  return out;
}

test('24.policy: a host at or below the threshold per weight keeps the connection, however idle its peers', () => {
  const e = engine({ hosts: 3, maglev: 1, threshold: 8, own: 7, loads: { 1: 0, 2: 0 } });
  const [a, b] = portsTo(e, 1, 2);
  assert.equal(syn(e, a), 0, '7 + 1 = 8: at the threshold');
  assert.notEqual(syn(e, b), 0, 'the one it kept counts: 9 is above the threshold and the mean');
  const w = engine({ hosts: 3, maglev: 1, threshold: 8, own: 15, weights: [2, 1, 1], loads: { 1: 0, 2: 0 } });
  assert.equal(syn(w, portsTo(w, 1, 1)[0]), 0, 'weight 2 carries twice as many: 16 / 2 = 8');
});

test('24.policy: above the threshold a host keeps the connection while it stays within the cluster mean x 1.1', () => {
  // 10, 10, 10: with the new one the mean is 31 / 3 = 10.33, and 11 <= 11.37.
  const even = engine({ hosts: 3, maglev: 1, own: 10, loads: { 1: 10, 2: 10 } });
  assert.equal(syn(even, portsTo(even, 1, 1)[0]), 0);
  // 14, 8, 8: 15 is above 11.37, and both peers are lighter.
  const heavy = engine({ hosts: 3, maglev: 1, own: 14, loads: { 1: 8, 2: 8 } });
  assert.notEqual(syn(heavy, portsTo(heavy, 1, 1)[0]), 0);
});

test('24.policy: a busy host sends the connection to the lighter of the Maglev choice and one random peer, not the least loaded of all', () => {
  // Maglev names 1 (6); the random peer is 2 (3), 3 (0) or 4 (9): the lighter of each pair.
  const busy = { hosts: 5, maglev: 1, own: 20, loads: { 1: 6, 2: 3, 3: 0, 4: 9 } };
  assert.deepEqual([...targetsOverSeeds(busy)].sort(), [1, 2, 3], 'never 4, and 1 when 4 is drawn');
  // The Maglev choice wins whenever it is the lightest.
  assert.deepEqual([...targetsOverSeeds({ ...busy, maglev: 3 })], [3]);
});

test('24.policy: the random choice is drawn among the peers whose every report reaches this host, when there are any', () => {
  // As above, but 2 and 3 report only once a slow round (clusters of more than 9 hosts): the draw is 4 (9), and 1 (6) wins.
  const busy = { hosts: 5, maglev: 1, own: 20, loads: { 1: 6, 2: 3, 3: 0, 4: 9 } };
  assert.deepEqual([...targetsOverSeeds({ ...busy, seldom: [2, 3] })], [1]);
  // None heard often (4 neither): the draw is among all again.
  assert.deepEqual([...targetsOverSeeds({ ...busy, seldom: [2, 3, 4] })].sort(), [1, 2, 3]);
});

test('24.policy: when both choices are no lighter than this host, it keeps the connection', () => {
  // The mean is (12 x 4 + 0 + 1) / 5 = 9.8: above it; 1 and 2 carry 12, 3 carries 0.
  const s = { hosts: 5, maglev: 1, own: 12, loads: { 1: 12, 2: 12, 3: 0, 4: 12 } };
  assert.deepEqual([...targetsOverSeeds(s)].sort(), [0, 3]);
});

test('24.policy: a connection moves only if the peer, with it, stays lighter than this host without it', () => {
  // 10 here; Maglev names 1 (9), the draw 2 (9), 3 or 4 (0). A peer of 9 would
  // carry 10 with it, no lighter than this host: the connection stays (a count
  // off by one would otherwise shuffle connections between equal hosts).
  const s = { hosts: 5, maglev: 1, own: 10, loads: { 1: 9, 2: 9, 3: 0, 4: 0 } };
  assert.deepEqual([...targetsOverSeeds(s)].sort(), [0, 3, 4]);
  // Per weight: a weight-2 peer with 18 (9.5 each with it) still takes it
  // from 10 (the mean per weight, 39 / 4, x 1.1 is below 11; peer 2 carries 10).
  const big = engine({ hosts: 3, maglev: 1, own: 10, weights: [1, 2, 1], loads: { 1: 18, 2: 10 } });
  assert.equal(syn(big, portsTo(big, 1, 1)[0]), 1);
});

test('24.policy: loads are compared per weight', () => {
  // Peer 1 carries 6 at weight 2 (3 each), peer 2 carries 4 at weight 1; Maglev names 2.
  const e = engine({ hosts: 3, maglev: 2, own: 20, weights: [1, 2, 1], loads: { 1: 6, 2: 4 } });
  assert.equal(syn(e, portsTo(e, 2, 1)[0]), 1);
  // A weight-3 host with 11 (4 each with the new one) among peers at 4 stays.
  const big = engine({ hosts: 3, maglev: 1, own: 11, weights: [3, 1, 1], loads: { 1: 4, 2: 4 } });
  assert.equal(syn(big, portsTo(big, 1, 1)[0]), 0);
});

test('24.policy: a host that may not take new connections sends every one to a peer, whatever the loads; with no peer it keeps it', () => {
  // Weight 0 here: idle, yet the lighter of the two peers gets it.
  const drained = engine({ hosts: 3, maglev: 1, own: 0, weights: [0, 1, 1], loads: { 1: 100, 2: 50 } });
  assert.equal(syn(drained, portsTo(drained, 1, 1)[0]), 2);
  // A peer of weight 0 is never chosen, however idle.
  const w0 = engine({ hosts: 3, maglev: 1, own: 100, weights: [1, 0, 1], loads: { 1: 0, 2: 50 } });
  assert.equal(syn(w0, portsTo(w0, 1, 1)[0]), 2);
  // Out of the table (unhealthy, draining): the table names only peers.
  const out = engine({ hosts: 3, maglev: 1, own: 0, loads: { 1: 100, 2: 50 } });
  out.setLookupTable(Uint16Array.from({ length: 251 }, (_, i) => (i % 7 === 0 ? 2 : 1)));
  assert.equal(syn(out, portsTo(out, 1, 1)[0]), 2);
  const alone = engine({ hosts: 3, maglev: 0, own: 100, loads: {} });
  alone.setLookupTable(new Uint16Array(251).fill(0));
  assert.equal(syn(alone, 40000), 0);
});

test('24.policy: a table slot naming a host with no address (a hole) never makes it a candidate', () => {
  // Found by the fuzzer: the draw picked the hole, and the SYN was rewritten to address 0.
  const service = Uint32Array.from([SERVICE5[0]!, SERVICE5[1]!, 0]);
  const e = new Engine(baseOptions({ policy: 'load', randomSeed: 7, serviceAddrs: service, clusterAddrs: Uint32Array.from([CLUSTER5[0]!, CLUSTER5[1]!, 0]) }));
  const table = new Uint16Array(251).fill(2);
  table[0] = 0;
  table[1] = 1;
  e.setLookupTable(table);
  e.calibrateLoad(100, -1);
  e.publishPeerLoad(1, 50);
  const targets = new Set(Array.from({ length: 20 }, (_, i) => syn(e, 40000 + i)));
  assert.deepEqual([...targets], [1]);
});

test('24.policy: a peer\'s estimate is its report plus our forwarded flows opened since, minus ours closed since; a new report starts over', () => {
  const e = engine({ hosts: 3, maglev: 1, own: 100, loads: { 1: 10, 2: 20 } });
  assert.equal(e.loadEstimate(1), 10, 'the report');
  const ports = portsTo(e, 1, 3);
  for (const p of ports) assert.equal(syn(e, p), 1);
  assert.equal(e.loadEstimate(1), 13, 'three sent since');
  e.publishPeerLoad(1, 6);
  assert.equal(e.loadEstimate(1), 6, 'a new report counts them itself');
  const fin = buildTcp4({ src: CLIENT, dst: '198.18.0.10', sport: ports[0], dport: 80, flags: FIN | ACK, seq: 2, ack: 1 });
  assert.equal(e.process(fin, false, 1100).target, 1);
  assert.equal(e.loadEstimate(1), 5, 'one of ours ended since the report');
  e.publishPeerLoad(1, 0);
  for (const p of ports.slice(1)) e.process(buildTcp4({ src: CLIENT, dst: '198.18.0.10', sport: p, dport: 80, flags: FIN | ACK, seq: 2, ack: 1 }), false, 1200);
  assert.equal(e.loadEstimate(1), 0, 'never below 0');
});

test('24.policy: a burst spreads by our own sends instead of herding on one report', () => {
  const e = engine({ hosts: 3, maglev: 1, own: 100, loads: { 1: 0, 2: 0 } });
  const targets = portsTo(e, 1, 6).map((p) => syn(e, p));
  const count = (h: number) => targets.filter((t) => t === h).length;
  assert.deepEqual([count(1), count(2)], [3, 3], `targets ${targets}`);
});

test('24.policy: the load policy hands the entry queue the weights by id and the threshold, again on a reload', () => {
  // What of the configuration the policy reads: the host list's weights, load.threshold.
  const hosts = [{ id: 0, weight: 1 }, { id: 2, weight: 3 }] as DprConfig['hosts'];
  const config = { hosts, load: { threshold: 5 } } as DprConfig;
  const entry = new FakeQueue({ queueNum: 0, maxLen: 1, rcvBufBytes: 1, batchSize: 1 }, {} as never);
  const policy = new LoadPolicy(config);
  policy.attach(entry);
  assert.deepEqual(entry.weights.at(-1), [1, 1, 3]);
  assert.deepEqual(entry.thresholds, [5]);
  policy.reconfigure({ ...config, load: { ...config.load, threshold: 9 } });
  assert.deepEqual(entry.thresholds, [5, 9]);
});

test('24.policy: eligibility leaves out hosts of weight 0, and fails open when only they are left', () => {
  const up = (id: number) => ({ id, up: true, healthy: true, draining: false });
  const w = (m: Record<number, number>) => (id: number) => m[id] ?? 1;
  assert.deepEqual(eligibleHosts(0, true, [up(1), up(2)], w({ 1: 0 })), { hosts: [0, 2], weights: [1, 1], selfEligible: true, failOpen: false });
  assert.deepEqual(eligibleHosts(0, true, [up(1)], w({ 0: 0, 1: 3 })), { hosts: [1], weights: [3], selfEligible: false, failOpen: false });
  assert.deepEqual(eligibleHosts(0, true, [up(1)], w({ 0: 0, 1: 0 })), { hosts: [0], weights: [0], selfEligible: true, failOpen: true });
});

test('24.policy: the table both policies push gives each host slots in proportion to its weight', () => {
  const table = tableFor({ hosts: [0, 1, 2], weights: [1, 2, 1], selfEligible: true, failOpen: false });
  const share = (id: number) => table.filter((h) => h === id).length / table.length;
  assert.ok(Math.abs(share(1) - 0.5) < 0.001, `weight 2 of 4: ${share(1)}`);
  assert.ok(Math.abs(share(0) - 0.25) < 0.001);
  // Failing open this host serves alone, whatever its weight.
  assert.deepEqual([...new Set(tableFor({ hosts: [0], weights: [0], selfEligible: true, failOpen: true }))], [0]);
  const entry = new FakeQueue({ queueNum: 0, maxLen: 1, rcvBufBytes: 1, batchSize: 1 }, {} as never);
  const hash = new HashPolicy();
  hash.attach(entry);
  hash.setEligible({ hosts: [0, 2], weights: [1, 3], selfEligible: true, failOpen: false });
  assert.deepEqual(entry.tables.at(-1), [0, 2]);
});
