// `dpr status` without a daemon: the view built from two /status samples, its
// table, and the progress line (terminal only, never mixed into other output).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import type { DaemonStatus } from '../lib/daemon';
import type { QueueStats } from '../lib/native';
import { buildView, duration, renderText } from '../lib/status-view';
import { Progress } from '../lib/progress';

function entry(local: number, forwarded: number): QueueStats {
  const flows = { pending: 0, syn: 2, established: 40, closing: 3 };
  return {
    newFlows: { local, forwarded, byHost: [local, forwarded] },
    flows: { ...flows, forwarded: { pending: 0, syn: 1, established: 20, closing: 1 }, expired: 0, closed: 0 },
  } as unknown as QueueStats;
}

function status(local: number, forwarded: number, over: Partial<DaemonStatus> = {}): DaemonStatus {
  return {
    self: 0, policy: 'hash', draining: false, startedAt: 1_000_000, load: 7, liveHosts: [0, 1], failOpen: false,
    health: { type: 'tcp', healthy: true, since: 1_000_000, ports: [{ port: 80, healthy: true, streak: 3, lastError: null, lastCheckMs: 1, checks: { ok: 3, failed: 0 }, listenerLost: 0 }] },
    peers: [
      { id: 2, address: '198.18.0.3', up: false, load: 0, draining: false, healthy: true, report: null, lastHeardMs: null, epoch: null },
      { id: 1, address: '198.18.0.2', up: true, load: 5, draining: true, healthy: true, report: '1:5', lastHeardMs: 1500, epoch: 1 },
    ],
    entry: entry(local, forwarded), serve: null,
    heartbeats: { sent: 9, sendErrors: 0, received: 9, accepted: 6, rejected: { truncated: 0, bad_magic: 0, bad_type: 0, unknown_peer: 0, wrong_source: 1, bad_mac: 2, replay: 0 }, downNotices: { sent: 0, accepted: 0, actedOn: 0 } },
    restored: { flows: 0, forwarded: 0 },
    eventLoopLagMaxMs: 0,
    ...over,
  };
}

const addresses = new Map([[0, '198.18.0.1']]);

test('70.status-view: rates come from the growth of the native new-flow counters over the sample', () => {
  const v = buildView({ status: status(100, 50), at: 1_125_000 }, { status: status(300, 100), at: 1_127_000 }, addresses);
  assert.deepEqual(v.connectionsPerSecond, { local: 100, forwarded: 25 });
  assert.equal(v.sampleMs, 2000);
  assert.equal(v.uptimeMs, 127_000);
  assert.deepEqual(v.hosts.map((h) => [h.id, h.self, h.up, h.address, h.heartbeatAgeMs]), [
    [0, true, true, '198.18.0.1', null],
    [1, false, true, '198.18.0.2', 1500],
    [2, false, false, '198.18.0.3', null],
  ]);
  assert.deepEqual(v.heartbeatsRejected?.total, 3);
  assert.deepEqual(v.flows?.forwarded, { pending: 0, syn: 1, established: 20, closing: 1 });
});

test('70.status-view: a daemon restarted between the samples gives no negative rate', () => {
  const v = buildView({ status: status(500, 500), at: 0 }, { status: status(10, 0), at: 1000 }, addresses);
  assert.deepEqual(v.connectionsPerSecond, { local: 0, forwarded: 0 });
});

test('70.status-view: the table names each host, its state, health, draining flag and heartbeat age', () => {
  const text = renderText(buildView({ status: status(0, 0), at: 1_000_000 }, { status: status(10, 10), at: 1_001_000 }, addresses));
  assert.match(text, /^dpr: host 0, hash policy, up 1s$/m);
  assert.match(text, /^0 \(this\)\s+198\.18\.0\.1\s+up\s+healthy\s+7\s+no\s+-$/m);
  assert.match(text, /^1\s+198\.18\.0\.2\s+up\s+healthy\s+5\s+yes\s+1\.5 s ago$/m);
  assert.match(text, /^2\s+198\.18\.0\.3\s+down\s+-\s+0\s+no\s+never$/m);
  assert.match(text, /^connections\/s\s+local 10\.0, forwarded 10\.0 \(over 1\.0 s\)$/m);
  assert.match(text, /^heartbeats rejected\s+3 \(wrong_source 1, bad_mac 2\)$/m);
  const drained = renderText(buildView({ status: status(0, 0), at: 0 }, { status: status(0, 0, { draining: true }), at: 1000 }, addresses));
  assert.match(drained, /DRAINING/);
  assert.match(drained, /^new connections to\s+this host only \(draining\)$/m);
});

test('70.status-view: with heartbeats over IPv6 (peers.family ipv6) each peer\'s IPv4 and IPv6 cluster addresses are in their own columns', () => {
  // The daemon names each peer by the address its heartbeats come from: its cluster6.
  const six = status(0, 0, {
    peers: [{ id: 1, address: '2001:2::2', up: true, load: 5, draining: false, healthy: true, report: '1:5', lastHeardMs: 80, epoch: 1 }],
  });
  const v4 = new Map([[0, '198.18.0.1'], [1, '198.18.0.2']]);
  const v6 = new Map([[0, '2001:2::1'], [1, '2001:2::2']]);
  const v = buildView({ status: six, at: 1_000_000 }, { status: six, at: 1_001_000 }, v4, v6);
  assert.deepEqual(v.hosts.map((h) => [h.id, h.address, h.address6, h.up]), [
    [0, '198.18.0.1', '2001:2::1', true],
    [1, '198.18.0.2', '2001:2::2', true],
  ]);
  assert.match(renderText(v), /^1\s+198\.18\.0\.2\s+2001:2::2\s+up\s+healthy\s+5\s+no\s+80 ms ago$/m);
});

test('70.status-view: an unhealthy host and a failing check are shown, and fail-open is said', () => {
  const sick = status(1, 1, {
    liveHosts: [0], failOpen: true,
    health: { type: 'http', healthy: false, since: 1_000_000, ports: [{ port: 80, healthy: false, streak: -3, lastError: 'status 503', lastCheckMs: 2, checks: { ok: 0, failed: 3 }, listenerLost: 0 }] },
  });
  sick.peers[1] = { ...sick.peers[1]!, healthy: false };
  const text = renderText(buildView({ status: sick, at: 1_001_000 }, { status: sick, at: 1_002_000 }, addresses));
  assert.match(text, /^0 \(this\)\s+198\.18\.0\.1\s+up\s+UNHEALTHY\s+/m);
  assert.match(text, /^1\s+198\.18\.0\.2\s+up\s+UNHEALTHY\s+/m);
  assert.match(text, /^new connections to\s+this host only \(no host is healthy: fail open\)$/m);
  assert.match(text, /^health checks\s+http on port 80: FAILING \(80: status 503\)$/m);
});

test('70.status-view: durations read as an operator would say them', () => {
  assert.deepEqual([5_000, 125_000, 7_260_000, 90_000_000].map(duration), ['5s', '2m5s', '2h1m', '1d1h']);
});

class Capture extends Writable {
  text = '';
  constructor(readonly isTTY: boolean) {
    super();
  }
  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

test('70.progress: a terminal gets one redrawn line, removed at the end; anything else gets nothing', () => {
  const tty = new Capture(true);
  const p = new Progress({ stream: tty });
  p.update('waiting for peers: 1/3 up');
  p.update('waiting for peers: 2/3 up');
  p.done();
  assert.equal(tty.text, '\r\x1b[2Kwaiting for peers: 1/3 up\r\x1b[2Kwaiting for peers: 2/3 up\r\x1b[2K');
  const pipe = new Capture(false);
  const q = new Progress({ stream: pipe });
  q.update('waiting for peers: 1/3 up');
  q.done();
  assert.equal(pipe.text, '');
});
