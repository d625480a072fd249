// A host firewall that drops what it does not know (INPUT policy DROP, as ufw
// and many hand-written rule sets have) must not break dpr: restored packets
// and heartbeats are accepted by dpr's own DPR_INPUT chain. The operator's
// firewall allows what any web server needs (loopback, the service port) and
// nothing of dpr's; with heartbeats over IPv6 (peers.family ipv6) the same
// holds for ip6tables.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, hostAddress, hostAddress6, hostName } from '../tools/cluster';

/** Host `id`'s firewall for one family: loopback, answers, its web service; everything else dropped. */
function firewall(cluster: Cluster, id: number, family: 4 | 6): void {
  const ipt = (...args: string[]) => cluster.bed.exec(hostName(id), [family === 6 ? 'ip6tables' : 'iptables', '-w', ...args]);
  ipt('-A', 'INPUT', '-i', 'lo', '-j', 'ACCEPT');
  // Answers to TCP only: peers send each other heartbeats between the same two
  // ports both ways, so conntrack would take one direction for answers to the
  // other and let them in whatever DPR_INPUT says.
  ipt('-A', 'INPUT', '-p', 'tcp', '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT');
  // IPv6 finds its neighbours with ICMPv6 (solicitation, advertisement): any IPv6 firewall lets them in.
  if (family === 6) for (const type of ['135', '136']) ipt('-A', 'INPUT', '-p', 'ipv6-icmp', '--icmpv6-type', type, '-j', 'ACCEPT');
  ipt('-A', 'INPUT', '-p', 'tcp', '--dport', '80', '-d', family === 6 ? hostAddress6(id) : hostAddress(id), '-j', 'ACCEPT');
  ipt('-P', 'INPUT', 'DROP');
}

/** Longer than peers.deadAfterMs (500 ms) several times over: dropped heartbeats would show. */
async function assertPeersStayUp(cluster: Cluster): Promise<void> {
  await new Promise((r) => setTimeout(r, 2000));
  for (const id of [0, 1]) {
    const peer = cluster.status(id).peers.find((p) => p.id === 1 - id)!;
    assert.ok(peer.up, `h${id} sees h${1 - id} down behind the firewall`);
  }
}

describe('70.firewall', () => {
  let cluster: Cluster | undefined;
  after(async () => {
    await cluster?.destroy();
  });

  test('70.firewall: with INPUT policy DROP, peers stay up and forwarded connections are served', async () => {
    cluster = await Cluster.create({ hosts: 2, policy: 'hash', tag: 'fw' });
    for (const id of [0, 1]) firewall(cluster, id, 4);
    await assertPeersStayUp(cluster);
    const s = await cluster.load({ targets: [{ address: hostAddress(0) }], requests: 200, concurrency: 4, maxDurationMs: 20000 });
    assert.equal(s.errors, 0, `errors: ${JSON.stringify(s.errorKinds)}`);
    const served = s.byTarget[hostAddress(0)]!.servedBy;
    assert.ok((served[1] ?? 0) > 20, `connections to h0 served by: ${JSON.stringify(served)} (hash: about half by h1)`);
    await cluster.destroy();
    cluster = undefined;
  });

  test('70.firewall: heartbeats over IPv6 (peers.family ipv6), with INPUT policy DROP in ip6tables and iptables: peers stay up', async () => {
    cluster = await Cluster.create({ hosts: 2, policy: 'hash', ipv6: true, tag: 'fw6', config: { peers: { family: 'ipv6' } } });
    for (const id of [0, 1]) for (const family of [4, 6] as const) firewall(cluster, id, family);
    await assertPeersStayUp(cluster);
  });
});
