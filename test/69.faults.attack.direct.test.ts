// The attack suite's blind RST and SYN storm in `direct` mode: after the SYN
// the entry host no longer follows the client's sequence numbers (the kernel
// routes its packets), so a blind RST shortens a forwarded flow's ipset entry
// to flows.resetTimeoutMs; a connection that goes on talking renews it once
// the 5 s hold-off is over (docs/design-notes.md, "Kernel modes"). Active
// connections must survive the storm; the serving host's TCP judges the RSTs.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Cluster, CLIENT_ADDRESS, hostAddress } from '../tools/cluster';
import { buildC, rstSynStorm, sendPackets, sleep } from './support/faults';

describe('69.faults.attack.direct', () => {
  test('direct mode: a blind RST and SYN storm at every client port breaks no active forwarded connection (load policy)', async () => {
    const sender = buildC('tools/c/packet_send.c');
    // The load policy, which has no hash to fall back on: a flow whose entry and
    // engine entry were both gone would meet the local stack, and break.
    const cluster = await Cluster.create({ hosts: 3, policy: 'load', tag: 'ard', networks: 'split', config: { mode: 'direct', load: { threshold: 0 } }, extraHosts: [{ name: 'atk', address: '198.18.0.66' }] });
    try {
      cluster.bed.sysctl('client', 'net.ipv4.ip_local_port_range', '40000 40127');
      const ports = Array.from({ length: 128 }, (_, i) => 40000 + i);
      // 14 s: past the reset timeout (10 s) the spoofed RSTs set, so an entry they had cut would show.
      const start = cluster.status(0).entry!;
      const held = cluster.hold({ address: hostAddress(0), connections: 16, intervalMs: 200, durationMs: 14000 });
      await sleep(2000);
      const before = cluster.status(0).entry!;
      const sent = await sendPackets(cluster, sender.bin, 'atk', 'h0', rstSynStorm(CLIENT_ADDRESS, hostAddress(0), ports), 50);
      const after = cluster.status(0).entry!;
      const conns = await held;
      const end = cluster.status(0).entry!;
      // Packets that found no kernel entry and no local socket go to the flows
      // queue: the storm's own RSTs at the ports with no connection (3 each),
      // and packets of forwarded flows the storm would have pushed out of the kernel.
      const viaQueue = (end.queue.flowsPackets ?? 0) - (start.queue.flowsPackets ?? 0) - 3 * (ports.length - 16);
      const forwarded = conns.filter((c) => c.servedBy !== '0');
      const d = (k: keyof typeof after.notes): number => after.notes[k] - before.notes[k];
      console.log(`direct RST/SYN storm: ${sent.sent} spoofed packets at 128 ports; ${conns.filter((c) => c.error !== null).length} of ${conns.length} held connections broken (${forwarded.length} forwarded); syn_on_flow ${d('syn_on_flow')}, syn_redecided ${d('syn_redecided')}; ${viaQueue} packets of held flows through the flows queue`);
      assert.equal(sent.sent, 128 * 6);
      assert.ok(forwarded.length >= 4, 'too few connections forwarded: the test shows nothing');
      for (const c of conns) {
        assert.equal(c.error, null, `a connection served by ${c.servedBy} broke: ${c.error}`);
        assert.equal(c.moved, false);
        assert.ok(c.ok >= 40, `a connection served by ${c.servedBy} had only ${c.ok} answers in 14 s`);
      }
      // A few per flow at most (an ACK that beats its entry's renewal); a flow out of the kernel would send ~5 a second.
      assert.ok(viaQueue <= 3 * forwarded.length, `${viaQueue} packets of ${forwarded.length} forwarded flows went through the flows queue`);
    } finally {
      await cluster.destroy();
      fs.rmSync(sender.dir, { recursive: true, force: true });
    }
  });
});
