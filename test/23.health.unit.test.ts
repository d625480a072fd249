// Health checks (lib/health.ts) without a cluster: fall and rise, the
// listener watch, fast checks while down, and the probes themselves against
// servers on 127.0.0.1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import winston from 'winston';
import { HealthChecker, makeProbe, type HealthSettings, type ProbeResult } from '../lib/health';
import { parseStatusList } from '../lib/config-schema';
import { sleep, waitFor } from './support/wait';

const quiet = winston.createLogger({ silent: true });

function settings(extra: Partial<HealthSettings> = {}): HealthSettings {
  return {
    type: 'tcp', address: '127.0.0.1', ports: [80], intervalMs: 30, fastIntervalMs: 10, timeoutMs: 200, fall: 3, rise: 2, listenerCheckMs: 0,
    http: { path: '/', statuses: '200-399', host: '' }, ...extra,
  };
}

/** A probe whose answers the test scripts, counting calls. */
function scripted(): { probe: (port: number) => Promise<ProbeResult>; ok: boolean; calls: number } {
  const s = { ok: true, calls: 0, probe: async (): Promise<ProbeResult> => {
    s.calls++;
    return s.ok ? { ok: true } : { ok: false, error: 'ECONNREFUSED' };
  } };
  return s;
}

test('23.health: the first result decides; then `fall` failures in a row to go down and `rise` successes to come back', async () => {
  const p = scripted();
  p.ok = false;
  const h = new HealthChecker(settings(), p.probe, quiet);
  const changes: boolean[] = [];
  h.on('change', (v) => changes.push(v));
  await h.start();
  try {
    assert.equal(h.healthy, false, 'a server down at start: unhealthy from the first check');
    p.ok = true;
    await waitFor('healthy after rise', () => h.healthy, 2000, 1);
    assert.ok(h.status().ports[0]!.streak >= 2, 'only after rise=2 good checks');
    // Two failures are fewer than fall=3: still healthy; the third takes it down.
    p.ok = false;
    await waitFor('two failures', () => h.status().ports[0]!.streak === -2, 2000, 1);
    assert.equal(h.healthy, true);
    await waitFor('down after fall', () => !h.healthy, 2000, 1);
    assert.deepEqual(changes, [true, false], 'one event per change, none per check');
    assert.equal(h.status().ports[0]!.lastError, 'ECONNREFUSED');
  } finally {
    h.stop();
  }
});

test('23.health: a port whose listener is gone is unhealthy at once, and is back only after `rise` good checks', async () => {
  const p = scripted();
  const h = new HealthChecker(settings({ intervalMs: 10_000 }), p.probe, quiet);
  await h.start();
  try {
    assert.equal(h.healthy, true);
    h.listenerLost(80);
    assert.equal(h.healthy, false, 'at once, without waiting for a check (every 10 s here)');
    assert.equal(h.status().ports[0]!.listenerLost, 1);
    const before = p.calls;
    await waitFor('back after rise fast checks', () => h.healthy, 2000, 1);
    assert.ok(p.calls - before >= 2, `back after ${p.calls - before} checks`);
  } finally {
    h.stop();
  }
});

test('23.health: checks come every fastIntervalMs while a port is down, every intervalMs while it is up', async () => {
  const p = scripted();
  const h = new HealthChecker(settings({ intervalMs: 200, fastIntervalMs: 10 }), p.probe, quiet);
  await h.start();
  try {
    let c0 = p.calls;
    await sleep(450);
    const up = p.calls - c0;
    p.ok = false;
    await waitFor('down', () => !h.healthy, 2000, 1);
    c0 = p.calls;
    await sleep(450);
    const down = p.calls - c0;
    assert.ok(up <= 4, `${up} checks in 450 ms while up`);
    assert.ok(down >= 8, `${down} checks in 450 ms while down`);
  } finally {
    h.stop();
  }
});

test('23.health: type none is always healthy and checks nothing', async () => {
  const p = scripted();
  p.ok = false;
  const h = new HealthChecker(settings({ type: 'none' }), p.probe, quiet);
  await h.start();
  assert.equal(h.healthy, true);
  assert.equal(p.calls, 0);
  h.stop();
});

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return (server.address() as net.AddressInfo).port;
}

test('23.health: the tcp probe connects; a closed port is ECONNREFUSED', async () => {
  const server = net.createServer((s) => s.destroy());
  const port = await listen(server);
  const probe = makeProbe(settings(), '198.18.0.1');
  try {
    assert.deepEqual(await probe(port), { ok: true });
  } finally {
    await new Promise((r) => server.close(r));
  }
  assert.deepEqual(await probe(port), { ok: false, error: 'ECONNREFUSED' });
});

test('23.health: the http probe asks for the path with the Host header, and takes only the accepted statuses', async () => {
  let status = 200;
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    seen.push(`${req.headers.host} ${req.url}`);
    res.writeHead(req.url === '/hang' ? 200 : status);
    if (req.url === '/hang') res.flushHeaders();
    else res.end('x');
  });
  const port = await listen(server);
  try {
    const probe = makeProbe(settings({ type: 'http', http: { path: '/health', statuses: '200,204', host: '' } }), '198.18.0.1');
    assert.deepEqual(await probe(port), { ok: true });
    status = 204;
    assert.deepEqual(await probe(port), { ok: true });
    status = 301;
    assert.deepEqual(await probe(port), { ok: false, error: 'status 301' });
    status = 503;
    assert.deepEqual(await probe(port), { ok: false, error: 'status 503' });
    assert.deepEqual(seen, Array(4).fill('198.18.0.1 /health'));
    // Headers sent, the answer never finished: still a pass (the status is what counts)...
    const hung = makeProbe(settings({ type: 'http', timeoutMs: 100, http: { path: '/hang', statuses: '200', host: 'example.test' } }), '198.18.0.1');
    assert.deepEqual(await hung(port), { ok: true });
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
  // ...while a server that accepts and never answers fails on the timeout.
  const held = new Set<net.Socket>();
  const silent = net.createServer((s) => held.add(s));
  const port2 = await listen(silent);
  try {
    const probe = makeProbe(settings({ type: 'http', timeoutMs: 100 }), '198.18.0.1');
    assert.deepEqual(await probe(port2), { ok: false, error: 'timeout' });
  } finally {
    for (const s of held) s.destroy();
    await new Promise((r) => silent.close(r));
  }
});

test('23.health: status lists parse codes and ranges, and refuse what is not one', () => {
  assert.deepEqual(parseStatusList('200-399'), [[200, 399]]);
  assert.deepEqual(parseStatusList('200, 204,301-302'), [[200, 200], [204, 204], [301, 302]]);
  for (const bad of ['', '2xx', '399-200', '600', '200-', '20']) assert.throws(() => parseStatusList(bad), /HTTP status/, bad);
});
