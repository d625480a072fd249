// A host firewall that drops what it does not know (INPUT policy DROP, as ufw
// and many hand-written rule sets have) must not break dpr: restored packets
// and heartbeats are accepted by dpr's own DPR_INPUT chain. The operator's
// firewall allows what any web server needs (loopback, the service port) and
// nothing of dpr's.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, hostAddress, hostName } from '../tools/cluster';

let cluster: Cluster;

before(async () => {
  cluster = await Cluster.create({ hosts: 2, policy: 'hash', tag: 'fw' });
  for (const id of [0, 1]) {
    const ipt = (...args: string[]) => cluster.bed.exec(hostName(id), ['iptables', '-w', ...args]);
    ipt('-A', 'INPUT', '-i', 'lo', '-j', 'ACCEPT');
    ipt('-A', 'INPUT', '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT');
    ipt('-A', 'INPUT', '-p', 'tcp', '--dport', '80', '-d', hostAddress(id), '-j', 'ACCEPT');
    ipt('-P', 'INPUT', 'DROP');
  }
});
after(async () => {
  await cluster?.destroy();
});

test('70.firewall: with INPUT policy DROP, peers stay up and forwarded connections are served', async () => {
  // Longer than peers.deadAfterMs (500 ms) several times over: dropped heartbeats would show.
  await new Promise((r) => setTimeout(r, 2000));
  for (const id of [0, 1]) {
    const peer = cluster.status(id).peers.find((p) => p.id === 1 - id)!;
    assert.ok(peer.up, `h${id} sees h${1 - id} down behind the firewall`);
  }
  const s = await cluster.load({ targets: [{ address: hostAddress(0) }], requests: 200, concurrency: 4, maxDurationMs: 20000 });
  assert.equal(s.errors, 0, `errors: ${JSON.stringify(s.errorKinds)}`);
  const served = s.byTarget[hostAddress(0)]!.servedBy;
  assert.ok((served[1] ?? 0) > 20, `connections to h0 served by: ${JSON.stringify(served)} (hash: about half by h1)`);
});
