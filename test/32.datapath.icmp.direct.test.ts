// Path MTU discovery through a forwarded connection in `direct` mode (as
// test/32.datapath.icmp does for `rewrite`): the serving host h1 answers as
// h0, so the router's "fragmentation needed" goes to h0, whose entry engine
// finds the flow's host (its table, or the hash) and routes the error there
// unchanged, marked for h1's table. h1 holds h0's address on lo, so its
// stack relates the error to the connection's socket and lowers the MTU.
// Without that, h1 sends 1500-byte segments into the hole until the
// download times out.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, hostAddress } from '../tools/cluster';
import { addRouter } from './support/router';
import { portsServedBy } from './support/hash-ports';

// Not 198.18.1.0/24: the split layout's back network (cluster addresses) is there.
const FAR_CLIENT = '198.18.2.2';
const SIZE = 2_000_000;

describe('32.datapath.icmp.direct', () => {
  test('direct mode: a large download over a forwarded connection to a client behind a smaller MTU completes', async () => {
    const cluster = await Cluster.create({ hosts: 2, tag: 'pmd', networks: 'split', config: { mode: 'direct' }, extraHosts: [{ name: 'rtr', address: '198.18.0.250' }] });
    try {
      addRouter(cluster.bed, {
        router: 'rtr', bridgeAddress: '198.18.0.250', far: 'far', farAddress: FAR_CLIENT, routerFarAddress: '198.18.2.1',
        routerFarMtu: 1280, hosts: ['h0', 'h1'],
      });
      const port = portsServedBy(1, 1, { client: FAR_CLIENT })[0]!;
      const e0 = cluster.status(0).entry!;
      const out = cluster.bed.exec('far', ['curl', '-sS', '--max-time', '15', '--local-port', String(port), '-o', '/dev/null',
        '-w', '%{http_code} %{size_download} %{remote_ip}', `http://${hostAddress(0)}/?size=${SIZE}`]);
      const [status, bytes, remote] = out.trim().split(' ');
      const e1 = cluster.status(0).entry!;
      const route = cluster.bed.exec('h1', ['ip', 'route', 'get', FAR_CLIENT, 'from', hostAddress(0)]).replace(/\s+/g, ' ').trim();
      const forwarded = e1.notes.icmp_forwarded - e0.notes.icmp_forwarded;
      console.log(`PMTU (direct): ${status} ${bytes} bytes from ${remote}; h0 forwarded ${forwarded} ICMP errors unchanged; h1: ${route}`);
      assert.equal(status, '200');
      assert.equal(Number(bytes), SIZE);
      assert.equal(remote, hostAddress(0), 'the client talked to h0\'s address');
      assert.ok(forwarded >= 1, 'h0 handed no ICMP error on');
      assert.ok(e1.newFlows.forwarded > e0.newFlows.forwarded, 'the connection was not forwarded');
      assert.match(route, /mtu 1280/, 'h1 learnt the path MTU towards the client');
    } finally {
      await cluster.destroy();
    }
  });
});
