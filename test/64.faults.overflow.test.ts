// Queue overflow: more packets than the daemon takes. The entry queue holds
// queues.maxLen packets; while the daemon is paused (SIGSTOP) new connections
// keep coming, and the kernel lets every SYN past the full queue to the local
// server (fail-open). Counted from the kernel's side: the NFQUEUE rules' hits
// less what the daemon received, dropped and waiting (lib/kernel-queue).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, hostAddress } from '../tools/cluster';
import { failedOpen, type QueueSample } from '../lib/kernel-queue';
import { daemonPid, entryQueueSample, kernelQueues, sleep } from './support/faults';
import { waitFor } from './support/wait';

const MAX_LEN = 8;

for (const policy of ['hash', 'load'] as const) {
  describe(`64.faults.overflow.${policy}`, () => {
    test(`a full entry queue lets new connections through to the local server, counted, and the daemon carries on (${policy})`, async () => {
      const cluster = await Cluster.create({ hosts: 2, policy, tag: 'of', config: { queues: { maxLen: MAX_LEN }, load: { threshold: 1 } } });
      try {
        const sample = (): QueueSample => entryQueueSample(cluster);
        const pid = daemonPid(cluster, 0);
        const startedAt = cluster.status(0).startedAt;
        const before = sample();

        process.kill(pid, 'SIGSTOP');
        let paused: QueueSample['kernel'];
        let summary;
        try {
          const load = cluster.load({ targets: [{ address: hostAddress(0) }], requests: 300, concurrency: 16, timeoutMs: 10000 });
          await sleep(1500);
          paused = kernelQueues(cluster, 'h0').find((q) => q.queueNum === 0)!;
          process.kill(pid, 'SIGCONT');
          summary = await load;
        } finally {
          process.kill(pid, 'SIGCONT');
        }
        await sleep(300);
        const after = sample();
        const overflowed = failedOpen(before, after);
        const st = cluster.status(0);
        const e = st.entry!;
        console.log(`overflow (${policy}): maxLen ${MAX_LEN}, held while paused ${paused.queueTotal}, rule hits ${after.hits - before.hits}, ` +
          `daemon received ${after.received - before.received}, failed open ${overflowed}; load ${summary.ok}/${summary.requests} ok, p99 ${summary.p99Ms} ms`);

        // The kernel held exactly maxLen packets for the paused daemon and let the rest through.
        assert.equal(paused.queueTotal, MAX_LEN);
        assert.ok(overflowed > 0, 'no packet overflowed: the test shows nothing');
        assert.equal(summary.errors, 0, `errors: ${JSON.stringify(summary.errorKinds)}`);
        assert.equal(summary.ok, 300);
        // Fail-open, not fail-closed: the kernel dropped nothing, and nothing is left waiting.
        assert.equal(after.kernel.queueDropped, 0);
        assert.equal(after.kernel.userDropped, 0);
        assert.equal(after.kernel.queueTotal, 0);
        // The same daemon, still bound to its queue, with sane counters.
        assert.equal(daemonPid(cluster, 0), pid);
        assert.equal(st.startedAt, startedAt);
        assert.equal(after.kernel.peerPortId, before.kernel.peerPortId);
        // Every packet got one action.
        assert.equal(Object.values(e.actions).reduce((a, b) => a + b, 0), e.packets);
        assert.equal(e.packets, e.queue.batchPackets);
        assert.equal(e.queue.recvErrors + e.queue.sendErrors + e.queue.verdictErrors, 0);
        // ...and it still serves: one connection at a time (so this small queue cannot fill again).
        const later = await cluster.load({ targets: [{ address: hostAddress(0) }], requests: 60, concurrency: 1 });
        assert.equal(later.errors, 0, `errors after the pause: ${JSON.stringify(later.errorKinds)}`);
        if (policy === 'hash') assert.ok((later.servedBy['1'] ?? 0) > 0, `nothing forwarded after the pause: ${JSON.stringify(later.servedBy)}`);
      } finally {
        await cluster.destroy();
      }
    });
  });
}

// Later packets of forwarded flows have a queue of their own without
// fail-open (queues.flows): while it is full the kernel drops them and TCP
// sends them again; the local stack, which would reset them, never sees them.
describe('64.faults.overflow.forwarded', () => {
  test('forwarded connections are not reset while the entry queue is full', async () => {
    const cluster = await Cluster.create({ hosts: 2, tag: 'ofw', config: { queues: { maxLen: MAX_LEN } } });
    try {
      // Up is not yet eligible: h1's first health report puts it in h0's table
      // (before that, every held connection stayed local and none overflowed).
      await waitFor('h1 in h0\'s table', () => cluster.status(0).liveHosts.includes(1), 10000);
      // Each forwarded connection has a request in the flows queue while the
      // daemon is paused, and TCP sends it again (at 0.2, 0.6, 1.4 s): three
      // of them overflow its MAX_LEN packets. Opened 20 ms apart: 16 SYNs at
      // once overflowed the entry queue, and served here (fail-open), only 2
      // to 9 were forwarded, once too few.
      const held = cluster.hold({ address: hostAddress(0), connections: 16, intervalMs: 100, durationMs: 5000, openEveryMs: 20 });
      await sleep(1000);
      const pid = daemonPid(cluster, 0);
      process.kill(pid, 'SIGSTOP');
      try {
        // New connections fill the queue while the daemon is paused.
        const load = cluster.load({ targets: [{ address: hostAddress(0) }], requests: 200, concurrency: 16, timeoutMs: 10000 });
        await sleep(1500);
        process.kill(pid, 'SIGCONT');
        await load;
      } finally {
        process.kill(pid, 'SIGCONT');
      }
      const conns = await held;
      const forwarded = conns.filter((c) => c.servedBy !== '0');
      const broken = forwarded.filter((c) => c.error !== null);
      const flowsQueue = kernelQueues(cluster, 'h0').find((q) => q.queueNum === 2)!;
      console.log(`overflow with held connections: ${broken.length} of ${forwarded.length} forwarded connections broke (${broken[0]?.error ?? '-'}); ` +
        `flows queue dropped ${flowsQueue.queueDropped}, longest wait ${Math.max(...conns.map((c) => c.maxWaitMs))} ms`);
      assert.ok(forwarded.length >= 3, `only ${forwarded.length} connections were forwarded, too few to fill the flows queue: the test shows nothing`);
      assert.ok(flowsQueue.queueDropped > 0, 'the flows queue never overflowed: the test shows nothing');
      assert.equal(broken.length, 0);
    } finally {
      await cluster.destroy();
    }
  });
});
