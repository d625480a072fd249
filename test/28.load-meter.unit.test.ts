// When and how this host's load is measured (lib/load-meter.ts): dumps only
// when needed, the quick count between them, and no inflation when the dump
// fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import winston from 'winston';
import { LoadMeter, type LoadMeterOptions } from '../lib/load-meter';

const quiet = winston.createLogger({ silent: true });

function meter(o: Partial<LoadMeterOptions> & { exact: () => number }): { m: LoadMeter; clock: { t: number }; dumps: () => number; reported: number[] } {
  const clock = { t: 0 };
  let dumps = 0;
  const reported: number[] = [];
  const m = new LoadMeter({
    ports: [80], decisionMaxAgeMs: 5, reportMaxAgeMs: 100, idleMaxAgeMs: 10_000, activity: () => 0, log: quiet,
    now: () => clock.t, onMeasured: (v) => reported.push(v), ...o,
    count: () => {
      dumps++;
      return o.exact();
    },
  });
  return { m, clock, dumps: () => dumps, reported };
}

test('28.load-meter: decisions between dumps use the quick count, corrected by its difference at the last dump', () => {
  let exact = 10;
  let inUse = 17; // 7 more: listeners, the web server's own connections
  const { m, clock, dumps } = meter({ exact: () => exact, quick: () => inUse, calibrateMs: 1000 });
  assert.equal(m.forDecision(), 10);
  assert.equal(dumps(), 1);
  exact = 14;
  inUse = 21;
  clock.t = 10;
  assert.equal(m.forDecision(), 14, 'the quick count minus 7');
  assert.equal(dumps(), 1, 'no dump between calibrations');
  m.noteKept();
  m.noteKept();
  clock.t = 12;
  assert.equal(m.forDecision(), 16, 'kept connections count until the next measurement');
  // A second after the dump, the next decision dumps again and re-learns the difference.
  exact = 30;
  inUse = 40;
  clock.t = 1011;
  assert.equal(m.forDecision(), 30);
  assert.equal(dumps(), 2);
  inUse = 41;
  clock.t = 1020;
  assert.equal(m.forDecision(), 31, 'the new difference, 10');
});

test('28.load-meter: without a quick count every decision older than decisionMaxAgeMs dumps', () => {
  const { m, clock, dumps } = meter({ exact: () => 3 });
  m.forDecision();
  clock.t = 3;
  m.forDecision();
  assert.equal(dumps(), 1, 'fresh enough');
  clock.t = 6;
  m.forDecision();
  assert.equal(dumps(), 2);
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

test('28.load-meter: when the dump fails the fallback is used, and kept connections never pile up', () => {
  let kept = 0;
  const { m, clock } = meter({
    exact: () => {
      throw new Error('ENOENT: no inet_diag');
    },
    fallback: () => 4,
  });
  for (let i = 0; i < 100; i++) {
    clock.t += 10;
    const load = m.forDecision();
    m.noteKept();
    kept++;
    assert.ok(load <= 5, `load grew to ${load} after ${kept} kept connections`);
  }
  assert.equal(m.last, 4);
});
