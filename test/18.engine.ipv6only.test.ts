// The engines of IPv6-only hosts (issue 15): no IPv4 address in the lists
// (zeros), IPv6 ones for every host. An entry engine starts, forwards an IPv6
// SYN to the host its table names and rewrites it to that host's cluster6; a
// serving engine restores what a peer forwarded; and a table naming a host
// is still refused for IPv4 packets, which no such host can be sent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../lib/native';
import { addrs6, baseOptions, uniformTable } from './support/fixture-engines';
import { CLIENT, CLIENT6, CLUSTER6, PEER_PORT_BASE, SERVICE6, addr } from './support/cluster';
import { SYN, buildTcp4, buildTcp6, ipv6Bytes } from './support/packet-builder';

const none = new Uint32Array(SERVICE6.length);
const ipv6Only = { serviceAddrs: none, clusterAddrs: none, serviceAddrs6: addrs6(SERVICE6), clusterAddrs6: addrs6(CLUSTER6) };
/** The IPv6 destination address of a packet (bytes 24..40). */
const dst6 = (p: Uint8Array): string => Buffer.from(p.subarray(24, 40)).toString('hex');

test('18.ipv6only: an entry engine with no IPv4 addresses forwards an IPv6 SYN to the host its table names, to its cluster6', () => {
  const e = new Engine(baseOptions(ipv6Only));
  e.setLookupTable(uniformTable(2));
  const syn = buildTcp6({ src: CLIENT6, dst: addr(SERVICE6, 0), sport: 40001, dport: 80, flags: SYN, seq: 1000 });
  const out = e.process(syn, false, 1000);
  assert.equal(out.action, 'forward');
  assert.equal(out.target, 2);
  assert.equal(dst6(syn), Buffer.from(ipv6Bytes(addr(CLUSTER6, 2))).toString('hex'));
});

test('18.ipv6only: a serving engine with no IPv4 addresses restores an IPv6 packet a peer forwarded', () => {
  const e = new Engine(baseOptions({ ...ipv6Only, role: 'serve', self: 2 }));
  // From host 0 (peer port base + 0 x ports + 0), to this host's cluster6.
  const p = buildTcp6({ src: CLIENT6, dst: addr(CLUSTER6, 2), sport: 40001, dport: PEER_PORT_BASE, flags: SYN, seq: 1000, hopLimit: 255 });
  const out = e.process(p, false, 1000);
  assert.equal(out.action, 'restore', `note ${out.note}`);
  assert.equal(dst6(p), Buffer.from(ipv6Bytes(addr(SERVICE6, 0))).toString('hex'));
});

test('18.ipv6only: an IPv4 SYN is never sent to a host without IPv4 (served here, where no rule sends it anyway)', () => {
  const e = new Engine(baseOptions(ipv6Only));
  e.setLookupTable(uniformTable(2));
  const out = e.process(buildTcp4({ src: CLIENT, dst: '198.18.0.1', sport: 40001, dport: 80, flags: SYN, seq: 1 }), false, 1000);
  assert.notEqual(out.action, 'forward');
});
