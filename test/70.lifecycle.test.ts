// The daemon process's signals (lib/lifecycle.ts), against a daemon whose
// start, drain and stop the test resolves or rejects itself: a SIGTERM
// during start-up, a second SIGTERM during a drain, a shutdown that fails.
// The same paths run for real in test/62.cli (start-up) and 70.ops (drain).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { Lifecycle } from '../lib/lifecycle';

/** A promise with its resolve and reject at hand. */
function deferred<T = void>() {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

function harness() {
  const calls: string[] = [];
  const started = deferred();
  const drained = deferred<boolean>();
  const stopped = deferred();
  const exited = deferred<number>();
  const logged: Array<[string, string]> = [];
  const signals = new EventEmitter();
  const daemon = {
    start: () => (calls.push('start'), started.promise),
    drain: () => (calls.push('drain'), drained.promise),
    stop: () => (calls.push('stop'), stopped.promise),
  };
  const log = {
    info: (m: string) => logged.push(['info', m]),
    warn: (m: string) => logged.push(['warn', m]),
    error: (m: string) => logged.push(['error', m]),
  };
  const life = new Lifecycle({
    daemon, log, signals,
    notify: (s) => calls.push(`notify ${s}`),
    exit: (code) => exited.resolve(code),
  });
  return { life, calls, started, drained, stopped, exited, logged, signals };
}

const tick = () => new Promise((r) => setImmediate(r));

test('70.lifecycle: SIGTERM drains, stops and exits 0; systemd hears READY and STOPPING', async () => {
  const h = harness();
  const running = h.life.run();
  h.started.resolve();
  await running;
  h.signals.emit('SIGTERM');
  await tick();
  h.drained.resolve(true);
  await tick();
  h.stopped.resolve();
  assert.equal(await h.exited.promise, 0);
  assert.deepEqual(h.calls, ['start', 'notify READY=1', 'notify STOPPING=1', 'drain', 'stop']);
});

test('70.lifecycle: a SIGTERM during start-up is obeyed once the daemon has started', async () => {
  const h = harness();
  const running = h.life.run();
  h.signals.emit('SIGTERM');
  await tick();
  assert.deepEqual(h.calls, ['start'], 'stopped before start finished');
  assert.ok(h.life.signal.aborted, 'waits after start-up are told to end');
  h.started.resolve();
  await running;
  await tick();
  h.drained.resolve(true);
  await tick();
  h.stopped.resolve();
  assert.equal(await h.exited.promise, 0);
  assert.deepEqual(h.calls.filter((c) => !c.startsWith('notify')), ['start', 'drain', 'stop']);
});

test('70.lifecycle: a second SIGTERM during the drain stops at once', async () => {
  const h = harness();
  const running = h.life.run();
  h.started.resolve();
  await running;
  h.signals.emit('SIGTERM');
  await tick();
  assert.deepEqual(h.calls.slice(-1), ['drain']);
  h.signals.emit('SIGTERM'); // the drain never finishes by itself here
  await tick();
  assert.deepEqual(h.calls.slice(-1), ['stop']);
  h.stopped.resolve();
  assert.equal(await h.exited.promise, 0);
  assert.ok(h.logged.some(([level, m]) => level === 'warn' && /second signal during the drain/.test(m)));
});

test('70.lifecycle: a shutdown that fails is logged and exits 1', async () => {
  const h = harness();
  const running = h.life.run();
  h.started.resolve();
  await running;
  h.signals.emit('SIGINT');
  await tick();
  h.stopped.reject(new Error('peers: socket already closed'));
  assert.equal(await h.exited.promise, 1);
  assert.ok(h.logged.some(([level, m]) => level === 'error' && m === 'shutdown failed'), JSON.stringify(h.logged));
  assert.ok(!h.calls.includes('drain'), 'SIGINT does not drain');
});

test('70.lifecycle: SIGHUP does not stop the daemon (reload is not in this version)', async () => {
  const h = harness();
  const running = h.life.run();
  h.started.resolve();
  await running;
  h.signals.emit('SIGHUP');
  await tick();
  assert.ok(!h.calls.includes('stop') && !h.calls.includes('drain'));
  assert.ok(h.logged.some(([level, m]) => level === 'warn' && /cannot reload/.test(m)));
});
