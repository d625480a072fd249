// Path MTU discovery through a forwarded connection (issue 11, item 6). The
// client sits behind a router whose link towards it has a smaller MTU (1280)
// than the cluster's (1500); the client's own link is 1500, so it asks for
// 1460-byte segments. The serving host h1 answers as h0, so the router's
// "fragmentation needed" goes to h0, which has no socket for it: h0's entry
// engine finds the flow from the quoted header and hands the error to h1,
// which gives it h0's address back so that conntrack and NAT deliver it to
// the connection's socket. Without that, h1 sends 1500-byte segments into
// the hole until the download times out.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, hostAddress } from '../tools/cluster';
import { addRouter } from './support/router';
import { portsServedBy } from './support/hash-ports';

const FAR_CLIENT = '198.18.1.2';
const SIZE = 2_000_000;

describe('32.datapath.icmp', () => {
  test('a large download over a forwarded connection to a client behind a smaller MTU completes (fragmentation needed reaches the serving host)', async () => {
    const cluster = await Cluster.create({ hosts: 2, tag: 'pm', extraHosts: [{ name: 'rtr', address: '198.18.0.250' }] });
    try {
      addRouter(cluster.bed, {
        router: 'rtr', bridgeAddress: '198.18.0.250', far: 'far', farAddress: FAR_CLIENT, routerFarAddress: '198.18.1.1',
        routerFarMtu: 1280, hosts: ['h0', 'h1'],
      });
      const port = portsServedBy(1, 1, { client: FAR_CLIENT })[0]!;
      const e0 = cluster.status(0).entry!;
      const s1 = cluster.status(1).entry!;
      const out = cluster.bed.exec('far', ['curl', '-sS', '--max-time', '15', '--local-port', String(port), '-o', '/dev/null',
        '-w', '%{http_code} %{size_download} %{remote_ip}', `http://${hostAddress(0)}/?size=${SIZE}`]);
      const [status, bytes, remote] = out.trim().split(' ');
      const e1 = cluster.status(0).entry!;
      const t1 = cluster.status(1).entry!;
      const route = cluster.bed.exec('h1', ['ip', 'route', 'get', FAR_CLIENT]).replace(/\s+/g, ' ').trim();
      const forwarded = e1.notes.icmp_forwarded - e0.notes.icmp_forwarded;
      const restored = t1.notes.icmp_restored - s1.notes.icmp_restored;
      console.log(`PMTU: ${status} ${bytes} bytes from ${remote}; h0 forwarded ${forwarded} ICMP errors, h1 restored ${restored}; h1: ${route}`);
      assert.equal(status, '200');
      assert.equal(Number(bytes), SIZE);
      assert.equal(remote, hostAddress(0), 'the client talked to h0\'s address');
      assert.ok(forwarded >= 1, 'h0 handed no ICMP error on');
      assert.ok(restored >= 1, 'h1 restored none');
      assert.match(route, /mtu 1280/, 'h1 learnt the path MTU towards the client');
    } finally {
      await cluster.destroy();
    }
  });
});
