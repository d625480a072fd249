// IPv6 connections forwarded by a dual-stack cluster (issue 15): large
// transfers both ways arrive intact, a dead daemon leaves IPv6 traffic
// flowing (fail-open), and a restarted daemon keeps established IPv6 flows
// (the flow-table snapshot holds the IPv6 table). h0 has weight 0, so the
// policy forwards every new connection that reaches it to h1, and each of
// these connections is a forwarded one. Twice: on dual-stack hosts (hash),
// and on IPv6-only ones (load; no IPv4 address anywhere, heartbeats over IPv6).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Cluster, hostAddress6 } from '../tools/cluster';
import { assertHeld, RESTART_STALL_MS, sleep, waitFor } from './support/wait';

const MIB8 = 8 << 20;
const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

/** curl from the client to h0's IPv6 service address; the response body goes to `out`. */
function curl6(cluster: Cluster, query: string, out: string, upload?: string): { remote: string; status: string; bytes: number } {
  const argv = ['curl', '-sS', '-g', '--max-time', '40', '-o', out, '-w', '%{remote_ip} %{http_code} %{size_download}'];
  if (upload) argv.push('--data-binary', `@${upload}`, '-H', 'Content-Type: application/octet-stream', '-H', 'Expect:');
  argv.push(`http://[${hostAddress6(0)}]/${query}`);
  const [remote, status, bytes] = cluster.bed.exec('client', argv).trim().split(' ');
  return { remote: remote!, status: status!, bytes: Number(bytes) };
}

for (const ipv4 of [true, false]) describe(`63.cluster.ipv6 (${ipv4 ? 'dual-stack' : 'IPv6-only'} hosts)`, () => {
  let cluster: Cluster;
  let dir: string;
  before(async () => {
    // IPv6-only: the load policy (test/62.mode.direct.ipv6only has hash); weight 0 keeps h0 out of it too.
    cluster = await Cluster.create({ hosts: 2, policy: ipv4 ? 'hash' : 'load', ipv6: true, ipv4, weights: [0, 1], tag: ipv4 ? 'v6r' : 'v6o' });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpr-v6-'));
  });
  after(async () => {
    await cluster?.destroy();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('IPv6-only: no IPv4 address on the hosts, no iptables rule of dpr\'s (its saved sysctls only), and the peers see each other over IPv6', { skip: ipv4 }, () => {
    for (const h of ['h0', 'h1']) {
      assert.equal(cluster.bed.exec(h, ['ip', '-4', '-o', 'addr', 'show', 'scope', 'global']).trim(), '', `${h} has an IPv4 address`);
      const raw = cluster.bed.exec(h, ['iptables', '-w', '-t', 'raw', '-S']);
      const ours = raw.split('\n').filter((l) => /DPR_/.test(l));
      assert.ok(ours.every((l) => /DPR_SAVED/.test(l)), `${h}: dpr rules in iptables: ${ours.join('; ')}`);
      assert.match(cluster.bed.exec(h, ['ip6tables', '-w', '-t', 'raw', '-S']), /-A PREROUTING -j DPR_PRE/);
    }
    const peers = cluster.status(0).peers;
    // One network: h1's cluster6 is its service6.
    assert.deepEqual(peers.map((p) => [p.id, p.up, p.address]), [[1, true, hostAddress6(1)]]);
    const text = cluster.cli(0, ['status']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, new RegExp(`IPv6\\s+service ${hostAddress6(0)}: \\d+ flows`));
    assert.match(cluster.metrics(0), new RegExp(`^dpr_address_info\\{family="6",role="service",address="${hostAddress6(0)}"\\} 1$`, 'm'));
    assert.doesNotMatch(cluster.metrics(0), /dpr_address_info\{family="4"/);
  });

  test('an 8 MiB upload and an 8 MiB download through a forwarded IPv6 connection arrive intact, answered as h0', () => {
    const body = path.join(dir, 'up');
    // Not one repeated byte: a checksum or offset error must show in the hash.
    const data = Buffer.alloc(MIB8);
    for (let i = 0; i < data.length; i += 4) data.writeUInt32LE((i * 2654435761) >>> 0, i);
    fs.writeFileSync(body, data);
    const up = curl6(cluster, '', path.join(dir, 'up.out'), body);
    const answer = fs.readFileSync(path.join(dir, 'up.out'), 'utf8');
    assert.equal(up.status, '200');
    assert.equal(up.remote, hostAddress6(0), 'the client saw another address than it dialled');
    assert.match(answer, /^host=1\n/, 'not forwarded to h1');
    assert.equal(/sha256=(\w+)/.exec(answer)?.[1], sha256(data), 'the upload arrived changed');
    assert.equal(/bytes=(\d+)/.exec(answer)?.[1], String(MIB8));

    const down = curl6(cluster, `?size=${MIB8}`, path.join(dir, 'down'));
    const got = fs.readFileSync(path.join(dir, 'down'));
    assert.equal(down.status, '200');
    assert.equal(down.remote, hostAddress6(0));
    assert.equal(down.bytes, MIB8);
    // What tools/web-server.ts sends for ?size=N: its head line, padded with 'x'.
    assert.equal(sha256(got), sha256('host=1\n' + 'x'.repeat(MIB8 - 7)), 'the download arrived changed');
    const f = cluster.status(0).entry!;
    console.log(`ipv6 transfers: h0 forwarded ${f.actions.forward} packets, ${f.ipv6.packets} IPv6 packets seen, checksums full ${f.checksums.full} incremental ${f.checksums.incremental}`);
  });

  test('a restarted daemon keeps established IPv6 connections it forwarded (snapshot of the IPv6 table)', async () => {
    const held = cluster.hold({ address: hostAddress6(0), connections: 8, intervalMs: 200, durationMs: 6000, stallMs: RESTART_STALL_MS });
    await waitFor('the held IPv6 flows in h0\'s table', () => cluster.status(0).entry!.ipv6.flows >= 8, 5000);
    await sleep(1500); // past one snapshot (flows.snapshotMs 1000)
    await cluster.signalDaemon(0, 'SIGKILL');
    await cluster.startDaemon(0);
    const restored = cluster.status(0).restored;
    const conns = await held;
    console.log(`ipv6 restart: restored ${restored.flows} flows (${restored.forwarded} forwarded); longest wait ${Math.max(...conns.map((c) => c.maxWaitMs))} ms`);
    assert.ok(conns.every((c) => c.servedBy === '1'), 'every held connection is a forwarded one');
    assertHeld(conns, { minOk: 15, atLeast: 8 });
    assert.ok(restored.forwarded >= 8, `${restored.forwarded} forwarded flows read back for 8 forwarded IPv6 connections`);
    await cluster.waitForMembership();
  });

  test('with h0\'s daemon dead, new IPv6 connections to h0 are still served (fail-open)', async () => {
    await cluster.signalDaemon(0, 'SIGKILL');
    try {
      const s = await cluster.load({ targets: [{ address: hostAddress6(0) }], requests: 40, concurrency: 4 });
      console.log(`ipv6 fail-open: ${JSON.stringify(s.servedBy)}, errors ${s.errors}`);
      assert.equal(s.errors, 0, `errors: ${JSON.stringify(s.errorKinds)}`);
      assert.equal(s.addressMismatch, 0);
      assert.equal(s.servedBy['0'], 40, 'with no daemon, h0 serves its own arrivals');
    } finally {
      await cluster.startDaemon(0);
    }
  });
});
