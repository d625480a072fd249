// The flow table's export and import (what a restart reads back), through the
// same Engine the queue uses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine, FLOW_WORDS } from '../lib/native';
import { baseOptions, uniformTable } from './support/fixture-engines';
import { ACK, PSH, SYN, buildTcp4, textPayload } from './support/packet-builder';
import { CLIENT, SERVICE } from './support/cluster';

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
