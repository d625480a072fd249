// The data path under attack, end to end (issue 11): a namespace cluster
// (tools/cluster.ts: the real daemon and rules), a client, and where needed an
// attacker namespace that sends spoofed packets at L2. Each case is something
// an off-path attacker can send or a corner the verdict path must survive;
// each fails on the code before issue 11.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CLIENT_ADDRESS, Cluster, hostAddress } from '../tools/cluster';
import { buildC, nstat, rstSynStorm, ruleCounters, rulePackets, sendPackets, sleep } from './support/faults';
import { portsServedBy } from './support/hash-ports';
import { addRouter } from './support/router';
import { ACK, PSH, SYN, buildTcp4, setIpField16, textPayload } from './support/packet-builder';

const FOREIGN = '0x4000/0x4000';

/** One request from the client with a chosen source port; `body` is POSTed from a file. */
function curlFrom(cluster: Cluster, port: number, o: { body?: string; maxTime?: number } = {}): { status: string; body: string } {
  const argv = ['curl', '-sS', '--max-time', String(o.maxTime ?? 20), '--local-port', String(port), '-o', '-', '-w', '\n%{http_code}'];
  if (o.body) argv.push('--data-binary', `@${o.body}`);
  const out = cluster.bed.exec('client', [...argv, `http://${hostAddress(0)}/`]);
  const i = out.lastIndexOf('\n');
  return { body: out.slice(0, i), status: out.slice(i + 1) };
}

describe('69.faults.attack.verdicts', () => {
  test('another program\'s mark bits survive our verdicts, on the entry and the serving host', async () => {
    const cluster = await Cluster.create({ hosts: 2, tag: 'amk' });
    try {
      // Other software marks the packets first (its bit 0x4000), and looks for its bit later.
      cluster.bed.exec('h0', ['iptables', '-t', 'raw', '-I', 'PREROUTING', '1', '-p', 'tcp', '--dport', '80', '-j', 'MARK', '--set-xmark', FOREIGN]);
      cluster.bed.exec('h0', ['iptables', '-t', 'mangle', '-A', 'POSTROUTING', '-p', 'tcp', '-d', hostAddress(1), '-m', 'mark', '--mark', FOREIGN]);
      cluster.bed.exec('h1', ['iptables', '-t', 'raw', '-I', 'PREROUTING', '1', '-p', 'tcp', '--dport', '20000:20001', '-j', 'MARK', '--set-xmark', FOREIGN]);
      cluster.bed.exec('h1', ['iptables', '-t', 'mangle', '-A', 'INPUT', '-p', 'tcp', '--dport', '80', '-m', 'mark', '--mark', FOREIGN]);
      for (const port of portsServedBy(1, 5)) assert.match(curlFrom(cluster, port).body, /^host=1/);
      const forwarded = rulePackets(ruleCounters(cluster, 'h0'), 'POSTROUTING', /--mark 0x4000\/0x4000/);
      const restored = rulePackets(ruleCounters(cluster, 'h1'), 'INPUT', /--mark 0x4000\/0x4000/);
      const e = cluster.status(0).entry!;
      console.log(`foreign mark: ${forwarded} forwarded packets left h0 with it, ${restored} restored packets reached h1's server with it; h0 forwarded ${e.actions.forward}`);
      assert.ok(e.actions.forward >= 10);
      assert.ok(forwarded >= e.actions.forward * 0.9, `only ${forwarded} of ${e.actions.forward} forwarded packets kept the bit`);
      assert.ok(restored >= 10, `only ${restored} restored packets kept the bit`);
    } finally {
      await cluster.destroy();
    }
  });

  test('a small netlink send buffer costs system calls, not verdicts: a 4 MB upload through a forwarded connection completes', async () => {
    // 64 KiB asked, 128 KiB granted: two verdicts carrying whole GSO packets fill it.
    const cluster = await Cluster.create({ hosts: 2, tag: 'asb', config: { queues: { sndBufBytes: 65536 } } });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpr-upload-'));
    try {
      const body = path.join(dir, 'body');
      fs.writeFileSync(body, Buffer.alloc(4 << 20, 'y'));
      const r = curlFrom(cluster, portsServedBy(1, 1)[0]!, { body, maxTime: 30 });
      const q = cluster.status(0).entry!.queue;
      console.log(`upload: status ${r.status}, ${r.body.trim()}; h0 send limit ${q.sendLimit} B, batches split ${q.batchesSplit}, verdicts lost ${q.sendErrors}, mean batch ${(q.batchPackets / q.batches).toFixed(1)}`);
      assert.equal(r.status, '200');
      assert.match(r.body, /^host=1/);
      assert.ok(q.sendLimit < 200_000, `send limit ${q.sendLimit}: the small buffer was not taken`);
      assert.equal(q.sendErrors, 0);
      assert.equal(q.batchesSplit, 0, 'batches are sized to fit: the kernel never refused one');
    } finally {
      await cluster.destroy();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** SYNs to host 1's peer port for origin 0 (as if h0 had forwarded them), with a TTL an entry host sends. */
function forgedPeerPortSyns(count: number): Uint8Array[] {
  return Array.from({ length: count }, (_, i) =>
    buildTcp4({ src: CLIENT_ADDRESS, dst: hostAddress(1), sport: 5000 + i, dport: 20000, flags: SYN, seq: 1000 + i, ttl: 255 }));
}

function serveDrops(cluster: Cluster): number {
  return rulePackets(ruleCounters(cluster, 'h1'), 'DPR_SERVE', /^-j DROP$/);
}

describe('69.faults.attack.peer_ports', () => {
  test('GTSM: a TTL-255 packet from one router farther than peers.routersBetween allows is dropped, never restored', async () => {
    const sender = buildC('tools/c/packet_send.c');
    const cluster = await Cluster.create({ hosts: 2, tag: 'agt', extraHosts: [{ name: 'rtr', address: '198.18.0.250' }] });
    try {
      addRouter(cluster.bed, { router: 'rtr', bridgeAddress: '198.18.0.250', far: 'atk', farAddress: '198.18.9.2', routerFarAddress: '198.18.9.1', hosts: [] });
      const routerMac = cluster.bed.exec('rtr', ['cat', '/sys/class/net/far0/address']).trim();
      const drops0 = serveDrops(cluster);
      const restores0 = cluster.status(1).serve!.actions.restore;
      const child = cluster.bed.spawn('atk', [sender.bin, '--ifname', 'eth0', '--dst-mac', routerMac], { stdio: ['pipe', 'pipe', 'pipe'] });
      child.stdin!.end(forgedPeerPortSyns(20).map((p) => Buffer.from(p).toString('hex')).join('\n') + '\n');
      await new Promise((r) => child.once('close', r));
      await sleep(300);
      const drops = serveDrops(cluster) - drops0;
      const restores = cluster.status(1).serve!.actions.restore - restores0;
      console.log(`GTSM from one router away (TTL 255 -> 254): ${drops} dropped by DPR_SERVE, ${restores} restored`);
      assert.equal(drops, 20, 'every forged packet is dropped by the TTL rule');
      assert.equal(restores, 0, 'none reached the serve queue');
      // Forwarded packets still pass: TTL 255 is set after h0's forwarding decrement.
      assert.match(curlFrom(cluster, portsServedBy(1, 1)[0]!).body, /^host=1/);
    } finally {
      await cluster.destroy();
      fs.rmSync(sender.dir, { recursive: true, force: true });
    }
  });

  test('one L2 segment: a forged TTL 255 from a MAC that is not the named entry host\'s is dropped and counted; real forwards pass', async () => {
    const sender = buildC('tools/c/packet_send.c');
    const cluster = await Cluster.create({ hosts: 2, tag: 'amc' });
    try {
      assert.match(curlFrom(cluster, portsServedBy(1, 1)[0]!).body, /^host=1/, 'a forwarded connection works with the MAC check on');
      // That connection's last packets (the client's final ACK) may still be on their way: count from when they are in.
      let before = cluster.status(1).serve!;
      for (let settled = false; !settled;) {
        await sleep(150);
        const now = cluster.status(1).serve!;
        settled = now.actions.restore === before.actions.restore;
        before = now;
      }
      const sent = await sendPackets(cluster, sender.bin, 'client', 'h1', forgedPeerPortSyns(20));
      await sleep(300);
      const after = cluster.status(1).serve!;
      const badMac = after.notes.bad_peer_mac - before.notes.bad_peer_mac;
      const restores = after.actions.restore - before.actions.restore;
      console.log(`forged TTL 255 on the segment: ${sent.sent} sent, ${badMac} dropped as bad_peer_mac, ${restores} restored`);
      assert.equal(sent.sent, 20);
      assert.equal(badMac, 20);
      assert.equal(restores, 0, 'h1 would have answered them as h0');
      assert.equal(after.notes.peer_mac_unknown, 0, 'h0\'s MAC was known from the neighbour table');
    } finally {
      await cluster.destroy();
      fs.rmSync(sender.dir, { recursive: true, force: true });
    }
  });
});

/** An IPv4 packet cut into fragments of `chunk` payload bytes (a multiple of 8), as a sender's IP layer would. */
function fragments(packet: Uint8Array, chunk = 1480): Uint8Array[] {
  const body = packet.subarray(20);
  const out: Uint8Array[] = [];
  for (let off = 0; off < body.length; off += chunk) {
    const part = body.subarray(off, Math.min(body.length, off + chunk));
    const f = new Uint8Array(20 + part.length);
    f.set(packet.subarray(0, 20));
    f.set(part, 20);
    const more = off + chunk < body.length ? 0x2000 : 0;
    out.push(setIpField16(setIpField16(f, 2, f.length), 6, more | (off / 8)));
  }
  return out;
}

describe('69.faults.attack.oversize', () => {
  test('packets larger than the queue copies (reassembled to 65,535 bytes) of a forwarded flow are dropped and counted, never answered by the local stack', async () => {
    const sender = buildC('tools/c/packet_send.c');
    const cluster = await Cluster.create({ hosts: 2, tag: 'aov' });
    try {
      // Ports the hash sends to h1: the entry host must not answer for them.
      const ports = portsServedBy(1, 5, { first: 30000 });
      const packets = ports.flatMap((sport) => fragments(setIpField16(
        buildTcp4({ src: CLIENT_ADDRESS, dst: hostAddress(0), sport, dport: 80, flags: ACK | PSH, seq: 1, ack: 1, payload: textPayload(65535 - 40) }),
        6, 0))); // no DF: the pieces are fragments
      const rsts0 = nstat(cluster, 'h0').TcpOutRsts ?? 0;
      const reasm0 = nstat(cluster, 'h0').IpReasmOKs ?? 0;
      const before = cluster.status(0).entry!;
      const sent = await sendPackets(cluster, sender.bin, 'client', 'h0', packets);
      await sleep(500);
      const after = cluster.status(0).entry!;
      const rsts = (nstat(cluster, 'h0').TcpOutRsts ?? 0) - rsts0;
      const reassembled = (nstat(cluster, 'h0').IpReasmOKs ?? 0) - reasm0;
      const oversize = after.notes.oversize - before.notes.oversize;
      console.log(`oversize: ${sent.sent} fragments, ${reassembled} packets of 65,535 bytes reassembled at h0; ${oversize} counted oversize, ` +
        `${after.actions.drop - before.actions.drop} dropped; h0 sent ${rsts} resets`);
      assert.equal(reassembled, 5, 'h0 did not reassemble them: the test shows nothing');
      assert.equal(oversize, 5);
      assert.equal(after.actions.drop - before.actions.drop, 5);
      assert.equal(rsts, 0, 'the local stack saw them and reset the flows');
    } finally {
      await cluster.destroy();
      fs.rmSync(sender.dir, { recursive: true, force: true });
    }
  });
});

describe('69.faults.attack.reset', () => {
  test('a blind RST and SYN storm at every client port breaks no forwarded connection (load policy)', async () => {
    const sender = buildC('tools/c/packet_send.c');
    const cluster = await Cluster.create({ hosts: 3, policy: 'load', tag: 'ars', config: { load: { threshold: 1 } }, extraHosts: [{ name: 'atk', address: '198.18.0.66' }] });
    try {
      // The client's ports are few, so the attacker can try every one (it guesses ~28k in the wild).
      cluster.bed.sysctl('client', 'net.ipv4.ip_local_port_range', '40000 40127');
      const ports = Array.from({ length: 128 }, (_, i) => 40000 + i);
      // Two waves: the load policy forwards the second, once the first is measured.
      const first = cluster.hold({ address: hostAddress(0), connections: 12, intervalMs: 200, durationMs: 7000 });
      await sleep(600);
      const second = cluster.hold({ address: hostAddress(0), connections: 12, intervalMs: 200, durationMs: 6400 });
      await sleep(2000);
      const before = cluster.status(0).entry!;
      const sent = await sendPackets(cluster, sender.bin, 'atk', 'h0', rstSynStorm(CLIENT_ADDRESS, hostAddress(0), ports), 50);
      const after = cluster.status(0).entry!;
      const conns = [...(await first), ...(await second)];
      const forwarded = conns.filter((c) => c.servedBy !== '0');
      const broken = conns.filter((c) => c.error !== null || c.moved);
      const d = (k: keyof typeof after.notes): number => after.notes[k] - before.notes[k];
      console.log(`RST/SYN storm: ${sent.sent} spoofed packets at 128 ports; ${broken.length} of ${conns.length} held connections broken ` +
        `(${forwarded.length} forwarded); rst_out_of_window ${d('rst_out_of_window')}, rst_in_window ${d('rst_in_window')}, syn_on_flow ${d('syn_on_flow')}`);
      assert.equal(sent.sent, 128 * 6);
      assert.ok(forwarded.length > 0, 'no connection was forwarded: the test shows nothing');
      // Three spoofed RSTs at each port, so three per forwarded flow; asked:
      // two. Five runs on record gave exactly three, one 53 for 18 (which RST
      // went astray was not found; one that finds the entry queue full goes
      // around it, fail-open). A storm that missed the flows would give none.
      assert.ok(d('rst_out_of_window') >= forwarded.length * 2, `the spoofed RSTs did not meet the forwarded flows (${d('rst_out_of_window')} for ${forwarded.length})`);
      for (const c of conns) {
        assert.equal(c.error, null, `a connection served by ${c.servedBy} broke: ${c.error}`);
        assert.equal(c.moved, false);
      }
    } finally {
      await cluster.destroy();
      fs.rmSync(sender.dir, { recursive: true, force: true });
    }
  });
});

describe('69.faults.attack.synflood', () => {
  test('SYNs past queues.synLimit a second go to the kernel directly (load policy); the daemon sees about the limit, new connections succeed', async () => {
    const flooder = buildC('bench/c/syn_flood.c');
    const limit = 2000;
    const cluster = await Cluster.create({ hosts: 2, policy: 'load', tag: 'asl', config: { queues: { synLimit: limit } }, extraHosts: [{ name: 'atk', address: '198.18.0.66' }] });
    try {
      const before = cluster.status(0).entry!.queue;
      const bypass0 = rulePackets(ruleCounters(cluster, 'h0'), 'DPR_ENTRY', /SYN -j ACCEPT$/);
      const t0 = Date.now();
      const flood = cluster.bed.spawn('atk', [flooder.bin, '--dst', hostAddress(0), '--src', '198.18.0.100', '--flows', '60000', '--count', '40000', '--seconds', '10', '--pps', '20000']);
      const load = await cluster.load({ targets: [{ address: hostAddress(0) }], requests: 100, concurrency: 4, timeoutMs: 5000 });
      await new Promise((r) => flood.once('close', r));
      const seconds = (Date.now() - t0) / 1000;
      const after = cluster.status(0).entry!.queue;
      const queued = (after.batchPackets - after.flowsPackets!) - (before.batchPackets - before.flowsPackets!);
      const bypassed = rulePackets(ruleCounters(cluster, 'h0'), 'DPR_ENTRY', /SYN -j ACCEPT$/) - bypass0;
      console.log(`SYN limit ${limit}/s: 40,000 SYNs in ${seconds.toFixed(1)} s; ${queued} reached the entry queue, ${bypassed} went to the kernel directly; load ${load.ok}/${load.requests} ok`);
      assert.ok(bypassed >= 30000, `only ${bypassed} SYNs went around the queue`);
      assert.ok(queued <= limit * (seconds + 1) + limit / 10, `${queued} SYNs reached the queue in ${seconds.toFixed(1)} s`);
      assert.equal(load.errors, 0, JSON.stringify(load.errorKinds));
    } finally {
      await cluster.destroy();
      fs.rmSync(flooder.dir, { recursive: true, force: true });
    }
  });
});
