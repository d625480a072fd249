// Heartbeat traffic per host at 16, 64 and 256 hosts (issue 13, item 3):
// docs/peers.md quotes bench/control-traffic.ts, the watchers scheme meets
// the goal, and lib/peers.ts sends what its arithmetic says.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { BEGIN, END, FRAME, GOAL_BYTES_PER_SECOND, GOAL_DETECTION_MS, PEERS_DOC, allToAll, measure, proposed, table } from '../bench/control-traffic';
import { HEARTBEAT_LENGTH } from '../lib/heartbeat';

test('22.control-traffic: docs/peers.md holds the table bench/control-traffic.ts computes', () => {
  const text = fs.readFileSync(PEERS_DOC, 'utf8');
  const a = text.indexOf(BEGIN);
  const b = text.indexOf(END);
  assert.ok(a >= 0 && b > a, 'docs/peers.md lacks the traffic markers');
  assert.equal(text.slice(a, b + END.length), table(), 'docs/peers.md is out of date: run `node dist/bench/control-traffic.js --write`');
});

test('22.control-traffic: a heartbeat frame counts its payload and every header', () => {
  assert.equal(HEARTBEAT_LENGTH, 64);
  assert.equal(FRAME.ipv4, 64 + 8 + 20 + 14 + 4);
  assert.equal(FRAME.ipv6, 64 + 8 + 40 + 14 + 4);
});

test('22.control-traffic: all-to-all does not fit at 256 hosts, watchers do, and exclude a dead peer in time', () => {
  const today = allToAll(256, 100, 300);
  assert.equal(today.packetsOut, 2550);
  assert.ok(today.bytesOut + today.bytesIn > GOAL_BYTES_PER_SECOND);
  const p = proposed(256);
  assert.equal(p.packetsOut, 8 * 10 + 247);
  assert.ok(p.bytesOut + p.bytesIn <= GOAL_BYTES_PER_SECOND, `${p.bytesOut + p.bytesIn} B/s`);
  assert.ok(p.detectionMs <= GOAL_DETECTION_MS);
  // Small clusters: every peer is a watcher, all-to-all at 100 ms.
  assert.deepEqual(proposed(9), allToAll(9, 100, 300));
});

test('22.control-traffic: lib/peers.ts sends and accepts what the watchers\' arithmetic says (16 hosts, 100 ms; all-to-all would be 150)', async () => {
  const computed = proposed(16).packetsOut;
  assert.equal(computed, 8 * 10 + 7);
  const m = await measure(16, 100, 2);
  // Timers on a busy shared machine run late, never early: allow 15% fewer.
  assert.ok(m.sentPerHost >= computed * 0.85 && m.sentPerHost <= computed * 1.05, `sent ${m.sentPerHost.toFixed(1)}/s per host, computed ${computed}`);
  assert.ok(m.acceptedPerHost >= computed * 0.85 && m.acceptedPerHost <= computed * 1.05, `accepted ${m.acceptedPerHost.toFixed(1)}/s per host, computed ${computed}`);
});
