// A reload (setHosts) while flows live, driven through the Engine: a flow
// whose serving host the new lists no longer hold must not be sent anywhere
// (found by the IPv6 fuzz work: to `::` when a peer lost its IPv6 addresses,
// and past the end of the address list when the list got shorter). It goes
// to the local stack, which resets it, and is counted (`host_gone`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine, type NativeEngine } from '../lib/native';
import { parseIpv4 } from '../lib/ipv4';
import { addrs6, baseOptions, uniformTable } from './support/fixture-engines';
import { CLIENT, CLIENT6, CLUSTER, CLUSTER6, SERVICE, SERVICE6, addr } from './support/cluster';
import { ACK, PSH, SYN, buildTcp4, buildTcp6, textPayload } from './support/packet-builder';

const v4 = (list: readonly (string | null)[]): Uint32Array => Uint32Array.from(list, (a) => (a === null ? 0 : parseIpv4(a)));
const syn4 = buildTcp4({ src: CLIENT, dst: addr(SERVICE, 0), sport: 40001, dport: 80, flags: SYN, seq: 1000 });
const ack4 = () => buildTcp4({ src: CLIENT, dst: addr(SERVICE, 0), sport: 40001, dport: 80, flags: ACK | PSH, seq: 1001, payload: textPayload(5) });
const syn6 = buildTcp6({ src: CLIENT6, dst: addr(SERVICE6, 0), sport: 40001, dport: 80, flags: SYN, seq: 1000 });
const ack6 = () => buildTcp6({ src: CLIENT6, dst: addr(SERVICE6, 0), sport: 40001, dport: 80, flags: ACK | PSH, seq: 1001, payload: textPayload(5) });

/** Host 0, every new flow hashed to host 2. */
function entryToHost2(): NativeEngine {
  const e = new Engine(baseOptions());
  e.setLookupTable(uniformTable(2));
  return e;
}

for (const [family, syn, ack] of [['IPv4', syn4, ack4], ['IPv6', syn6, ack6]] as const) {
  test(`18.reload: ${family}: a flow to a host the list no longer reaches (a shorter list) goes to the local stack`, () => {
    const e = entryToHost2();
    assert.equal(e.process(syn.slice(), false, 1000).target, 2);
    // Host 2 is gone: ids 0 and 1 only (the table still names 2 until the next push).
    e.setHosts(v4(SERVICE.slice(0, 2)), v4(CLUSTER.slice(0, 2)), addrs6(SERVICE6.slice(0, 2)), addrs6(CLUSTER6.slice(0, 2)));
    const out = e.process(ack(), false, 1001);
    assert.equal(out.action, 'accept');
    assert.equal(out.mangled, false);
    assert.equal(out.note, 'host_gone');
    assert.equal(e.stats().notes.host_gone, 1);
  });
}

test('18.reload: an IPv6 flow to a host that lost its IPv6 addresses is not rewritten to ::', () => {
  const e = entryToHost2();
  assert.equal(e.process(syn6.slice(), false, 1000).action, 'forward');
  const service6 = [...SERVICE6];
  const cluster6 = [...CLUSTER6];
  service6[2] = null;
  cluster6[2] = null;
  e.setHosts(v4(SERVICE), v4(CLUSTER), addrs6(service6), addrs6(cluster6));
  const out = e.process(ack6(), false, 1001);
  assert.equal(out.action, 'accept', `${out.action} to host ${out.target}`);
  assert.equal(out.note, 'host_gone');
  // The IPv4 flows of that host still go to it.
  assert.equal(e.process(syn4.slice(), false, 1002).target, 2);
  assert.equal(e.process(ack4(), false, 1003).action, 'forward');
});
