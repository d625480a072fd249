// A host whose web server dies while its dpr daemon keeps running (a crash,
// or a deploy restarting it): once its health checks fail, no new connection
// goes to it, the connections that arrive at its own address go to healthy
// peers, and it gets connections again once the server is back. The bench
// (`npm run bench -- reliability`, "web server dies") measures how soon.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, hostAddress } from '../tools/cluster';
import { probe } from './support/faults';
import { sleep, waitFor } from './support/wait';

/** Connections refused (or otherwise failed) among probes started in [from, to) ms after `t0`. */
function failedBetween(probes: Awaited<ReturnType<typeof probe>>, t0: number, from: number, to: number): number {
  return probes.filter((p) => p.startedAt >= t0 + from && p.startedAt < t0 + to && p.error !== null).length;
}

for (const policy of ['hash', 'load'] as const) {
  describe(`67.faults.webserver.${policy}`, () => {
    test(`a dead web server gets no new connections once its checks fail, its host forwards what arrives, and it is back after \`rise\` checks (${policy})`, async () => {
      // 50 ms per request keeps h0 busy enough that the load policy forwards
      // (a dead server has no connections: it looks like the idlest peer).
      const cluster = await Cluster.create({ hosts: 4, policy, tag: 'ws', serviceMs: 50, slots: 64, config: { load: { threshold: 2 } } });
      try {
        const health = cluster.status(0).health;
        assert.equal(health.type, 'tcp', 'health checks are on by default');
        const settleMs = 3000;
        const running = probe(cluster, { address: hostAddress(0), intervalMs: 10, durationMs: 1500 + settleMs + 1500, timeoutMs: 3000 });
        await sleep(1500);
        const killedAt = Date.now();
        await cluster.killWebServer(2);
        const detectedMs = await waitFor('h0 drops host 2', () => !cluster.status(0).liveHosts.includes(2), settleMs, 20);
        const unhealthySeen = cluster.status(0).peers.find((p) => p.id === 2)!;
        const probes = await running;
        const before = probes.filter((p) => p.startedAt < killedAt);
        const window = failedBetween(probes, killedAt, 0, detectedMs + 300);
        const late = probes.filter((p) => p.startedAt >= killedAt + detectedMs + 300);
        console.log(`web server death (${policy}): h0 excluded h2 ${detectedMs} ms after the kill; ` +
          `${window} connections failed meanwhile, ${late.filter((p) => p.error).length} of ${late.length} after; ` +
          `h2 served ${before.filter((p) => p.servedBy === 2).length} of ${before.length} before`);
        assert.ok(before.some((p) => p.servedBy === 2), 'h2 served nothing before: the test shows nothing');
        assert.equal(unhealthySeen.up, true, 'h2\'s daemon still heartbeats');
        assert.equal(unhealthySeen.healthy, false, 'h2 says its service is unhealthy');
        assert.equal(late.filter((p) => p.error !== null).length, 0, `errors after detection: ${JSON.stringify(late.filter((p) => p.error).map((p) => p.error))}`);
        assert.equal(late.filter((p) => p.servedBy === 2).length, 0);

        // h2 itself: what arrives at its address goes to healthy peers.
        await waitFor('h2 knows it is unhealthy', () => !cluster.status(2).health.healthy, 2000);
        const atH2 = await cluster.load({ targets: [{ address: hostAddress(2) }], requests: 100, concurrency: 4, timeoutMs: 3000 });
        assert.equal(atH2.errors, 0, `connections to h2's address: ${JSON.stringify(atH2.errorKinds)}`);
        assert.equal(atH2.addressMismatch, 0);
        assert.equal(atH2.servedBy['2'] ?? 0, 0);

        // Back: after `rise` good checks h2 is eligible again and gets connections.
        await cluster.startWebServer(2);
        await waitFor('h0 takes host 2 back', () => cluster.status(0).liveHosts.includes(2), 5000, 20);
        const after = await cluster.load({ targets: [{ address: hostAddress(0) }, { address: hostAddress(2) }], requests: 400, concurrency: 16 });
        assert.equal(after.errors, 0, `errors: ${JSON.stringify(after.errorKinds)}`);
        assert.ok((after.servedBy['2'] ?? 0) > 0, `h2 got nothing after it came back: ${JSON.stringify(after.servedBy)}`);
      } finally {
        await cluster.destroy();
      }
    });
  });
}

describe('67.faults.webserver.all', () => {
  test('with every host unhealthy (HTTP checks answered 503), each host serves what reaches it; when they recover, routing resumes', async () => {
    const cluster = await Cluster.create({ hosts: 3, tag: 'wa', config: { health: { type: 'http', http: { path: '/health', statuses: '200' } } } });
    try {
      for (let id = 0; id < 3; id++) cluster.signalWebServer(id, 'SIGUSR1');
      await waitFor('every host fails open', () => [0, 1, 2].every((id) => cluster.status(id).failOpen), 5000);
      const s = await cluster.load({ targets: [0, 1, 2].map((id) => ({ address: hostAddress(id) })), requests: 300, concurrency: 6 });
      assert.equal(s.errors, 0, `errors: ${JSON.stringify(s.errorKinds)}`);
      for (let id = 0; id < 3; id++) {
        const t = s.byTarget[hostAddress(id)]!;
        assert.equal(t.servedBy[String(id)], t.ok, `connections to h${id} served elsewhere: ${JSON.stringify(t.servedBy)}`);
      }
      assert.match(cluster.metrics(0), /^dpr_fail_open 1$/m);
      for (let id = 0; id < 3; id++) cluster.signalWebServer(id, 'SIGUSR2');
      await waitFor('routing resumes', () => cluster.status(0).liveHosts.join() === '0,1,2' && !cluster.status(0).failOpen, 5000);
      const t = await cluster.load({ targets: [{ address: hostAddress(0) }], requests: 300, concurrency: 6 });
      assert.equal(t.errors, 0, `errors: ${JSON.stringify(t.errorKinds)}, served by ${JSON.stringify(t.servedBy)}`);
      assert.ok((t.servedBy['1'] ?? 0) > 0 && (t.servedBy['2'] ?? 0) > 0, `after recovery: ${JSON.stringify(t.servedBy)}`);
      assert.match(cluster.metrics(0), /^dpr_health_checks_total\{port="80",result="failed"\} [1-9]/m);
    } finally {
      await cluster.destroy();
    }
  });
});
