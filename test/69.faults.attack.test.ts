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
import { Cluster, hostAddress } from '../tools/cluster';
import { ruleCounters, rulePackets } from './support/faults';
import { portsServedBy } from './support/hash-ports';

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
