// Peers a router apart (peers.routersBetween): each host's cluster address is
// on a network of its own behind a router namespace. Forwarded packets keep
// the client's source address, so the serving host accepts peer-port packets
// only with the TTL an entry host at most routersBetween routers away can
// produce (GTSM). The setting must match the network: with 1 the cluster
// works across the router, with 0 the serving host drops what the router
// delivers.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Cluster, hostAddress } from '../tools/cluster';
import { ruleTotals } from './support/rules';

describe('60.cluster.routed', () => {
  test('peers.routersBetween 1 carries forwarded connections across a router; 0 makes the serving host drop them', async () => {
    const cluster = await Cluster.create({ hosts: 2, tag: 'rt', networks: 'routed', config: { peers: { routersBetween: 1 } } });
    try {
      const drops = (): number => ruleTotals(cluster.bed, 'h1', 'raw', 'DPR_SERVE', /-j DROP$/);
      const before = drops();
      const ok = await cluster.load({ targets: [{ address: hostAddress(0) }], requests: 200, concurrency: 8 });
      assert.equal(ok.errors, 0, `errors: ${JSON.stringify(ok.errorKinds)}`);
      assert.ok((ok.servedBy['1'] ?? 0) > 40, `host 1 served ${ok.servedBy['1'] ?? 0} of 200 across the router`);
      assert.equal(drops() - before, 0, 'the serving host dropped forwarded packets');

      // The same host with routersBetween 0: its rules now expect peers on its own link.
      const file = cluster.configFiles[1]!;
      const config = JSON.parse(fs.readFileSync(file, 'utf8')) as { peers: Record<string, unknown> };
      config.peers.routersBetween = 0;
      fs.writeFileSync(file, JSON.stringify(config));
      cluster.install(1);
      const dropsBefore = drops();
      const bad = await cluster.load({ targets: [{ address: hostAddress(0) }], requests: 40, concurrency: 8, timeoutMs: 1500 });
      console.log(`routersBetween 0 across a router: ${bad.errors} of 40 failed (${JSON.stringify(bad.errorKinds)}), served ${JSON.stringify(bad.servedBy)}, h1 dropped ${drops() - dropsBefore}`);
      assert.equal(bad.servedBy['1'] ?? 0, 0, 'host 1 served a connection it should have dropped');
      assert.ok(bad.errors > 0, 'no connection was sent to host 1: the test shows nothing');
      assert.ok(drops() - dropsBefore >= bad.errors, 'every failed connection\'s SYN was dropped by the TTL rule');
    } finally {
      await cluster.destroy();
    }
  });
});
