// The flow table as the data path sees it, driven through the Engine: budgets,
// timeouts, state changes on FIN and RST, and the counts exported by stats().
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine, type EngineOptions, type NativeEngine } from '../lib/native';
import { baseOptions, uniformTable } from './support/fixture-engines';
import { CLIENT, SERVICE, addr } from './support/cluster';
import { ACK, FIN, PSH, RST, SYN, buildTcp4, textPayload } from './support/packet-builder';

const S0 = addr(SERVICE, 0);
const T0 = 1000;

/** Host 0 forwarding every client to host 1, with a small table. */
function entry(over: Partial<EngineOptions> = {}): NativeEngine {
  const e = new Engine(baseOptions({ maxFlows: 64, maxEmbryonic: 8, ...over }));
  e.setLookupTable(uniformTable(1));
  return e;
}

/** One client segment of connection `port` (the client port names the flow). */
function send(e: NativeEngine, port: number, flags: number, nowMs = T0, src = CLIENT) {
  const payload = flags & PSH ? textPayload(10) : undefined;
  return e.process(buildTcp4({ src, dst: S0, sport: port, dport: 80, flags, payload }), false, nowMs);
}

/** SYN, then data: a bare ACK alone would leave the flow on probation (test/16). */
function establish(e: NativeEngine, port: number, nowMs = T0): void {
  assert.equal(send(e, port, SYN, nowMs).note, null);
  assert.equal(send(e, port, ACK | PSH, nowMs).note, null);
}

test('11.flowtable: a SYN flood beyond maxEmbryonic leaves established flows alone and new SYNs get table_full', () => {
  const e = entry();
  for (let p = 10000; p < 10010; p += 1) establish(e, p);
  assert.equal(e.stats().flows.established, 10);
  const notes = [];
  for (let p = 30000; p < 30040; p += 1) notes.push(send(e, p, SYN, T0, '198.19.77.1').note);
  assert.deepEqual(notes.slice(0, 8), new Array(8).fill(null), 'the first SYNs fit in the budget');
  assert.deepEqual(notes.slice(8), new Array(32).fill('table_full'), 'SYNs beyond the budget are not stored');
  const flows = e.stats().flows;
  assert.equal(flows.syn, 8);
  assert.equal(flows.established, 10, 'no established flow was pushed out');
  for (let p = 10000; p < 10010; p += 1) {
    const out = send(e, p, ACK | PSH);
    assert.equal(out.action, 'forward');
    assert.equal(out.note, null, 'an established flow still has its entry');
  }
  assert.equal(e.stats().notes.table_full, 32);
});

test('11.flowtable: an established flow expires after establishedMs, by sweep or on lookup', () => {
  const e = entry({ timeouts: { synMs: 2000, establishedMs: 5000, closingMs: 3000 } });
  establish(e, 10001);
  establish(e, 10002);
  assert.equal(e.sweep(1 << 20, T0 + 5000), 0, 'not yet expired at exactly the timeout');
  assert.equal(e.stats().flows.established, 2);
  assert.equal(send(e, 10002, ACK, T0 + 4000).note, null, 'a packet refreshes the flow');
  assert.equal(e.sweep(1 << 20, T0 + 5001), 1, 'the idle flow is swept');
  const s = e.stats();
  assert.equal(s.flows.established, 1);
  assert.equal(s.flows.expired, 1);
  assert.equal(send(e, 10001, ACK, T0 + 5002).note, 'no_flow_hashed', 'the swept flow has no entry');
  assert.equal(send(e, 10002, ACK, T0 + 4000 + 5001).note, 'no_flow_hashed', 'an expired entry is dropped on lookup');
  assert.equal(e.info().flows, 0);
});

test('11.flowtable: embryonic flows expire after synMs', () => {
  const e = entry({ timeouts: { synMs: 2000, establishedMs: 5000, closingMs: 3000 } });
  send(e, 10001, SYN);
  assert.equal(e.sweep(1 << 20, T0 + 2000), 0, 'not yet at exactly the timeout');
  assert.equal(e.sweep(1 << 20, T0 + 2001), 1);
  // The load policy decides at the SYN too: no flow waits in `pending`.
  const load = entry({ policy: 'load', timeouts: { synMs: 2000, establishedMs: 5000, closingMs: 3000 } });
  assert.notEqual(send(load, 10001, SYN).action, 'drop');
  assert.equal(load.stats().flows.pending, 0);
  assert.equal(load.stats().flows.syn, 1);
  assert.equal(load.sweep(1 << 20, T0 + 2001), 1);
});

test('11.flowtable: FIN moves a flow to closing, which has its own timeout', () => {
  const e = entry({ timeouts: { synMs: 2000, establishedMs: 50000, closingMs: 3000 } });
  establish(e, 10001);
  assert.equal(send(e, 10001, FIN | ACK).action, 'forward');
  let flows = e.stats().flows;
  assert.equal(flows.closing, 1);
  assert.equal(flows.established, 0);
  assert.equal(send(e, 10001, ACK, T0 + 100).note, null, 'the last ACK still follows the flow');
  assert.equal(e.stats().flows.closing, 1, 'an ACK after FIN does not reopen the flow');
  assert.equal(e.sweep(1 << 20, T0 + 100 + 3001), 1);
  flows = e.stats().flows;
  assert.equal(flows.closing, 0);
  assert.equal(flows.expired, 1);
});

test('11.flowtable: a RST within the client\'s window moves the flow to reset (kept, counted closed); the next packet revives it', () => {
  const e = entry();
  establish(e, 10001);
  const rst = send(e, 10001, RST | ACK);
  assert.equal(rst.action, 'forward');
  assert.equal(rst.note, 'rst_in_window');
  const s = e.stats();
  assert.equal(s.flows.established, 0);
  assert.equal(s.flows.reset, 1);
  assert.equal(s.flows.closed, 1);
  assert.equal(e.info().flows, 1, 'the flow is kept: the serving host decides whether the RST ends it');
  assert.equal(send(e, 10001, ACK).note, null);
  assert.equal(e.stats().flows.established, 1);
});

test('11.flowtable: stats() counts flows by state', () => {
  const e = entry({ policy: 'load' });
  send(e, 10001, SYN); // syn
  send(e, 10002, SYN);
  send(e, 10003, SYN);
  send(e, 10003, ACK | PSH); // established
  send(e, 10004, SYN);
  send(e, 10004, ACK | PSH);
  send(e, 10004, FIN | ACK); // closing
  const flows = e.stats().flows;
  assert.deepEqual(
    { pending: flows.pending, syn: flows.syn, established: flows.established, closing: flows.closing },
    { pending: 0, syn: 2, established: 1, closing: 1 },
  );
  assert.equal(e.info().flows, 4);
});

test('11.flowtable: a full table refuses new flows but keeps serving the ones it holds', () => {
  const e = entry({ maxFlows: 8, maxEmbryonic: 8 });
  for (let p = 10000; p < 10008; p += 1) establish(e, p);
  assert.equal(send(e, 20000, SYN).note, 'table_full');
  assert.equal(send(e, 10003, ACK).note, null);
  assert.equal(e.info().flows, 8);
});

test('11.flowtable: the table costs at most 64 bytes per flow at its configured maximum', () => {
  // Sizes just past a power-of-two boundary are the worst case for the 3/4 load factor.
  for (const maxFlows of [1024, 1025, 49153, 65536, 786433, 1 << 20]) {
    const info = entry({ maxFlows, maxEmbryonic: 16 }).info();
    assert.ok(info.bytesPerFlowAtMax <= 64, `maxFlows ${maxFlows}: ${info.bytesPerFlowAtMax} bytes per flow`);
    assert.ok(info.capacity * 3 >= maxFlows * 4, `maxFlows ${maxFlows}: load factor above 3/4`);
  }
});
