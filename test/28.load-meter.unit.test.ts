// When and how this host's load is measured (lib/load-meter.ts): dumps only
// when needed, the quick count between them, every exact count handed on
// for the data path's own load (with the quick count read beside it), and
// the fallback when the dump fails; the quick count itself (lib/sockstat.ts)
// over both address families.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import winston from 'winston';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { LoadMeter, type LoadMeterOptions } from '../lib/load-meter';
import { TcpInUse } from '../lib/sockstat';
import { waitFor } from './support/wait';

const quiet = winston.createLogger({ silent: true });

function meter(o: Partial<LoadMeterOptions> & { exact: () => number }): { m: LoadMeter; clock: { t: number }; dumps: () => number; reported: number[]; counted: [number, number | null][] } {
  const clock = { t: 0 };
  let dumps = 0;
  const reported: number[] = [];
  const counted: [number, number | null][] = [];
  const m = new LoadMeter({
    ports: [80], reportMaxAgeMs: 100, idleMaxAgeMs: 10_000, activity: () => 0, log: quiet,
    now: () => clock.t, onMeasured: (v) => reported.push(v), onCounted: (v, q) => counted.push([v, q]), ...o,
    count: () => {
      dumps++;
      return o.exact();
    },
  });
  return { m, clock, dumps: () => dumps, reported, counted };
}

test('28.load-meter: reports between dumps use the quick count, corrected by its difference at the last dump; a second on, a dump again', () => {
  let exact = 10;
  let inUse = 17; // 7 more: listeners, the web server's own connections
  let activity = 0;
  const { m, clock, dumps, reported, counted } = meter({ exact: () => exact, quick: () => inUse, calibrateMs: 1000, activity: () => ++activity });
  m.forReport();
  assert.deepEqual([dumps(), m.last], [1, 10]);
  assert.deepEqual(counted, [[10, 17]], 'the exact count and the quick one read with it, for the data path');
  exact = 14;
  inUse = 21;
  clock.t = 200;
  m.forReport();
  assert.equal(m.last, 14, 'the quick count minus 7');
  assert.equal(dumps(), 1, 'no dump between calibrations');
  assert.equal(counted.length, 1, 'only exact counts are handed on: the data path reads the quick count itself');
  exact = 30;
  inUse = 40;
  clock.t = 1001;
  m.forReport();
  assert.deepEqual([dumps(), m.last], [2, 30]);
  assert.deepEqual(counted.at(-1), [30, 40]);
  inUse = 41;
  clock.t = 1200;
  m.forReport();
  assert.equal(m.last, 31, 'the new difference, 10');
  assert.deepEqual(reported, [10, 14, 30, 31]);
});

test('28.load-meter: reports measure only when traffic passed, or when the value is old; every value goes to the heartbeats', () => {
  let activity = 0;
  const { m, clock, dumps, reported } = meter({ exact: () => 5, activity: () => activity });
  assert.equal(m.forReport(), true, 'the first look counts as traffic');
  assert.equal(dumps(), 1);
  clock.t = 500;
  assert.equal(m.forReport(), false, 'idle: nothing measured');
  assert.equal(dumps(), 1);
  activity = 9;
  clock.t = 600;
  assert.equal(m.forReport(), true);
  assert.equal(dumps(), 2);
  clock.t = 10_700;
  m.forReport();
  assert.equal(dumps(), 3, 'idle, but ten seconds old');
  assert.deepEqual(reported, [5, 5, 5]);
});

test('28.load-meter: when the dump fails the fallback is used, and handed on with no quick count (the value stands)', () => {
  const { m, counted } = meter({
    exact: () => {
      throw new Error('ENOENT: no inet_diag');
    },
    fallback: () => 4,
    quick: () => 99,
  });
  m.measure();
  assert.equal(m.last, 4);
  assert.deepEqual(counted, [[4, null]]);
});

test('28.load-meter: the quick count counts IPv6 sockets too (sockstat6): 20 connections over ::1 raise it by at least 20', async () => {
  const quick = new TcpInUse();
  const server = net.createServer((s) => accepted.push(s));
  const accepted: net.Socket[] = [];
  const clients: net.Socket[] = [];
  try {
    await new Promise<void>((resolve) => server.listen(0, '::1', resolve));
    const before = quick.read()!;
    const port = (server.address() as net.AddressInfo).port;
    for (let i = 0; i < 20; i++) clients.push(await new Promise<net.Socket>((resolve) => { const c = net.connect(port, '::1', () => resolve(c)); }));
    await waitFor('20 accepted', () => accepted.length === 20, 5000);
    // 40 sockets opened (both ends); other processes' sockets come and go beside them.
    const after = quick.read()!;
    assert.ok(after - before >= 20, `the quick count went from ${before} to ${after} with 40 IPv6 sockets opened`);
  } finally {
    for (const s of [...clients, ...accepted]) s.destroy();
    server.close();
    quick.close();
  }
});

test('28.load-meter: without sockstat6 (no IPv6) the quick count is IPv4\'s; without sockstat there is none', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpr-sockstat-'));
  try {
    fs.writeFileSync(path.join(dir, 'sockstat'), 'sockets: used 90\nTCP: inuse 12 orphan 0 tw 3 alloc 20 mem 1\nUDP: inuse 2 mem 0\n');
    const v4 = new TcpInUse(dir);
    assert.equal(v4.read(), 12);
    fs.writeFileSync(path.join(dir, 'sockstat6'), 'TCP6: inuse 30\nUDP6: inuse 1\n');
    const both = new TcpInUse(dir);
    assert.equal(both.read(), 42);
    fs.rmSync(path.join(dir, 'sockstat'));
    assert.equal(new TcpInUse(dir).read(), null);
    v4.close();
    both.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
