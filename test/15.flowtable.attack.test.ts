// Hash flooding (issue 11, item 2): the flow table and the Maglev slot are
// keyed (SipHash-2-4), so flows an attacker picks offline no longer pile up
// in one probe run or choose their serving host, and a probe run never grows
// past the table's bound, even for someone who knows the key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine, siphash24, type EngineOptions, type NativeEngine } from '../lib/native';
import { maglevKey } from '../lib/plan';
import { buildMaglevTable } from '../lib/maglev';
import { parseIpv4 } from '../lib/ipv4';
import { baseOptions, uniformTable } from './support/fixture-engines';
import { SERVICE, addr } from './support/cluster';
import { ACK, SYN, buildTcp4 } from './support/packet-builder';
import { collidingClients, type ClientPort } from './support/old-hash';

const S0 = addr(SERVICE, 0);
const T0 = 1000;
// maxFlows 1024 gives 2048 slots (load factor <= 3/4).
const MAX_FLOWS = 1024;
const CAPACITY = 2048;
const PROBE_BOUND = 64;

function engine(over: Partial<EngineOptions> = {}): NativeEngine {
  const e = new Engine(baseOptions({ maxFlows: MAX_FLOWS, maxEmbryonic: MAX_FLOWS, ...over }));
  e.setLookupTable(uniformTable(1));
  return e;
}

const syn = (c: ClientPort) => buildTcp4({ src: c.client, dst: S0, sport: c.port, dport: 80, flags: SYN, seq: 1000 });
const ack = (c: ClientPort) => buildTcp4({ src: c.client, dst: S0, sport: c.port, dport: 80, flags: ACK, seq: 1001, ack: 1 });

/** The bytes the keyed table hashes: client address, client port, service port, in network order. */
function flowHashInput(c: ClientPort, servicePort: number): Uint8Array {
  const b = new Uint8Array(8);
  const v = new DataView(b.buffer);
  v.setUint32(0, parseIpv4(c.client));
  v.setUint16(4, c.port);
  v.setUint16(6, servicePort);
  return b;
}

test('15.flowtable: 200 flows that shared one home slot under the old, unkeyed hash are spread by the keyed one', () => {
  const flood = collidingClients({ service: S0, servicePort: 80, capacity: CAPACITY, count: 200 });
  const e = engine();
  for (const c of flood) assert.equal(e.process(syn(c), false, T0).note, null, 'every flood SYN is remembered');
  const { longestProbe, flows } = e.info();
  console.log(`hash flood: ${flows} flows that collided under the old hash; longest probe run now ${longestProbe}`);
  assert.equal(flows, 200);
  // Under the old hash all 200 sit in one run (longest probe 199); 200 random
  // keys in 2048 Robin Hood slots stay within a few slots of home.
  assert.ok(longestProbe < 16, `longest probe run ${longestProbe}: the flood still piles up`);
});

test(`15.flowtable: an attacker who knows the key gets at most ${PROBE_BOUND} flows into one run; the rest are routed, not remembered, and counted`, () => {
  const key = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);
  const e = engine({ flowKey: key });
  // Flows whose keyed home is slot 5, found with the key as an attacker who had it would.
  const same: ClientPort[] = [];
  for (let i = 0; same.length < PROBE_BOUND + 36; i++) {
    const c = { client: `198.19.${(i >> 16) & 255}.${(i >> 8) & 255}`, port: 1024 + (i & 255) };
    const home = Number(siphash24(key, flowHashInput(c, 80)) & BigInt(CAPACITY - 1));
    if (home === 5) same.push(c);
  }
  const notes = same.map((c) => e.process(syn(c), false, T0));
  assert.deepEqual(notes.slice(0, PROBE_BOUND).map((o) => o.note), new Array(PROBE_BOUND).fill(null));
  assert.deepEqual(notes.slice(PROBE_BOUND).map((o) => o.note), new Array(36).fill('probe_limit'));
  for (const o of notes) assert.equal(o.action, 'forward', 'a flow that was not remembered is still routed');
  assert.equal(e.stats().notes.probe_limit, 36);
  assert.equal(e.info().longestProbe, PROBE_BOUND - 1);
  // Every remembered flow is still found, within the bound.
  for (const c of same.slice(0, PROBE_BOUND)) assert.equal(e.process(ack(c), false, T0).note, null);
});

test('15.flowtable: the Maglev slot of a client depends on the cluster key: the same key, the same host on every engine', () => {
  const table = buildMaglevTable([0, 1, 2]);
  const keyA = maglevKey(Buffer.from('00112233445566778899aabbccddeeff', 'hex'));
  const keyB = maglevKey(Buffer.from('ffeeddccbbaa99887766554433221100', 'hex'));
  assert.equal(keyA.length, 16);
  const [a1, a2, b] = [keyA, keyA, keyB].map((hashKey) => {
    const e = engine({ hashKey });
    e.setLookupTable(table);
    return e;
  });
  let differ = 0;
  for (let port = 20000; port < 20400; port++) {
    const client = parseIpv4('198.19.7.7');
    assert.equal(a1!.hashTarget(client, port), a2!.hashTarget(client, port), 'two hosts with the same key must agree');
    if (a1!.hashTarget(client, port) !== b!.hashTarget(client, port)) differ++;
  }
  // With three hosts, about 2/3 of the clients land elsewhere under another key.
  assert.ok(differ > 200, `only ${differ} of 400 clients moved with the key: the slot is not keyed`);
});
