// The routing policies without root or a kernel queue: the load policy's
// rule (lib/policy/load-choice), its estimate of peers (peer-estimates), the
// policy on a fake entry queue, the weighted table both push, and who is
// eligible with weights.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import winston from 'winston';
import { eligibleHosts } from '../lib/eligibility';
import { LoadMeter } from '../lib/load-meter';
import { chooseHost, HEADROOM, type Situation } from '../lib/policy/load-choice';
import { LoadPolicy } from '../lib/policy/load';
import { PeerEstimates } from '../lib/policy/peer-estimates';
import { HashPolicy } from '../lib/policy/hash';
import { tableFor } from '../lib/policy/table';
import type { PeerView } from '../lib/peers';
import { FakeQueue } from './support/fake-queue';

const quiet = winston.createLogger({ silent: true });

function situation(o: Partial<Situation>): Situation {
  return { self: 0, ownWeight: 1, ownLoad: 0, selfEligible: true, peers: [], hashTarget: 0, random: 0, ...o };
}

const peer = (id: number, load: number, weight = 1) => ({ id, load, weight });

test('24.policy: a host at or below the threshold per weight keeps the connection, however idle its peers', () => {
  const s = situation({ ownLoad: 7, peers: [peer(1, 0), peer(2, 0)], hashTarget: 1 });
  assert.equal(chooseHost(s, 8), 0, '7 + 1 = 8: at the threshold');
  assert.equal(chooseHost({ ...s, ownLoad: 8 }, 8), 1, '9: above it, and above the mean');
  // Per weight: a host of weight 2 may carry twice as many.
  assert.equal(chooseHost({ ...s, ownLoad: 15, ownWeight: 2 }, 8), 0);
});

test('24.policy: above the threshold a host keeps the connection while it stays within the mean x (1 + HEADROOM)', () => {
  // Loads 10, 10, 10: the mean with the new one is 31/3 = 10.33; 11 <= 10.33 x 1.1.
  assert.ok(11 <= (31 / 3) * (1 + HEADROOM));
  assert.equal(chooseHost(situation({ ownLoad: 10, peers: [peer(1, 10), peer(2, 10)], hashTarget: 1 }), 0), 0);
  // 14, 8, 8: the mean is 31/3; 15 is above 11.37, and both peers are lighter.
  assert.equal(chooseHost(situation({ ownLoad: 14, peers: [peer(1, 8), peer(2, 8)], hashTarget: 1 }), 0), 1);
});

test('24.policy: a busy host sends the connection to the lighter of the Maglev choice and one random peer, not the least loaded of all', () => {
  const peers = [peer(1, 6), peer(2, 3), peer(3, 0)];
  const busy = { ownLoad: 20, peers, hashTarget: 1 };
  // The random draw falls among the peers other than the Maglev choice: [2, 3].
  assert.equal(chooseHost(situation({ ...busy, random: 0 }), 0), 2, 'Maglev 1 (6) against 2 (3): 2');
  assert.equal(chooseHost(situation({ ...busy, random: 0.99 }), 0), 3, 'Maglev 1 (6) against 3 (0): 3');
  // The Maglev choice wins when it is the lighter one.
  assert.equal(chooseHost(situation({ ...busy, hashTarget: 3, random: 0 }), 0), 3);
  // The Maglev table names this host: the draw is among all peers.
  assert.equal(chooseHost(situation({ ...busy, hashTarget: 0, random: 0 }), 0), 1);
});

test('24.policy: when both choices are no lighter than this host, it keeps the connection', () => {
  const s = situation({ ownLoad: 12, peers: [peer(1, 12), peer(2, 12), peer(3, 0)], hashTarget: 1, random: 0 });
  // The mean is (12 x 3 + 0 + 1) / 4 = 9.25: above it; choices 1 and 2 both carry 12.
  assert.equal(chooseHost(s, 0), 0);
});

test('24.policy: loads are compared per weight', () => {
  // Peer 1 carries 6 at weight 2 (3 each), peer 2 carries 4 at weight 1.
  const s = situation({ ownLoad: 20, peers: [peer(1, 6, 2), peer(2, 4, 1)], hashTarget: 2, random: 0 });
  assert.equal(chooseHost(s, 0), 1);
  // And the mean per weight: a weight-3 host with 12 (4 each) among peers at 4 each stays.
  assert.equal(chooseHost(situation({ ownLoad: 11, ownWeight: 3, peers: [peer(1, 4), peer(2, 4)], hashTarget: 1 }), 0), 0);
});

test('24.policy: a host that may not take new connections sends every one to a peer, whatever the loads; with no peer it keeps it', () => {
  const s = situation({ selfEligible: false, ownLoad: 0, peers: [peer(1, 100), peer(2, 50)], hashTarget: 1, random: 0 });
  assert.equal(chooseHost(s, 8), 2);
  assert.equal(chooseHost(situation({ ownLoad: 100, peers: [] }), 0), 0);
});

test('24.policy: a peer\'s estimate is its report plus our forwarded flows opened since, minus ours closed since; a new report starts over', () => {
  const e = new PeerEstimates(3);
  const at = (open: number, answered: number): void => {
    e.buffer[2 * 1] = open;
    e.buffer[2 * 1 + 1] = answered;
  };
  at(5, 5);
  assert.equal(e.estimate({ id: 1, load: 10, report: 'a' }), 10, 'what was open at the report is in it');
  e.noteSent(1);
  e.noteSent(1);
  assert.equal(e.estimate({ id: 1, load: 10, report: 'a' }), 12, 'two sent, not applied yet');
  at(7, 7);
  assert.equal(e.estimate({ id: 1, load: 10, report: 'a' }), 12, 'applied: the same two');
  at(4, 7);
  assert.equal(e.estimate({ id: 1, load: 10, report: 'a' }), 9, 'three of ours ended');
  assert.equal(e.estimate({ id: 1, load: 6, report: 'b' }), 6, 'a new report counts them itself');
  at(0, 7);
  assert.equal(e.estimate({ id: 1, load: 1, report: 'b' }), 0, 'never below 0');
  assert.equal(e.grow(5).estimate({ id: 1, load: 1, report: 'b' }), 0, 'a reload keeps what was counted');
});

function view(id: number, load: number, report: string): PeerView {
  return { id, address: `198.18.0.${id + 1}`, up: true, load, draining: false, healthy: true, report, lastHeardMs: 0, epoch: 1 };
}

function loadPolicy(own: () => number, peers: () => PeerView[], random = () => 0) {
  const meter = new LoadMeter({
    ports: [80], decisionMaxAgeMs: 0, reportMaxAgeMs: 100, idleMaxAgeMs: 1000, activity: () => 0, log: quiet, count: own, quick: null,
  });
  const policy = new LoadPolicy({ self: 0, threshold: 0, hostIds: 4, meter, peers, draining: () => false, log: quiet, random });
  const entry = new FakeQueue({ queueNum: 0, maxLen: 1, rcvBufBytes: 1, batchSize: 1, decisionTimeoutMs: 1 }, {} as never, policy.onDecide);
  policy.attach(entry);
  return { policy, entry };
}

test('24.policy: the load policy spreads a burst by its own sends, and follows the Maglev choice the data path names', () => {
  const peers = [view(1, 0, 'r1'), view(2, 0, 'r2'), view(3, 0, 'r3')];
  const { policy, entry } = loadPolicy(() => 30, () => peers);
  policy.setEligible(eligibleHosts(0, true, peers));
  entry.ask([1, 2, 3, 4, 5, 6], 2);
  const targets = entry.decided.at(-1)!.targets;
  // Maglev says 2; the random draw is the first other peer (1). Each send
  // makes its target heavier, so the burst alternates instead of herding.
  assert.deepEqual(targets, [2, 1, 2, 1, 2, 1]);
  assert.deepEqual(policy.decisions().byPeer, { 1: 3, 2: 3 });
});

test('24.policy: the load policy never sends to a peer of weight 0, and a host of weight 0 sends everything', () => {
  const peers = [view(1, 0, 'r1'), view(2, 50, 'r2')];
  const weights = new Map([[0, 1], [1, 0], [2, 1]]);
  const { policy, entry } = loadPolicy(() => 100, () => peers);
  policy.setEligible(eligibleHosts(0, true, peers, (id) => weights.get(id)!));
  entry.ask([1], 1);
  assert.deepEqual(entry.decided.at(-1)!.targets, [2], 'peer 1 is idle but has weight 0');
  weights.set(0, 0).set(1, 1);
  const { policy: p2, entry: e2 } = loadPolicy(() => 0, () => peers);
  p2.setEligible(eligibleHosts(0, true, peers, (id) => weights.get(id)!));
  e2.ask([1], 0);
  assert.equal(e2.decided.at(-1)!.targets[0], 1, 'this host has weight 0: the lighter peer, though this host is idle');
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
  const entry = new FakeQueue({ queueNum: 0, maxLen: 1, rcvBufBytes: 1, batchSize: 1, decisionTimeoutMs: 1 }, {} as never);
  const hash = new HashPolicy();
  hash.attach(entry);
  hash.setEligible({ hosts: [0, 2], weights: [1, 3], selfEligible: true, failOpen: false });
  assert.deepEqual(entry.tables.at(-1), [0, 2]);
});
