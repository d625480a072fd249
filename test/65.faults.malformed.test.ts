// Bad input, live: malformed and odd packets sent at L2 (tools/c/packet_send)
// from the client namespace into a running cluster, at one host's service
// address and peer ports, while a normal load runs. Each kind ends where the
// catalogue (support/faults) says, and is counted there: by the kernel's IP
// layer, by reassembly, by the rules, or by the engine's reasons and notes.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Cluster, CLIENT_ADDRESS, hostAddress } from '../tools/cluster';
import { buildC, checkPasses, daemonPid, runMalformed, sendPackets, sleep } from './support/faults';
import * as pb from './support/packet-builder';

const HOSTS = 3;
const COPIES = 12;

describe('65.faults.malformed', () => {
  let cluster: Cluster;
  let sender: { bin: string; dir: string };
  before(async () => {
    sender = buildC('tools/c/packet_send.c');
    cluster = await Cluster.create({ hosts: HOSTS, tag: 'mf' });
    // A plain switch: with br_netfilter loaded, the test bed's bridge would
    // check IPv4 headers itself and drop the IP-level garbage before it
    // reached the host under test.
    cluster.bed.sysctl('sw', 'net.bridge.bridge-nf-call-iptables', 0);
  });
  after(async () => {
    await cluster?.destroy();
    if (sender) fs.rmSync(sender.dir, { recursive: true, force: true });
  });

  test('malformed packets during a normal load: 0 load errors, the daemon lives, each kind counted where it ends', async () => {
    const pid = daemonPid(cluster, 0);
    const load = { targets: [0, 1, 2].map((id) => ({ address: hostAddress(id) })), requests: 1500, concurrency: 8, maxDurationMs: 40000 };
    const r = await runMalformed(cluster, sender.bin, COPIES, load, 3000);
    console.log(`malformed run: ${r.sent.sent} bad packets of ${r.kinds.length} kinds; load ${r.load.ok}/${r.load.requests} ok; ` +
      `counters ${r.checks.map((c) => `${c.counter} ${c.seen}${c.atLeast ? '>=' : '/'}${c.expected}`).join(', ')}; ` +
      `TcpInCsumErrors by host ${r.tcpCsumErrors}; entry notes ${JSON.stringify(r.entryNotes)}`);

    assert.equal(r.sent.sent, r.kinds.reduce((s, k) => s + k.packets, 0), `packet_send: ${JSON.stringify(r.sent)}`);
    // Normal traffic is unaffected and the daemon is the same process.
    assert.equal(r.load.errors, 0, `load errors: ${JSON.stringify(r.load.errorKinds)}`);
    assert.equal(r.load.addressMismatch, 0);
    assert.equal(daemonPid(cluster, 0), pid);
    assert.equal(r.daemonRestarted, false);
    // Each kind counted where it ended: the IP layer, reassembly, the rules, the engine.
    for (const c of r.checks) assert.ok(checkPasses(c), `${c.counter}: saw ${c.seen}, expected ${c.atLeast ? 'at least ' : ''}${c.expected}`);
    // Wrong TCP checksums reach a TCP stack and are dropped there (those kept local, at least).
    const csum = r.tcpCsumErrors.reduce((a, b) => a + b, 0);
    assert.ok(csum >= 1 && csum <= COPIES, `TcpInCsumErrors over the hosts: ${r.tcpCsumErrors}`);
  });

  test('odd packets that conntrack refuses are not bounced between entry and serving host', async () => {
    // A cluster of its own, so the count is this test's packets only.
    const fresh = await Cluster.create({ hosts: HOSTS, tag: 'mfb' });
    try {
      const before = fresh.status(0).entry!.actions.forward;
      const packets: Uint8Array[] = [];
      for (let i = 0; i < COPIES; i++) {
        packets.push(pb.buildTcp4({ src: CLIENT_ADDRESS, dst: hostAddress(0), sport: 30000 + i, dport: 80, flags: pb.SYN | pb.FIN }));
      }
      await sendPackets(fresh, sender.bin, 'client', 'h0', packets);
      await sleep(1000);
      const forwards = fresh.status(0).entry!.actions.forward - before;
      console.log(`SYN+FIN x${COPIES}: h0 forwarded them ${forwards} times within 1 s`);
      assert.ok(forwards <= COPIES, `${COPIES} packets were forwarded ${forwards} times`);
    } finally {
      await fresh.destroy();
    }
  });
});
