// The queue thread's idle tick and sweep on a host whose only flows are IPv6
// (issue 15): the IPv6 table is the engine's own, beside the IPv4 one, and an
// idle thread must wake for it as for IPv4 flows, so that its expired flows
// leave the table (and the counts drain waits on) with no other traffic.
// One Queue (test/support/queue-driver) in a host namespace; one IPv6 SYN
// from a second namespace (bench/c/syn_flood), nothing else.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { Testbed } from './support/netns';
import { buildC } from './support/faults';
import { startQueueDriver, type DriverSpec } from './support/queue-driver';
import { waitFor } from './support/wait';

const HOST = '198.18.0.1';
const HOST6 = '2001:2::1';
const SENDER = '198.18.0.16';
const SENDER6 = '2001:2::16';
const SYN_MS = 1000;

const spec: DriverSpec = {
  queue: { queueNum: 0, maxLen: 4096, rcvBufBytes: 1 << 20, batchSize: 64 },
  engine: {
    role: 'entry', policy: 'hash', self: 0, serviceAddrs: [HOST], clusterAddrs: [HOST],
    serviceAddrs6: [HOST6], clusterAddrs6: [HOST6], servicePorts: [80],
    peerPortBase: 20000, forwardMark: 0x100, serveMark: 0x200, maxFlows: 65536, maxEmbryonic: 65536,
    timeouts: { synMs: SYN_MS, establishedMs: 900000, closingMs: 120000 },
  },
  lookupTable: [0],
};

// The SYN is queued, kept local, and ends in INPUT: no answer, no retry.
const RULES6 = [
  '*raw', `-A PREROUTING -p tcp -d ${HOST6} --dport 80 -j NFQUEUE --queue-num 0`, 'COMMIT',
  '*filter', '-A INPUT -p tcp --dport 80 -j DROP', 'COMMIT', '',
].join('\n');

describe('31.queue.ipv6', { skip: process.getuid?.() !== 0 ? 'needs root (namespaces, NFQUEUE)' : undefined }, () => {
  let bed: Testbed;
  let sender: { bin: string; dir: string };

  before(() => {
    sender = buildC('bench/c/syn_flood.c');
    bed = Testbed.create([
      { name: 'host', addrs: [`${HOST}/24`, `${HOST6}/64`] },
      { name: 'client', addrs: [`${SENDER}/24`, `${SENDER6}/64`] },
    ], 'q6');
    bed.exec('host', ['ip6tables-restore'], RULES6);
  });

  after(async () => {
    await bed?.destroy();
    if (sender) fs.rmSync(sender.dir, { recursive: true, force: true });
  });

  test('31.queue: with only an IPv6 flow in the tables, the idle thread still sweeps: the flow expires with no other traffic', async () => {
    const driver = await startQueueDriver(bed, 'host', spec);
    try {
      execFileSync('ip', ['netns', 'exec', bed.ns('client'), sender.bin, '--dst', HOST6, '--src', SENDER6, '--flows', '1', '--count', '1']);
      // The export wakes the thread once: it has taken the SYN in.
      await waitFor('the IPv6 SYN in the flow table', async () => (await driver.send('export', 5000, { family: 6 })).flows === 1, 5000);
      const before = (await driver.send('stats')).stats!;
      assert.equal(before.packets, 1, 'the queue saw other packets than the one SYN');
      // The whole table is swept every 15 s; the flow is embryonic and expired after SYN_MS.
      // Only counters are read from here on: nothing wakes the thread but its own tick.
      await waitFor('the expired IPv6 flow swept', async () => (await driver.send('stats')).stats!.flows.expired >= 1, 25000, 250);
      const after = (await driver.send('stats')).stats!;
      assert.equal(after.ipv6.flows, 0, 'the swept flow is still counted');
      assert.equal(after.packets, 1, 'other packets came and woke the thread');
      await driver.send('stop');
    } finally {
      driver.child.kill('SIGKILL');
    }
  });
});
