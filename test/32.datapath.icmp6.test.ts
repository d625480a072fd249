// Path MTU discovery over IPv6 through a forwarded connection (issue 15):
// ICMPv6 "packet too big" about a forwarded flow reaches the serving host.
// As in test/32.datapath.icmp and 32.datapath.icmp.direct, but IPv6 routers
// never fragment, so without it the download cannot finish at all: the far
// client's router has a 1280-byte link (IPv6's minimum) towards it, the
// client asks for 1440-byte segments, the serving host h1 answers as h0, and
// the router's "packet too big" goes to h0's address, whose entry engine hands it
// on to h1 (rewrite: through its serve queue; direct: routed unchanged;
// tunnel: into the VXLAN device towards h1).
//
// Which connections are forwarded is fixed by the Maglev table and the test
// key, so a fixed set of client ports gives the same split every run; the
// test asserts that some were forwarded rather than assume it.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, hostAddress6 } from '../tools/cluster';
import { addRouter } from './support/router';

// Not 198.18.1.0/24 nor 2001:2:0:1::/64 (the split layout's back network), nor
// in 198.18.8.0/21 or 2001:2:0:8::/61 (the routed layout's).
const FAR_CLIENT = '198.18.2.2';
const FAR_CLIENT6 = '2001:2:0:3::2';
const SIZE = 2_000_000;
const PORTS = [41001, 41002, 41003, 41004, 41005, 41006, 41007, 41008];

const NETWORKS = { rewrite: 'one', direct: 'split', tunnel: 'routed' } as const;

for (const mode of ['rewrite', 'direct', 'tunnel'] as const) {
  describe(`32.datapath.icmp6.${mode}`, () => {
    test(`${mode} mode: large IPv6 downloads over forwarded connections to a client behind a 1280-byte link complete`, async () => {
      const cluster = await Cluster.create({
        hosts: 2, ipv6: true, tag: `p6${mode[0]}`, networks: NETWORKS[mode],
        config: { mode }, extraHosts: [{ name: 'rtr', address: '198.18.0.250' }],
      });
      try {
        addRouter(cluster.bed, {
          router: 'rtr', bridgeAddress: '198.18.0.250', far: 'far', farAddress: FAR_CLIENT, routerFarAddress: '198.18.2.1',
          routerFarMtu: 1280, hosts: ['h0', 'h1'],
          six: { bridgeAddress: '2001:2::fa', farAddress: FAR_CLIENT6, routerFarAddress: '2001:2:0:3::1' },
        });
        const e0 = cluster.status(0).entry!;
        const s0 = cluster.status(1).entry!;
        const results = PORTS.map((port) => {
          const out = cluster.bed.exec('far', ['curl', '-sS', '-g', '--max-time', '15', '--local-port', String(port), '-o', '/dev/null',
            '-w', '%{http_code} %{size_download} %{remote_ip}', `http://[${hostAddress6(0)}]/?size=${SIZE}`]);
          return out.trim().split(' ');
        });
        const e1 = cluster.status(0).entry!;
        const s1 = cluster.status(1).entry!;
        const forwardedFlows = e1.newFlows.forwarded - e0.newFlows.forwarded;
        const icmpForwarded = e1.notes.icmp_forwarded - e0.notes.icmp_forwarded;
        const restored = s1.notes.icmp_restored - s0.notes.icmp_restored;
        console.log(`PMTU over IPv6 (${mode}): ${JSON.stringify(results)}; h0 forwarded ${forwardedFlows} of ${PORTS.length} connections and ${icmpForwarded} ICMPv6 errors; h1 restored ${restored}`);
        for (const [status, bytes, remote] of results) {
          assert.equal(status, '200');
          assert.equal(Number(bytes), SIZE);
          assert.equal(remote, hostAddress6(0), 'the client talked to h0\'s address');
        }
        assert.ok(forwardedFlows >= 1, `none of client ports ${PORTS.join(', ')} was forwarded: pick others`);
        assert.ok(icmpForwarded >= 1, 'h0 handed no ICMPv6 error on');
        // rewrite: h1's serve engine gives the error h0's address back (direct, tunnel: h1 holds it on lo, nothing to restore).
        if (mode === 'rewrite') assert.ok(restored >= 1, 'h1 restored none');
      } finally {
        await cluster.destroy();
      }
    });
  });
}
