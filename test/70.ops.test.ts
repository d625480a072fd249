// Day-one operations against a running 2-host namespace cluster: `dpr status`
// (table and JSON), `dpr drain`, the refusals when no daemon runs or a remote
// host asks to drain, and /metrics exposing every name docs/metrics.md lists.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Cluster, hostAddress, hostName } from '../tools/cluster';
import type { StatusView } from '../lib/status-view';

const ROOT = path.resolve(__dirname, '..', '..');
const CLI = path.join(ROOT, 'dist', 'lib', 'cli.js');
const METRICS_DOC = path.join(ROOT, 'docs', 'metrics.md');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Metric names in the first column of docs/metrics.md's tables. */
function documentedMetrics(markdown: string): string[] {
  return [...markdown.matchAll(/^\| `(dpr_[a-z0-9_]+)` \|/gm)].map((m) => m[1]!);
}

describe('70.ops', () => {
  let cluster: Cluster;

  /** Runs `dpr ARGS --config <that host's config>` inside a namespace, without blocking the test's event loop. */
  function dpr(ns: string, configOf: number, args: string[], timeoutMs = 20000): Promise<Run> {
    const child = cluster.bed.spawn(ns, [process.execPath, CLI, ...args, '--config', cluster.configFiles[configOf]!]);
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    return new Promise((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.once('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });
  }

  async function statusJson(host: number): Promise<StatusView> {
    const r = await dpr(hostName(host), host, ['status', '--json']);
    assert.equal(r.code, 0, `dpr status on h${host} failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as StatusView;
  }

  before(async () => {
    // Metrics on the wildcard address: reachable from the client namespace,
    // so the test can show that /drain refuses a remote host.
    cluster = await Cluster.create({ hosts: 2, policy: 'hash', tag: 'ops', config: { metrics: { address: '0.0.0.0', port: 9465 } } });
  });
  after(async () => {
    await cluster?.destroy();
  });

  test('dpr status --json shows this host and its peer up, with a recent heartbeat', async () => {
    const v = await statusJson(0);
    assert.equal(v.self, 0);
    assert.equal(v.draining, false);
    assert.deepEqual(v.hosts.map((h) => [h.id, h.self, h.up, h.address]), [[0, true, true, hostAddress(0)], [1, false, true, hostAddress(1)]]);
    const peer = v.hosts[1]!;
    assert.ok(peer.heartbeatAgeMs !== null && peer.heartbeatAgeMs < 500, `last heartbeat ${peer.heartbeatAgeMs} ms ago (deadAfterMs 500)`);
    assert.deepEqual(v.liveHosts, [0, 1]);
    assert.ok(v.flows && v.connectionsPerSecond && v.heartbeatsRejected);
    assert.equal(v.heartbeatsRejected.total, 0);
    assert.ok(v.sampleMs >= 1000, `samples ${v.sampleMs} ms apart`);
  });

  test('dpr status prints a table and measures local and forwarded connections per second', async () => {
    // A bounded load that spans the status command's 1 s sample.
    const load = cluster.load({ targets: [{ address: hostAddress(0) }], requests: 4000, concurrency: 4, maxDurationMs: 4000 });
    await new Promise((r) => setTimeout(r, 500));
    const r = await dpr(hostName(0), 0, ['status']);
    const s = await load;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(s.errors, 0, `errors: ${JSON.stringify(s.errorKinds)}`);
    assert.match(r.stdout, /^dpr: host 0, hash policy, up \d+/m);
    assert.match(r.stdout, /^HOST\s+ADDRESS\s+STATE\s+HEALTH\s+LOAD\s+DRAINING\s+LAST HEARTBEAT$/m);
    assert.match(r.stdout, /^0 \(this\)\s+198\.18\.0\.1\s+up\s+healthy\s+\d+\s+no\s+-$/m);
    assert.match(r.stdout, /^1\s+198\.18\.0\.2\s+up\s+healthy\s+\d+\s+no\s+\d+ ms ago$/m);
    const m = /^connections\/s\s+local ([\d.]+), forwarded ([\d.]+)/m.exec(r.stdout);
    assert.ok(m, `no rate line in:\n${r.stdout}`);
    // Two hosts, hash policy: about half of host 0's new connections go to host 1.
    assert.ok(Number(m[1]) > 20 && Number(m[2]) > 20, `rates: local ${m[1]}/s, forwarded ${m[2]}/s`);
    assert.match(r.stdout, /^heartbeats rejected\s+0$/m);
  });

  test('dpr status and dpr drain say clearly that no daemon answers, and exit non-zero', async () => {
    // The client namespace runs no daemon.
    for (const cmd of ['status', 'drain']) {
      const r = await dpr('client', 0, [cmd]);
      assert.equal(r.code, 1, `${cmd}: ${r.stdout}${r.stderr}`);
      assert.equal(r.stderr.trim(), 'dpr: no dpr daemon answers on 127.0.0.1:9465: is it running? (dpr start)');
    }
  });

  test('POST /drain from another host is refused and changes nothing', async () => {
    const out = cluster.bed.exec('client', ['curl', '-sS', '--max-time', '3', '-o', '/dev/null', '-w', '%{http_code}', '-X', 'POST', `http://${hostAddress(0)}:9465/drain`]);
    assert.equal(out, '403');
    assert.equal(cluster.status(0).draining, false);
  });

  test('/metrics exposes every metric docs/metrics.md documents', () => {
    const names = documentedMetrics(fs.readFileSync(METRICS_DOC, 'utf8'));
    assert.ok(names.length >= 10, `only ${names.length} metric names found in docs/metrics.md: is the table format changed?`);
    const text = cluster.metrics(0);
    const missing = names.filter((n) => !new RegExp(`^# TYPE ${n} `, 'm').test(text));
    assert.deepEqual(missing, [], `documented but not exposed: ${missing.join(', ')}`);
  });

  test('/metrics documents every dpr_ metric it exposes (process metrics aside)', () => {
    const documented = new Set(documentedMetrics(fs.readFileSync(METRICS_DOC, 'utf8')));
    const exposed = [...cluster.metrics(0).matchAll(/^# TYPE (dpr_[a-z0-9_]+) /gm)].map((m) => m[1]!);
    const undocumented = exposed.filter((n) => !documented.has(n) && !/^dpr_(process|nodejs)_/.test(n));
    assert.deepEqual(undocumented, [], `exposed but not in docs/metrics.md: ${undocumented.join(', ')}`);
  });

  test('/metrics: batches as counters a rate can be taken of, the load in connections, the build', () => {
    const text = cluster.metrics(0);
    const value = (re: RegExp): number => Number(re.exec(text)?.[1] ?? NaN);
    assert.match(text, /^# TYPE dpr_queue_batches_total counter$/m);
    assert.match(text, /^# TYPE dpr_queue_batch_packets_total counter$/m);
    const batches = value(/^dpr_queue_batches_total\{queue="entry"\} (\d+)$/m);
    const packets = value(/^dpr_queue_batch_packets_total\{queue="entry"\} (\d+)$/m);
    assert.ok(batches > 0 && packets >= batches, `entry: ${packets} packets in ${batches} batches`);
    assert.doesNotMatch(text, /dpr_queue_batch_mean/);
    assert.match(text, /^# HELP dpr_peer_load .*in connections/m);
    assert.match(text, /^dpr_peer_load\{peer="1"\} \d+$/m);
    const { version } = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    assert.match(text, new RegExp(`^dpr_build_info\\{version="${version.replace(/\./g, '\\.')}",node="${process.version.replace(/\./g, '\\.')}"\\} 1$`, 'm'));
  });

  test('a second SIGTERM during the drain stops the daemon at once', async () => {
    // Long-lived connections to h0, about half forwarded to h1: the drain waits for those.
    // They last until stopped, past the drain timeout (10 s) if nothing ends the drain first.
    const held = cluster.holdOpen({ address: hostAddress(0), connections: 12, intervalMs: 200 });
    for (let i = 0; (cluster.status(0).entry?.flows.forwarded.established ?? 0) === 0; i++) {
      assert.ok(i < 100, 'no connection was forwarded');
      await new Promise((r) => setTimeout(r, 100));
    }
    const pid = cluster.daemonPid(0)!;
    const exited = cluster.signalDaemon(0, 'SIGTERM', 20000);
    for (let i = 0; !cluster.status(0).draining; i++) {
      assert.ok(i < 50, 'the daemon did not start draining');
      await new Promise((r) => setTimeout(r, 100));
    }
    const t0 = Date.now();
    process.kill(pid, 'SIGTERM');
    const code = await exited;
    const tookMs = Date.now() - t0;
    // drain.timeoutMs is 10 s and the connections are still open: only the second signal ends it this soon.
    assert.equal(code, 0);
    assert.ok(tookMs < 4000, `exited ${tookMs} ms after the second SIGTERM`);
    await cluster.startDaemon(0);
    await cluster.waitForMembership();
    await held.stop();
  });

  // Last: a drained daemon stays drained until it is stopped.
  test('dpr drain: the host drains, its new connections stay local, its peer forwards none to it', async () => {
    const r = await dpr(hostName(0), 0, ['drain', '--wait', '--timeout', '10000']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^dpr: host 0 is draining: /m);
    assert.match(r.stdout, /^dpr: drained: no forwarded connections left/m);
    const mine = await statusJson(0);
    assert.equal(mine.draining, true);
    const theirs = await statusJson(1);
    assert.equal(theirs.hosts.find((h) => h.id === 0)!.draining, true);
    assert.deepEqual(theirs.liveHosts, [1]);
    const s = await cluster.load({ targets: [0, 1].map((id) => ({ address: hostAddress(id) })), requests: 300, concurrency: 6 });
    assert.equal(s.errors, 0, `errors: ${JSON.stringify(s.errorKinds)}`);
    assert.deepEqual(s.byTarget[hostAddress(0)]!.servedBy, { 0: s.byTarget[hostAddress(0)]!.ok }, 'a connection to the draining host was forwarded');
    assert.deepEqual(s.byTarget[hostAddress(1)]!.servedBy, { 1: s.byTarget[hostAddress(1)]!.ok }, 'a connection was forwarded to the draining host');
    const again = await dpr(hostName(0), 0, ['drain']);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^dpr: host 0 was already draining/m);
  });
});
