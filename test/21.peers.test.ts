import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import winston from 'winston';
import { encodeHeartbeat, HEARTBEAT_LENGTH } from '../lib/heartbeat';
import { loadKey, Peers, type PeersOptions } from '../lib/peers';

const HB = 50;
const DEAD = 300;
const KEY = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
const quiet = winston.createLogger({ silent: true });
const LOCAL = '127.0.0.1';

/** Peers with ids 0..n-1 on 127.0.0.1, host i listening on basePort + i. */
function cluster(n: number, basePort: number, loads: number[], extra: Partial<PeersOptions> = {}): Peers[] {
  return Array.from({ length: n }, (_, self) => makePeer(self, n, basePort, () => loads[self]!, extra));
}

function makePeer(self: number, n: number, basePort: number, load: () => number, extra: Partial<PeersOptions> = {}): Peers {
  const peers = Array.from({ length: n }, (_, id) => ({ id, address: LOCAL, port: basePort + id }));
  return new Peers({
    self, bindAddress: LOCAL, port: basePort + self, peers, key: KEY,
    heartbeatMs: HB, deadAfterMs: DEAD, load, log: quiet, ...extra,
  });
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
  let draining = false;
  const peers = [0, 1, 2].map((self) =>
    makePeer(self, 3, 42000, () => loads[self]!, self === 2 ? { draining: () => draining } : {}));
  try {
    await Promise.all(peers.map((p) => p.start()));
    const allUp = (): boolean => peers.every((p) => p.snapshot().every((v) => v.up));
    await waitFor('all peers up', allUp, 10 * HB);
    for (const [self, p] of peers.entries()) {
      const snap = p.snapshot();
      assert.deepEqual(snap.map((v) => v.id).sort(), [0, 1, 2].filter((id) => id !== self), 'self is not in the view');
      for (const v of snap) assert.equal(v.load, loads[v.id]);
    }

    loads[1] = 99;
    await waitFor('new load of peer 1 seen', () => view(peers[0]!, 1).load === 99 && view(peers[2]!, 1).load === 99, 5 * HB);

    let changes = 0;
    peers[0]!.on('change', () => changes++);
    draining = true;
    await waitFor('peer 2 seen draining', () => view(peers[0]!, 2).draining, 5 * HB);
    assert.equal(changes, 1, 'a peer starting to drain is a change');
    assert.equal(view(peers[0]!, 2).up, true, 'a draining peer is still up');
    assert.equal(peers[0]!.counters().rejected.replay, 0);
  } finally {
    await stopAll(peers);
  }
});

test('21.peers: a stopped peer is reported down after deadAfterMs, and up again when it restarts with a new epoch', async () => {
  const loads = [1, 2, 3];
  const peers: Array<Peers | undefined> = cluster(3, 42010, loads);
  try {
    await Promise.all(peers.map((p) => p!.start()));
    await waitFor('all up', () => peers.every((p) => p!.snapshot().every((v) => v.up)), 10 * HB);
    const oldEpoch = view(peers[0]!, 1).epoch!;
    const events: string[] = [];
    peers[0]!.on('down', (id) => events.push(`down ${id}`));
    peers[0]!.on('up', (id) => events.push(`up ${id}`));
    peers[0]!.on('change', () => events.push('change'));

    await peers[1]!.stop();
    const downAfter = await waitFor('peer 1 down at 0 and 2',
      () => !view(peers[0]!, 1).up && !view(peers[2]!, 1).up, DEAD + 5 * HB);
    // The last heartbeat may have left up to one period before stop().
    assert.ok(downAfter >= DEAD - HB - 20, `down after only ${downAfter} ms`);
    assert.deepEqual(events, ['down 1', 'change']);
    assert.equal(view(peers[0]!, 2).up, true, 'the other peer stays up');

    peers[1] = makePeer(1, 3, 42010, () => 7);
    await peers[1].start();
    await waitFor('restarted peer 1 up', () => view(peers[0]!, 1).up && view(peers[2]!, 1).up, 10 * HB);
    assert.ok(view(peers[0]!, 1).epoch! > oldEpoch, 'the restarted peer has a larger epoch');
    await waitFor('load of the restarted peer', () => view(peers[0]!, 1).load === 7, 5 * HB);
    assert.deepEqual(events, ['down 1', 'change', 'up 1', 'change']);
    assert.equal(peers[0]!.counters().rejected.replay, 0, 'the new epoch is not taken for a replay');
  } finally {
    await stopAll(peers);
  }
});

test('21.peers: a peer restarted before it was found down is accepted at once', async () => {
  const peers: Array<Peers | undefined> = cluster(2, 42020, [5, 6]);
  try {
    await Promise.all(peers.map((p) => p!.start()));
    await waitFor('both up', () => view(peers[0]!, 1).up && view(peers[1]!, 0).up, 10 * HB);
    const oldEpoch = view(peers[0]!, 1).epoch!;
    await peers[1]!.stop();
    peers[1] = makePeer(1, 2, 42020, () => 60);
    await peers[1].start();
    await waitFor('new epoch seen', () => view(peers[0]!, 1).epoch! > oldEpoch && view(peers[0]!, 1).load === 60, 5 * HB);
    assert.equal(view(peers[0]!, 1).up, true);
    assert.equal(peers[0]!.counters().rejected.replay, 0);
  } finally {
    await stopAll(peers);
  }
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
async function captureFromPeer1(capturePort: number, peer1Port: number, count: number): Promise<Buffer[]> {
  const capture = dgram.createSocket('udp4');
  const sender = new Peers({
    self: 1, bindAddress: LOCAL, port: peer1Port, peers: [{ id: 0, address: LOCAL, port: capturePort }],
    key: KEY, heartbeatMs: HB, deadAfterMs: DEAD, load: () => 42, log: quiet,
  });
  const got: Buffer[] = [];
  try {
    capture.on('message', (buf) => got.push(buf));
    await new Promise<void>((resolve) => capture.bind(capturePort, LOCAL, () => resolve()));
    await sender.start();
    await waitFor(`${count} captured heartbeats`, () => got.length >= count, 10 * HB);
  } finally {
    await sender.stop();
    await new Promise<void>((resolve) => capture.close(() => resolve()));
  }
  return got.slice(0, count);
}

test('21.peers: forged, malformed, unknown, misplaced and replayed datagrams are rejected by reason and change nothing', async () => {
  const [first, second] = await captureFromPeer1(42030, 42031, 2);
  assert.equal(first!.length, HEARTBEAT_LENGTH);
  const target = new Peers({
    self: 0, bindAddress: LOCAL, port: 42032,
    peers: [{ id: 0, address: LOCAL }, { id: 1, address: LOCAL, port: 42031 }, { id: 2, address: LOCAL, port: 42033 }],
    key: KEY, heartbeatMs: HB, deadAfterMs: DEAD, load: () => 0, log: quiet,
  });
  const sockets: dgram.Socket[] = [];
  try {
    await target.start();
    const raw = await rawSocket(LOCAL);
    const elsewhere = await rawSocket('127.0.0.2');
    sockets.push(raw, elsewhere);
    let received = 0;
    const deliver = async (buf: Buffer, from = raw): Promise<void> => {
      from.send(buf, 42032, LOCAL);
      received++;
      await waitFor('delivery', () => target.counters().received === received, 1000);
    };
    const hb = { sender: 1, draining: false, epoch: BigInt(Date.now() + 60_000), seq: 1n, load: 1000, capacity: 0 };
    const withByte = (buf: Buffer, offset: number, value: number): Buffer => {
      const copy = Buffer.from(buf);
      copy[offset] = value;
      return copy;
    };

    await deliver(encodeHeartbeat(hb, Buffer.alloc(16, 7)));          // forged: wrong key
    await deliver(first!.subarray(0, 40));                             // truncated
    await deliver(Buffer.concat([first!, Buffer.alloc(1)]));           // too long
    await deliver(withByte(first!, 0, 0x58));                          // 'XPR1'
    await deliver(withByte(first!, 4, 2));                             // unknown type
    await deliver(withByte(first!, 40, first![40]! ^ 1));              // MAC bit flipped
    await deliver(encodeHeartbeat({ ...hb, sender: 7 }, KEY));         // not in the peer list
    await deliver(encodeHeartbeat({ ...hb, sender: 0 }, KEY));         // claims to be the target itself
    await deliver(second!, elsewhere);                                 // right peer id, wrong address
    assert.equal(view(target, 1).up, false, 'nothing rejected may bring a peer up');
    assert.equal(target.counters().accepted, 0);

    await deliver(second!);                                            // genuine, from the right address
    assert.equal(view(target, 1).up, true);
    assert.equal(view(target, 1).load, 42);
    await deliver(second!);                                            // the same datagram again
    await deliver(first!);                                             // an older one of the same epoch
    assert.equal(view(target, 1).load, 42);

    const c = target.counters();
    assert.equal(c.accepted, 1);
    assert.deepEqual(c.rejected, {
      truncated: 2, bad_magic: 1, bad_type: 1, unknown_peer: 2, wrong_source: 1, bad_mac: 2, replay: 2,
    });
    assert.equal(c.received, 12);
  } finally {
    for (const s of sockets) s.close();
    await target.stop();
  }
});

test('21.peers: start() fails clearly when the port is taken; stop() is idempotent', async () => {
  const a = makePeer(0, 2, 42040, () => 0);
  const b = makePeer(0, 2, 42040, () => 0);
  try {
    await a.start();
    await assert.rejects(b.start(), /cannot bind UDP 127\.0\.0\.1:42040/);
    await assert.rejects(a.start(), /already started/);
  } finally {
    await stopAll([a, b]);
    await a.stop();
  }
});

test('21.peers: options are validated and self is left out of the peer list', () => {
  const base: PeersOptions = {
    self: 0, bindAddress: LOCAL, port: 42050, peers: [{ id: 0, address: LOCAL }, { id: 1, address: LOCAL }],
    key: KEY, heartbeatMs: HB, deadAfterMs: DEAD, load: () => 0, log: quiet,
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
