// The flow table's export and import (what a restart reads back), through the
// same Engine the queue uses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine, FLOW_WORDS, FLOW_WORDS6 } from '../lib/native';
import { baseOptions, uniformTable } from './support/fixture-engines';
import { ACK, PSH, SYN, buildTcp4, buildTcp6, textPayload } from './support/packet-builder';
import { CLIENT, CLIENT6, SERVICE, SERVICE6 } from './support/cluster';

function engineToPeer() {
  const e = new Engine(baseOptions());
  e.setLookupTable(uniformTable(1));
  return e;
}

const syn = (port: number) => buildTcp4({ src: CLIENT, dst: SERVICE[0]!, sport: port, dport: 80, flags: SYN });
// With data: a bare ACK would leave the flow on probation, not established.
const ack = (port: number) => buildTcp4({ src: CLIENT, dst: SERVICE[0]!, sport: port, dport: 80, flags: ACK | PSH, payload: textPayload(8) });

test('12.flows: exported flows come back in a new engine with their host, state and age', () => {
  const a = engineToPeer();
  for (let p = 40000; p < 40010; p++) {
    a.process(syn(p), false, 1000);
    a.process(ack(p), false, 1000);
  }
  const words = a.exportFlows(3000);
  assert.equal(words.length, 10 * FLOW_WORDS);
  assert.ok([...words].filter((_, i) => i % FLOW_WORDS === FLOW_WORDS - 1).every((age) => age === 2000));

  // A restarted engine whose hash now says "local" still forwards the old flows.
  const b = new Engine(baseOptions());
  b.setLookupTable(uniformTable(0));
  assert.equal(b.importFlows(words, 50_000), 10);
  assert.equal(b.stats().flows.established, 10);
  assert.equal(b.stats().flows.forwarded.established, 10);
  const out = b.process(ack(40003), false, 50_000);
  assert.equal(out.action, 'forward');
  assert.equal(out.target, 1);
  assert.equal(b.process(syn(41000), false, 50_000).action, 'accept', 'a new flow follows the new table');
});

test('12.flows: import skips flows that expired, name unknown hosts or another service address, and takes the rest', () => {
  const e = engineToPeer();
  // Real exported rows for the service address, one 4-tuple each, then spoil all but one.
  for (const p of [40000, 40001, 40002, 40003]) {
    e.process(syn(p), false, 0);
    e.process(ack(p), false, 0);
  }
  const words = [...e.exportFlows(0)];
  assert.equal(words.length, 4 * FLOW_WORDS);
  const row = (i: number): number[] => words.slice(i * FLOW_WORDS, (i + 1) * FLOW_WORDS);
  const [a, b, c, good] = [row(0), row(1), row(2), row(3)];
  const age = FLOW_WORDS - 1;
  const expired = [...a.slice(0, age), 10_000_000];
  const unknownHost = [b[0]!, b[1]!, b[2]!, (3 << 16) | 3, ...b.slice(4, age), 10];
  const otherService = [c[0]!, 0x0a000001, ...c.slice(2, age), 10];
  // Each spoiled row alone is refused, so none of them can pass by hiding behind another.
  for (const [what, bad] of [['expired', expired], ['unknown host', unknownHost], ['other service address', otherService]] as const) {
    assert.equal(new Engine(baseOptions()).importFlows(Uint32Array.from(bad), 1_000_000), 0, `${what} row was taken`);
  }
  // And together with a good row, only the good one is taken.
  const fresh = new Engine(baseOptions());
  assert.equal(fresh.importFlows(Uint32Array.from([...expired, ...unknownHost, ...otherService, ...good]), 1_000_000), 1);
  assert.equal(fresh.stats().flows.established, 1);
  const out = fresh.process(ack(good[2]! >>> 16), false, 1_000_000);
  assert.equal(out.action, 'forward', 'the good row routes as before');
});

// IPv6: its own table and its own rows (FLOW_WORDS6), beside the IPv4 ones.
const syn6 = (port: number) => buildTcp6({ src: CLIENT6, dst: SERVICE6[0]!, sport: port, dport: 80, flags: SYN });
const ack6 = (port: number) => buildTcp6({ src: CLIENT6, dst: SERVICE6[0]!, sport: port, dport: 80, flags: ACK | PSH, payload: textPayload(8) });

test('12.flows: IPv6 flows export and import apart from IPv4 ones, with their host, state and age', () => {
  const a = engineToPeer();
  for (let p = 40000; p < 40006; p++) {
    a.process(syn6(p), false, 1000);
    a.process(ack6(p), false, 1000);
  }
  a.process(syn(45000), false, 1000);
  assert.equal(a.exportFlows(3000).length, FLOW_WORDS, 'the IPv4 export holds the IPv4 flow only');
  const words = a.exportFlows6(3000);
  assert.equal(words.length, 6 * FLOW_WORDS6);
  assert.equal(a.stats().ipv6.flows, 6);
  assert.ok([...words].filter((_, i) => i % FLOW_WORDS6 === FLOW_WORDS6 - 1).every((age) => age === 2000));

  const b = new Engine(baseOptions());
  b.setLookupTable(uniformTable(0));
  assert.equal(b.importFlows(words, 50_000), 0, 'IPv6 rows read as IPv4 ones fit nothing');
  assert.equal(b.importFlows6(words, 50_000), 6);
  assert.equal(b.stats().flows.forwarded.established, 6);
  const out = b.process(ack6(40003), false, 50_000);
  assert.equal(out.action, 'forward');
  assert.equal(out.target, 1);
  assert.equal(b.process(syn6(41000), false, 50_000).action, 'accept', 'a new IPv6 flow follows the new table');

  // A host without IPv6 takes none of them.
  const v4only = new Engine(baseOptions({ serviceAddrs6: undefined, clusterAddrs6: undefined }));
  assert.equal(v4only.importFlows6(words, 50_000), 0);
  assert.equal(v4only.exportFlows6(50_000).length, 0);
});

test('12.flows: IPv6 import skips rows of another service address or an unknown host', () => {
  const e = engineToPeer();
  for (const p of [40000, 40001, 40002]) {
    e.process(syn6(p), false, 0);
    e.process(ack6(p), false, 0);
  }
  const words = [...e.exportFlows6(0)];
  const row = (i: number): number[] => words.slice(i * FLOW_WORDS6, (i + 1) * FLOW_WORDS6);
  const [a, b, good] = [row(0), row(1), row(2)];
  const otherService = [...a.slice(0, 4), ...a.slice(4, 8).map((w, i) => (i === 3 ? w ^ 0x01000000 : w)), ...a.slice(8)];
  const unknownHost = [...b.slice(0, 9), (3 << 16) | 3, ...b.slice(10)];
  for (const [what, bad] of [['other service address', otherService], ['unknown host', unknownHost]] as const) {
    assert.equal(new Engine(baseOptions()).importFlows6(Uint32Array.from(bad), 10), 0, `${what} row was taken`);
  }
  assert.equal(new Engine(baseOptions()).importFlows6(Uint32Array.from([...otherService, ...unknownHost, ...good]), 10), 1);
});
