// A SYN flood at one host: spoofed SYNs from addresses that do not exist
// (bench/c/syn_flood, distinct 4-tuples) while long-lived connections run and
// a normal load opens new ones. Embryonic flows have their own budget
// (flows.maxEmbryonic), so the flood cannot evict established flows; the
// table is bounded, so the daemon's memory is too.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Cluster, hostAddress } from '../tools/cluster';
import { buildC, daemonPid, entryQueueSample, flowCount, rssKb, synFlood } from './support/faults';
import { assertHeld, sleep, waitFor } from './support/wait';
import { failedOpen, type QueueSample } from '../lib/kernel-queue';

const FLOOD = 30_000;
// Bursts smaller than the entry queue (queues.maxLen 4096): a full queue
// resets forwarded connections (test/64's todo), which is not what this test
// is about. The bench floods 100k in bursts larger than the queue.
const BURSTS = 15;

describe('66.faults.synflood', () => {
  test(`${FLOOD} spoofed SYNs: held connections survive, memory and flows stay bounded, >= 90% of new connections succeed`, async () => {
    const flooder = buildC('bench/c/syn_flood.c');
    const cluster = await Cluster.create({ hosts: 3, tag: 'sf' });
    try {
      const max = cluster.configFor(0).flows as { max: number; maxEmbryonic: number };
      const pid = daemonPid(cluster, 0);
      // Held for as long as the flood and the load take, whatever this machine makes of that.
      const held = cluster.holdOpen({ address: hostAddress(0), connections: 24, intervalMs: 200 });
      // Their SYNs decided (local flows stay in the syn state: their later packets never reach the queue).
      await waitFor('the held connections decided', () => {
        const f = cluster.status(0).entry!.flows;
        return f.syn + f.established >= 24;
      }, 10000);
      await sleep(500);
      const sample = (): QueueSample => entryQueueSample(cluster);
      const rssBefore = rssKb(pid);
      const before = cluster.status(0).entry!;
      const q0 = sample();
      const load = cluster.load({ targets: [{ address: hostAddress(0) }], requests: 600, concurrency: 6, timeoutMs: 15000, maxDurationMs: 30000 });
      const flood = await synFlood(cluster, flooder.bin, { dst: hostAddress(0), count: FLOOD, bursts: BURSTS, gapMs: 300 });
      const during = cluster.status(0).entry!;
      const overflowed = failedOpen(q0, sample());
      const s = await load;
      const conns = await held.stop();
      const rssAfter = rssKb(pid);
      const e = cluster.status(0).entry!;
      const share = s.ok / s.requests;
      const forwarded = conns.filter((c) => c.servedBy !== '0');
      console.log(`SYN flood: ${flood.sent} sent (${flood.errors} send errors) in ${BURSTS} bursts; ` +
        `new connections ${s.ok}/${s.requests} ok (${(share * 100).toFixed(1)}%, p99 ${s.p99Ms} ms, errors ${JSON.stringify(s.errorKinds)}); ` +
        `held ${conns.filter((c) => c.error === null).length}/${conns.length} (forwarded ${forwarded.length}); ` +
        `daemon RSS ${rssBefore} -> ${rssAfter} KiB; flows during ${flowCount(during)} (embryonic ${during.flows.syn + during.flows.pending}), ` +
        `table_full ${e.notes.table_full - before.notes.table_full}, failed open ${overflowed}, new flows ${e.newFlows.local + e.newFlows.forwarded - before.newFlows.local - before.newFlows.forwarded}`);

      assert.ok(flood.sent >= FLOOD * 0.99, `only ${flood.sent} SYNs left the sender`);
      // The flood was big enough to matter: it filled the embryonic budget.
      assert.ok(e.notes.table_full > before.notes.table_full, 'the embryonic budget was never full: the test shows nothing');
      // Established flows, forwarded ones included, were not evicted: every held connection lived.
      assert.ok(forwarded.length > 0, 'no held connection was forwarded: the test shows nothing');
      // At one request per 200 ms for the whole flood and load (several seconds): at least 10 answers each.
      assertHeld(conns, { minOk: 10, atLeast: 24 });
      assert.ok(during.flows.forwarded.established >= forwarded.length, `${during.flows.forwarded.established} forwarded flows in the table for ${forwarded.length} held`);
      // Bounded: the table and the daemon's memory.
      assert.ok(flowCount(during) <= max.max && flowCount(e) <= max.max);
      assert.ok(during.flows.syn + during.flows.pending <= max.maxEmbryonic);
      assert.ok(rssAfter - rssBefore < 64 * 1024, `RSS grew by ${rssAfter - rssBefore} KiB`);
      // Legitimate new connections still got through.
      assert.ok(share >= 0.9, `only ${(share * 100).toFixed(1)}% of new connections succeeded`);
      assert.equal(daemonPid(cluster, 0), pid);
    } finally {
      await cluster.destroy();
      fs.rmSync(flooder.dir, { recursive: true, force: true });
    }
  });
});
