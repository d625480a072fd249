// Bad input, live: malformed and odd packets sent at L2 (tools/c/packet_send)
// from the client namespace into a running cluster, at one host's service
// address and peer ports, while a normal load runs. Each kind ends where the
// catalogue (support/faults) says, and is counted there: by the kernel's IP
// layer, by reassembly, by the rules, or by the engine's reasons and notes.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Cluster, CLIENT_ADDRESS, hostAddress } from '../tools/cluster';
import path from 'node:path';
import { buildC, checkPasses, daemonPid, malformedSet, OUTSIDER, ruleCounters, rulePackets, runMalformed, sendPackets, sleep } from './support/faults';
import * as pb from './support/packet-builder';
import { repoRoot } from './support/repo';

const HOSTS = 3;
// 24 of each kind: a wrong TCP checksum is seen by h0's own stack only when
// the hash keeps it local (1 in 3); 24 copies make "none local" a 1-in-16,000 event.
const COPIES = 24;

/** The kinds docs/reliability.md's malformed-packets table names (backticked, in its first column). */
function documentedKinds(): string[] {
  const doc = fs.readFileSync(path.join(repoRoot(), 'docs', 'reliability.md'), 'utf8');
  const table = doc.slice(doc.indexOf('| kind | where it ends |'));
  const rows = table.slice(0, table.indexOf('\n\n')).split('\n').slice(2);
  return rows.flatMap((r) => [...(r.split('|')[1] ?? '').matchAll(/`([a-z0-9_]+)`/g)].map((m) => m[1]!));
}

test('65.malformed: the test sends exactly the kinds docs/reliability.md lists', () => {
  const sent = malformedSet({ client: CLIENT_ADDRESS, outsider: OUTSIDER, service: hostAddress(0), ownPeerPort: 20000, peerPeerPort: 20001, copies: 1 }).map((k) => k.kind);
  assert.deepEqual([...sent].sort(), [...documentedKinds()].sort());
});

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
    const r = await runMalformed(cluster, sender.bin, COPIES, load, 1500);
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
      const before = fresh.status(0).entry!;
      const dropped = (): number => [1, 2].reduce((sum, id) => sum + rulePackets(ruleCounters(fresh, `h${id}`), 'DPR_FORWARD', /-j DROP$/), 0);
      const droppedBefore = dropped();
      const packets: Uint8Array[] = [];
      for (let i = 0; i < COPIES; i++) {
        packets.push(pb.buildTcp4({ src: CLIENT_ADDRESS, dst: hostAddress(0), sport: 30000 + i, dport: 80, flags: pb.SYN | pb.FIN }));
      }
      const sent = await sendPackets(fresh, sender.bin, 'client', 'h0', packets);
      assert.equal(sent.sent, COPIES, `packet_send: ${JSON.stringify(sent)}`);
      await sleep(1000); // long enough for a loop to show: one used to forward a packet ~20,000 times a second
      const after = fresh.status(0).entry!;
      const forwards = after.actions.forward - before.actions.forward;
      const arrived = after.packets - before.packets;
      const droppedAtPeers = dropped() - droppedBefore;
      console.log(`SYN+FIN x${COPIES}: h0's entry queue saw ${arrived}, forwarded ${forwards} times within 1 s; the serving hosts dropped ${droppedAtPeers} restored ones`);
      // They arrived, the hash sent about two in three on (each once), and the
      // serving hosts dropped those instead of routing them back to h0.
      assert.equal(arrived, COPIES, 'the entry queue did not see every packet');
      assert.ok(forwards >= 1, 'nothing was forwarded: the test shows nothing');
      assert.ok(forwards <= COPIES, `${COPIES} packets were forwarded ${forwards} times`);
      assert.equal(droppedAtPeers, forwards, 'every forwarded SYN+FIN ends at its serving host');
    } finally {
      await fresh.destroy();
    }
  });
});
