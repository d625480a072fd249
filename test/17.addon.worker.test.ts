// The addon in worker threads: what one environment sets up must die with
// it. A worker that loaded the addon and ended must not leave the main
// thread's errors pointing into it, and a worker's running Queue must stop
// (thread joined, queue unbound) when the worker is terminated, before its
// decision callback goes away. Each case runs in a child process, so that a
// crash is a failed test and not a dead test runner.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { Testbed } from './support/netns';

const PROBE = path.join(__dirname, 'support', 'worker-probe.js');

interface ProbeResult {
  whileRunning: string;
  boundAfterMs: number;
  afterTerminate: string;
  error: string;
}

function parse(stdout: string): ProbeResult {
  return JSON.parse(stdout.trim().split('\n').pop()!) as ProbeResult;
}

describe('17.addon.worker', () => {
  test('a worker that loaded the addon ends; the main thread still gets DprNativeError, and does not crash', () => {
    const r = spawnSync(process.execPath, [PROBE, 'run', JSON.stringify({ queue: false })], { encoding: 'utf8', timeout: 20000 });
    assert.equal(r.signal, null, `the process died of ${r.signal}: ${r.stderr}`);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(parse(r.stdout).error, 'DprNativeError EINVAL');
  });

  test('terminating a worker stops its Queue: the thread is joined and the queue unbound', { skip: process.getuid?.() !== 0 ? 'needs root (a namespace, NFQUEUE)' : undefined }, async () => {
    const bed = Testbed.create([{ name: 'host', addrs: ['198.18.0.1/24'] }], 'wk');
    try {
      const r = spawnSync('ip', ['netns', 'exec', bed.ns('host'), process.execPath, PROBE, 'run', JSON.stringify({ queue: true })], { encoding: 'utf8', timeout: 20000 });
      assert.equal(r.signal, null, `the process died of ${r.signal}: ${r.stderr}`);
      assert.equal(r.status, 0, r.stderr);
      const p = parse(r.stdout);
      console.log(`worker queue: while running ${JSON.stringify(p.whileRunning)} (seen after ${p.boundAfterMs} ms), after terminate ${JSON.stringify(p.afterTerminate)}`);
      assert.match(p.whileRunning, /^0\s+[1-9]/, 'the worker\'s queue was bound');
      assert.equal(p.afterTerminate, '', 'queue 0 is still bound after the worker ended');
      assert.equal(p.error, 'DprNativeError EINVAL');
    } finally {
      await bed.destroy();
    }
  });
});
