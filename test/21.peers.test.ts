import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import winston from 'winston';
import { encodeHeartbeat, HEARTBEAT_LENGTH, parseHeartbeat, verifyHeartbeatMac } from '../lib/heartbeat';
import { Peers, type PeersOptions } from '../lib/peers';
import { loadKey } from '../lib/keys';

// Windows wide enough for a busy 2-core machine: a 100 ms heartbeat, dead
// after 600 ms. Every socket binds port 0 (a free port the kernel picks) and
// peers are told each other's ports once bound: fixed ports in the ephemeral
// range could be anyone's.
const HB = 100;
const DEAD = 600;
const KEY = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
const quiet = winston.createLogger({ silent: true });
const LOCAL = '127.0.0.1';
// A bound for what takes a period or two (a datagram sent out of turn and
// read at the receiver's next tick): wide, for a busy machine. How fast it
// really is, bench/ measures.
const SOON = 3000;

function makePeer(self: number, load: number, extra: Partial<PeersOptions> = {}): Peers {
  const p = new Peers({ self, bindAddress: LOCAL, port: 0, peers: [], key: KEY, heartbeatMs: HB, deadAfterMs: DEAD, log: quiet, ...extra });
  p.setLocal({ load });
  return p;
}

/** Tells every started peer where the others listen. */
function introduce(peers: ReadonlyArray<Peers | undefined>): void {
  const list = peers.map((p, id) => ({ id, address: LOCAL, port: p!.localPort() }));
  for (const p of peers) p!.setPeers(list);
}

/**
 * Every event a peer emits, in order: 'up 1', 'down 1', 'change'. Events come
 * from the heartbeat thread and reach JavaScript a turn of the event loop
 * after the snapshot already shows what they tell, so a test that counts
 * events waits for the events, never for the snapshot (on a busy machine
 * that turn is long enough to see the snapshot first).
 */
function record(p: Peers): string[] {
  const events: string[] = [];
  p.on('up', (id) => events.push(`up ${id}`));
  p.on('down', (id) => events.push(`down ${id}`));
  p.on('change', () => events.push('change'));
  return events;
}

interface Cluster {
  peers: Peers[];
  /** events[i]: what peer i emitted since before it started. */
  events: string[][];
}

/** Peers with ids 0..n-1 on 127.0.0.1, recorded, started and introduced. */
async function startCluster(n: number, load: (self: number) => number, extra: (self: number) => Partial<PeersOptions> = () => ({})): Promise<Cluster> {
  const peers = Array.from({ length: n }, (_, self) => makePeer(self, load(self), extra(self)));
  const events = peers.map(record);
  await Promise.all(peers.map((p) => p.start()));
  introduce(peers);
  return { peers, events };
}

/** Every peer has been told that every other one came up. */
function everyoneToldUp(events: readonly string[][]): boolean {
  return events.every((seen, self) => events.every((_, id) => id === self || seen.includes(`up ${id}`)));
}

async function waitFor(what: string, cond: () => boolean, timeoutMs: number): Promise<number> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return Date.now() - start;
}

function view(p: Peers, id: number) {
  const v = p.snapshot().find((x) => x.id === id);
  assert.ok(v, `peer ${id} missing from snapshot`);
  return v;
}

async function stopAll(list: Array<Peers | undefined>): Promise<void> {
  await Promise.all(list.map((p) => p?.stop()));
}

test('21.peers: three peers see each other up within a few heartbeats and learn loads and draining', async () => {
  const loads = [10, 20, 30];
  const { peers, events } = await startCluster(3, (self) => loads[self]!);
  try {
    await waitFor('every peer told the others are up', () => everyoneToldUp(events), 10 * HB);
    assert.ok(peers.every((p) => p.snapshot().every((v) => v.up)), 'the snapshots agree');
    for (const [self, p] of peers.entries()) {
      const snap = p.snapshot();
      assert.deepEqual(snap.map((v) => v.id).sort(), [0, 1, 2].filter((id) => id !== self), 'self is not in the view');
      for (const v of snap) assert.equal(v.load, loads[v.id]);
    }

    peers[1]!.setLocal({ load: 99 });
    await waitFor('new load of peer 1 seen', () => view(peers[0]!, 1).load === 99 && view(peers[2]!, 1).load === 99, SOON);

    const before = events[0]!.length;
    peers[2]!.setLocal({ draining: true });
    await waitFor('peer 0 told of a change', () => events[0]!.length > before, SOON);
    assert.deepEqual(events[0]!.slice(before), ['change'], 'a peer starting to drain is a change, and nothing else');
    assert.equal(view(peers[0]!, 2).draining, true, 'the change is peer 2 draining');
    assert.equal(view(peers[0]!, 2).up, true, 'a draining peer is still up');
    assert.equal(peers[0]!.counters().rejected.replay, 0);
  } finally {
    await stopAll(peers);
  }
});

test('21.peers: a peer\'s health travels with its heartbeats, and a change is sent at once', async () => {
  // Peer 1's own period is a minute here, longer than the test: every
  // heartbeat peer 0 (which reads every 100 ms) gets from it was sent out of
  // turn (its first, at start, went to nobody: it was not introduced yet).
  const { peers, events } = await startCluster(2, () => 0, (self) => ({ heartbeatMs: self === 1 ? 60_000 : HB, deadAfterMs: 120_000 }));
  try {
    peers[1]!.announce();
    await waitFor('peer 0 told peer 1 is up', () => events[0]!.includes('up 1'), SOON);
    assert.equal(view(peers[0]!, 1).healthy, true);
    const firstReport = view(peers[0]!, 1).report;
    assert.match(firstReport ?? '', /^\d+:\d+$/);
    const before = events[0]!.length;
    peers[1]!.setLocal({ healthy: false });
    await waitFor('peer 0 told of a change, out of turn', () => events[0]!.length > before, SOON);
    assert.deepEqual(events[0]!.slice(before), ['change'], 'a peer turning unhealthy is a change, and nothing else');
    assert.equal(view(peers[0]!, 1).healthy, false, 'the change is peer 1 unhealthy');
    assert.equal(view(peers[0]!, 1).up, true, 'an unhealthy peer is still up: it routes');
    assert.notEqual(view(peers[0]!, 1).report, firstReport, 'every heartbeat is a new report');
    peers[1]!.setLocal({ healthy: true });
    await waitFor('peer 0 told of another change', () => events[0]!.length > before + 1, SOON);
    assert.deepEqual(events[0]!.slice(before), ['change', 'change']);
    assert.equal(view(peers[0]!, 1).healthy, true, 'the change is peer 1 healthy again');
  } finally {
    await stopAll(peers);
  }
});

test('21.peers: a stopped peer is reported down after deadAfterMs, and up again when it restarts with a new epoch', async () => {
  const loads = [1, 2, 3];
  const cluster = await startCluster(3, (self) => loads[self]!);
  const peers: Array<Peers | undefined> = cluster.peers;
  const events = cluster.events[0]!;
  try {
    await waitFor('every peer told the others are up', () => everyoneToldUp(cluster.events), 10 * HB);
    const oldEpoch = view(peers[0]!, 1).epoch!;
    const port1 = peers[1]!.localPort();
    // How long peer 1 had been silent when peer 0's heartbeat thread found it
    // down: measured there from its last heartbeat, not from stop() (which a
    // paused process may call well after that heartbeat left) nor when the
    // event reached JavaScript (late on a busy event loop).
    let silentAtDown = -1;
    peers[0]!.on('down', (id, silentMs) => {
      if (id === 1) silentAtDown = silentMs;
    });
    const before = events.length;

    await peers[1]!.stop();
    await waitFor('peer 0 told peer 1 is down, and peer 2 sees it down', () => events.length >= before + 2 && !view(peers[2]!, 1).up, DEAD + SOON);
    assert.deepEqual(events.slice(before), ['down 1', 'change']);
    assert.equal(view(peers[0]!, 1).up, false, 'the snapshot agrees');
    assert.ok(silentAtDown > DEAD, `peer 1 called down after only ${silentAtDown} ms of silence`);
    // Liveness is checked every heartbeat: down within one period after
    // deadAfterMs, plus what a busy machine makes the thread's tick late by.
    assert.ok(silentAtDown <= DEAD + HB + 400, `peer 1 called down only after ${silentAtDown} ms of silence`);
    assert.equal(view(peers[0]!, 2).up, true, 'the other peer stays up');

    // Restarted where it was, as a restarted daemon would be (its first heartbeat says load 7).
    peers[1] = makePeer(1, 7, { port: port1 });
    await peers[1].start();
    introduce(peers);
    await waitFor('peer 0 told the restarted peer 1 is up, and peer 2 sees it up', () => events.length >= before + 4 && view(peers[2]!, 1).up, SOON);
    assert.deepEqual(events.slice(before), ['down 1', 'change', 'up 1', 'change']);
    assert.ok(view(peers[0]!, 1).epoch! > oldEpoch, 'the restarted peer has a larger epoch');
    assert.equal(view(peers[0]!, 1).load, 7, 'the load of the restarted peer');
    assert.equal(peers[0]!.counters().rejected.replay, 0, 'the new epoch is not taken for a replay');
  } finally {
    await stopAll(peers);
  }
});

test('21.peers: a peer restarted before it was found down is accepted at once', async () => {
  const loads = [5, 6];
  const peers: Array<Peers | undefined> = (await startCluster(2, (self) => loads[self]!)).peers;
  try {
    await waitFor('both up', () => view(peers[0]!, 1).up && view(peers[1]!, 0).up, 10 * HB);
    const oldEpoch = view(peers[0]!, 1).epoch!;
    const port1 = peers[1]!.localPort();
    await peers[1]!.stop();
    peers[1] = makePeer(1, 60, { port: port1 });
    await peers[1].start();
    introduce(peers);
    await waitFor('new epoch seen', () => view(peers[0]!, 1).epoch! > oldEpoch && view(peers[0]!, 1).load === 60, SOON);
    assert.equal(view(peers[0]!, 1).up, true);
    assert.equal(peers[0]!.counters().rejected.replay, 0);
  } finally {
    await stopAll(peers);
  }
});

test('21.peers: setPeers changes the membership while running: a removed peer is forgotten, an added one comes up', async () => {
  const cluster = await startCluster(3, (self) => self);
  const peers = cluster.peers;
  const events = cluster.events[0]!;
  try {
    await waitFor('every peer told the others are up', () => everyoneToldUp(cluster.events), 10 * HB);
    const before = events.length;
    const list = peers.map((p, id) => ({ id, address: LOCAL, port: p.localPort() }));
    peers[0]!.setPeers(list.filter((p) => p.id !== 2));
    assert.deepEqual(peers[0]!.snapshot().map((v) => v.id), [1], 'peer 2 is gone');
    await waitFor('peer 0 told of a change', () => events.length > before, SOON);
    assert.deepEqual(events.slice(before), ['change'], 'removing a live peer is a change, not a down');
    assert.equal(view(peers[0]!, 1).up, true, 'the kept peer keeps its state');
    // Peer 2 never stopped heartbeating to peer 0; an 'up' shows it was taken
    // back unheard (a kept peer that was up would emit none).
    peers[0]!.setPeers(list);
    await waitFor('peer 0 told peer 2 is up again', () => events.length >= before + 3, SOON);
    assert.deepEqual(events.slice(before), ['change', 'up 2', 'change']);
    assert.equal(view(peers[0]!, 2).up, true, 'the snapshot agrees');
  } finally {
    await stopAll(peers);
  }
});

// A process that exits while the heartbeat thread's events still wait for
// the event loop (here: a loop kept busy until both peers are up in the
// snapshot, then stopped) must exit as it meant to, not abort: a daemon told
// to stop would otherwise die by SIGABRT whenever a peer changed in its last
// moments.
const EXIT_WITH_EVENTS_QUEUED = `
const { Peers } = require(${JSON.stringify(path.join(__dirname, '..', 'lib', 'peers.js'))});
const key = Buffer.alloc(16, 1);
const make = (self) => new Peers({ self, bindAddress: '127.0.0.1', port: 0, peers: [], key, heartbeatMs: 10, deadAfterMs: 50,
  log: require('winston').createLogger({ silent: true }) });
(async () => {
  const a = make(0), b = make(1);
  let delivered = 0;
  a.on('up', () => delivered++);
  await a.start(); await b.start();
  const list = [{ id: 0, address: '127.0.0.1', port: a.localPort() }, { id: 1, address: '127.0.0.1', port: b.localPort() }];
  a.setPeers(list); b.setPeers(list);
  const until = Date.now() + 10000;
  while (!a.snapshot()[0].up && Date.now() < until) { /* the loop stays busy: no event is delivered */ }
  const upInSnapshot = a.snapshot()[0].up;
  await a.stop(); await b.stop();
  console.log(JSON.stringify({ upInSnapshot, delivered }));
})();
`;

test('21.peers: a process that exits with peer events not yet delivered exits cleanly', () => {
  const r = spawnSync(process.execPath, ['-e', EXIT_WITH_EVENTS_QUEUED], { encoding: 'utf8', timeout: 20000 });
  assert.doesNotMatch(r.stderr, /terminate called/, 'no C++ exception escaped at exit');
  assert.equal(r.signal, null, `the process died by ${r.signal}: ${r.stderr}`);
  assert.equal(r.status, 0, r.stderr);
  const seen = JSON.parse(r.stdout.trim()) as { upInSnapshot: boolean; delivered: number };
  assert.deepEqual(seen, { upInSnapshot: true, delivered: 0 }, 'the case this test is about: peer 1 up, its event still queued at exit');
});

/** A raw UDP socket bound to `address` (ephemeral port). */
async function rawSocket(address: string): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.bind(0, address, () => resolve());
  });
  return s;
}

/** Captures the first `count` heartbeats a real peer 1 sends to a socket that stands in for peer 0. */
async function captureFromPeer1(count: number): Promise<Buffer[]> {
  const capture = await rawSocket(LOCAL);
  const sender = makePeer(1, 42);
  const got: Buffer[] = [];
  try {
    capture.on('message', (buf) => got.push(buf));
    await sender.start();
    sender.setPeers([{ id: 0, address: LOCAL, port: capture.address().port }]);
    await waitFor(`${count} captured heartbeats`, () => got.length >= count, SOON);
  } finally {
    await sender.stop();
    await new Promise<void>((resolve) => capture.close(() => resolve()));
  }
  return got.slice(0, count);
}

test('21.peers: forged, malformed, unknown, misplaced and replayed datagrams are rejected by reason and change nothing', async () => {
  const [first, second] = await captureFromPeer1(2);
  assert.equal(first!.length, HEARTBEAT_LENGTH);
  // The native sender's datagrams are the TypeScript format, MAC and all.
  assert.ok(verifyHeartbeatMac(first!, KEY), 'Node\'s crypto verifies the native MAC');
  const parsed = parseHeartbeat(first!);
  assert.ok(parsed.ok && parsed.heartbeat.sender === 1 && parsed.heartbeat.load === 42 && parsed.heartbeat.healthy);
  // Peers 1 and 2 listen nowhere: the target's own heartbeats to them go unanswered, which is fine here.
  const target = makePeer(0, 0, { peers: [{ id: 0, address: LOCAL }, { id: 1, address: LOCAL, port: 9 }, { id: 2, address: LOCAL, port: 9 }] });
  const sockets: dgram.Socket[] = [];
  try {
    await target.start();
    const raw = await rawSocket(LOCAL);
    const elsewhere = await rawSocket('127.0.0.2');
    sockets.push(raw, elsewhere);
    let received = 0;
    const deliver = async (buf: Buffer, from = raw): Promise<void> => {
      from.send(buf, target.localPort(), LOCAL);
      received++;
      await waitFor('delivery', () => target.counters().received === received, SOON);
    };
    const hb = { sender: 1, draining: false, healthy: true, epoch: BigInt(Date.now() + 60_000), seq: 1n, load: 1000 };
    const withByte = (buf: Buffer, offset: number, value: number): Buffer => {
      const copy = Buffer.from(buf);
      copy[offset] = value;
      return copy;
    };

    await deliver(encodeHeartbeat(hb, Buffer.alloc(16, 7)));          // forged: wrong key
    await deliver(first!.subarray(0, 40));                             // truncated
    await deliver(Buffer.concat([first!, Buffer.alloc(1)]));           // too long
    await deliver(withByte(first!, 0, 0x58));                          // 'XPR1'
    await deliver(withByte(first!, 4, 3));                             // unknown type
    await deliver(withByte(first!, 40, first![40]! ^ 1));              // MAC bit flipped
    await deliver(encodeHeartbeat({ ...hb, sender: 7 }, KEY));         // not in the peer list
    await deliver(encodeHeartbeat({ ...hb, sender: 0 }, KEY));         // claims to be the target itself
    await deliver(second!, elsewhere);                                 // right peer id, wrong address
    assert.equal(view(target, 1).up, false, 'nothing rejected may bring a peer up');
    assert.equal(target.counters().accepted, 0);

    await deliver(second!);                                            // genuine, from the right address
    await waitFor('peer 1 up', () => view(target, 1).up, SOON);
    assert.equal(view(target, 1).load, 42);
    await deliver(second!);                                            // the same datagram again
    await deliver(first!);                                             // an older one of the same epoch
    assert.equal(view(target, 1).load, 42);
    // And a datagram TypeScript signed (lib/heartbeat.ts) is taken by the native receiver.
    await deliver(encodeHeartbeat({ ...hb, seq: 2n, load: 7 }, KEY));
    await waitFor('the TypeScript-signed report', () => view(target, 1).load === 7, SOON);

    const c = target.counters();
    assert.equal(c.accepted, 2);
    assert.deepEqual(c.rejected, {
      truncated: 2, bad_magic: 1, bad_type: 1, unknown_peer: 2, wrong_source: 1, bad_mac: 2, replay: 2,
    });
    assert.equal(c.received, 13);
  } finally {
    for (const s of sockets) s.close();
    await target.stop();
  }
});

test('21.peers: over IPv6 (peers.family ipv6: udp6 sockets on the cluster6 addresses), two peers see each other up and learn loads', async () => {
  const peers = [makePeer(0, 11, { bindAddress: '::1' }), makePeer(1, 22, { bindAddress: '::1' })];
  try {
    await Promise.all(peers.map((p) => p.start()));
    const list = peers.map((p, id) => ({ id, address: '::1', port: p.localPort() }));
    for (const p of peers) p.setPeers(list);
    await waitFor('both up', () => view(peers[0]!, 1).up && view(peers[1]!, 0).up, SOON);
    assert.equal(view(peers[0]!, 1).load, 22);
    assert.equal(view(peers[1]!, 0).load, 11);
    assert.equal(view(peers[0]!, 1).address, '::1');
    assert.equal(peers[0]!.counters().rejected.wrong_source, 0);
    // An IPv4 peer address beside an IPv6 bind address is refused: one socket, one family.
    assert.throws(() => peers[0]!.setPeers([{ id: 1, address: LOCAL }]), /address of peer 1 \(127\.0\.0\.1\) is not an IPv6 address/);
  } finally {
    await stopAll(peers);
  }
});

test('21.peers: start() fails clearly when the port is taken; stop() is idempotent', async () => {
  const a = makePeer(0, 0);
  let b: Peers | undefined;
  try {
    await a.start();
    b = makePeer(0, 0, { port: a.localPort() });
    await assert.rejects(b.start(), new RegExp(`cannot bind UDP 127\\.0\\.0\\.1:${a.localPort()}`));
    await assert.rejects(a.start(), /already started/);
  } finally {
    await stopAll([a, b]);
    await a.stop();
  }
});

test('21.peers: options are validated and self is left out of the peer list', () => {
  const base: PeersOptions = {
    self: 0, bindAddress: LOCAL, port: 4790, peers: [{ id: 0, address: LOCAL }, { id: 1, address: LOCAL }],
    key: KEY, heartbeatMs: HB, deadAfterMs: DEAD, log: quiet,
  };
  assert.deepEqual(new Peers(base).snapshot().map((v) => v.id), [1]);
  const bad: Array<[Partial<PeersOptions>, RegExp]> = [
    [{ peers: [{ id: 1, address: LOCAL }, { id: 1, address: LOCAL }] }, /duplicate peer id 1/],
    [{ peers: [{ id: 1, address: 'host-b' }] }, /address of peer 1/],
    [{ peers: [{ id: 1, address: '::1' }] }, /address of peer 1/],
    [{ deadAfterMs: HB }, /deadAfterMs/],
    [{ key: Buffer.alloc(8) }, /key/],
    [{ self: 70000 }, /self/],
    [{ bindAddress: 'localhost' }, /bindAddress/],
  ];
  for (const [change, message] of bad) assert.throws(() => new Peers({ ...base, ...change }), message);
});

test('21.peers: loadKey reads hex, base64 or a key file, and names the setting when it cannot', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dpr-key-'));
  try {
    const hex = '00112233445566778899aabbccddeeff';
    assert.deepEqual(loadKey({ key: hex }), Buffer.from(hex, 'hex'));
    const b64 = Buffer.alloc(32, 0xab).toString('base64');
    assert.deepEqual(loadKey({ key: b64 }), Buffer.alloc(32, 0xab));
    const file = path.join(dir, 'key');
    writeFileSync(file, `  ${hex}\n`, { mode: 0o600 });
    assert.deepEqual(loadKey({ keyFile: file }), Buffer.from(hex, 'hex'));
    assert.deepEqual(loadKey({ key: '', keyFile: file }), Buffer.from(hex, 'hex'), 'an empty key counts as unset');

    assert.throws(() => loadKey({}), /peers\.key or peers\.keyFile must be set/);
    assert.throws(() => loadKey({ key: hex, keyFile: file }), /both set/);
    assert.throws(() => loadKey({ key: 'abcd' }), /peers\.key: key is 2 bytes, at least 16/);
    assert.throws(() => loadKey({ key: 'not a key!' }), /peers\.key: not hex or base64/);
    assert.throws(() => loadKey({ keyFile: path.join(dir, 'missing') }), /peers\.keyFile: cannot read .*ENOENT/);
    writeFileSync(file, 'c2hvcnQ=\n');
    assert.throws(() => loadKey({ keyFile: file }), /peers\.keyFile \(.*\): key is 5 bytes/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
