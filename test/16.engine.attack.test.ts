// What an off-path attacker can send at an entry host's flow table (issue 11,
// items 1 and 7), driven through the Engine: spoofed RSTs and SYNs for a
// flow's 4-tuple, and SYN + ACK pairs that try to pass as established flows.
// The engine sees only the client's direction, so it tracks where the
// client's sequence numbers are and judges RSTs by that.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine, type EngineOptions, type NativeEngine, type PolicyName } from '../lib/native';
import { baseOptions, loadTable, uniformTable } from './support/fixture-engines';
import { CLIENT, SERVICE, addr } from './support/cluster';
import { ACK, FIN, PSH, RST, SYN, buildTcp4, textPayload } from './support/packet-builder';
import { parseIpv4 } from '../lib/ipv4';

const S0 = addr(SERVICE, 0);
const T0 = 1000;
const ISN = 4_000_000_000; // near the top: the window arithmetic must wrap
const TIMEOUTS = { synMs: 2000, probationMs: 4000, establishedMs: 50000, closingMs: 6000, resetMs: 3000 };
const WINDOW = 65536;

function engine(policy: PolicyName = 'hash', over: Partial<EngineOptions> = {}): NativeEngine {
  const e = new Engine(baseOptions({ policy, maxFlows: 64, maxEmbryonic: 8, timeouts: TIMEOUTS, ...over }));
  e.setLookupTable(policy === 'load' ? loadTable(1) : uniformTable(1));
  // The load policy sends new flows to host 1: this host busy, host 1 idle.
  e.calibrateLoad(50, -1);
  e.publishPeerLoad(1, 0);
  return e;
}

interface Seg { flags: number; seq?: number; ack?: number; payload?: number; port?: number; now?: number }

function send(e: NativeEngine, s: Seg) {
  const payload = s.payload ? textPayload(s.payload) : undefined;
  const bytes = buildTcp4({ src: CLIENT, dst: S0, sport: s.port ?? 40001, dport: 80, flags: s.flags, seq: (s.seq ?? 0) >>> 0, ack: s.ack ?? 0, payload });
  return e.process(bytes, false, s.now ?? T0);
}

const client = parseIpv4(CLIENT);

/** SYN (ISN), the handshake ACK, 100 bytes of request: the client's next sequence number is ISN + 101. */
function establish(e: NativeEngine, port = 40001): number {
  assert.equal(send(e, { flags: SYN, seq: ISN, port }).target, 1, 'both policies send it to host 1');
  send(e, { flags: ACK, seq: ISN + 1, ack: 7001, port });
  assert.equal(send(e, { flags: ACK | PSH, seq: ISN + 1, ack: 7001, payload: 100, port }).action, 'forward');
  return (ISN + 101) >>> 0;
}

for (const policy of ['hash', 'load'] as const) {
  test(`16.engine: a RST outside the window the client's packets set leaves the flow alone, routed and counted (${policy})`, () => {
    const e = engine(policy);
    const next = establish(e);
    for (const off of [WINDOW + 1, -WINDOW - 1, 1 << 30, -(1 << 30)]) {
      const o = send(e, { flags: RST | ACK, seq: next + off, ack: 7001 });
      assert.equal(o.action, 'forward', `off ${off}: the serving host still sees it (its stack decides, RFC 5961)`);
      assert.equal(o.note, 'rst_out_of_window', `off ${off}`);
    }
    const s = e.stats();
    assert.equal(s.flows.established, 1, 'the flow is still established');
    assert.equal(s.notes.rst_out_of_window, 4);
    // The client's next packet still goes to its serving host (load policy:
    // with no flow it would have met the local stack, which resets it).
    const later = send(e, { flags: ACK | PSH, seq: next, ack: 7001, payload: 10 });
    assert.equal(later.action, 'forward');
    assert.equal(later.target, 1);
    assert.equal(later.note, null);
  });

  test(`16.engine: a SYN on an established flow goes to its serving host and is never decided again (${policy})`, () => {
    const e = engine(policy);
    // Membership changes after the connection is set up: the new table names
    // host 2 for this client, and host 1 (still live) elsewhere.
    const later = uniformTable(2);
    later[0] = 1;
    e.setLookupTable(later);
    const port = [40001, 40002, 40003].find((p) => e.hashTarget(client, p) === 2)!;
    e.setLookupTable(uniformTable(1));
    establish(e, port);
    e.setLookupTable(later);
    for (let i = 0; i < 3; i++) {
      const o = send(e, { flags: SYN, seq: 123456 + i * 999, port });
      assert.equal(o.action, 'forward', 'not decided again, not re-hashed');
      assert.equal(o.target, 1, 'still the host that serves the connection');
      assert.equal(o.note, 'syn_on_flow');
    }
    assert.equal(e.stats().flows.established, 1);
    assert.equal(e.stats().newFlows.forwarded + e.stats().newFlows.local, 1, 'no new flow was decided');
  });
}

test('16.engine: a RST within the window keeps the flow on a short timeout; the client\'s next packet puts it back', () => {
  const e = engine();
  const next = establish(e);
  for (const off of [0, WINDOW, -WINDOW]) {
    const r = send(e, { flags: RST, seq: next + off });
    assert.equal(r.action, 'forward');
    assert.equal(r.target, 1);
    assert.equal(r.note, 'rst_in_window', `off ${off}`);
  }
  assert.equal(e.stats().flows.reset, 1);
  assert.equal(e.stats().flows.established, 0);
  assert.equal(e.stats().flows.closed, 3, 'each plausible RST counts');
  // An ordinary packet: the serving host kept the connection (it judged the RST).
  assert.equal(send(e, { flags: ACK, seq: next, ack: 7001, now: T0 + 100 }).note, null);
  assert.equal(e.stats().flows.established, 1);
  assert.equal(e.stats().flows.reset, 0);
  // Another RST, then silence: gone after resetMs.
  send(e, { flags: RST, seq: next, now: T0 + 200 });
  assert.equal(e.sweep(1 << 20, T0 + 200 + TIMEOUTS.resetMs), 0, 'not before resetMs');
  assert.equal(e.sweep(1 << 20, T0 + 200 + TIMEOUTS.resetMs + 1), 1);
  assert.equal(e.info().flows, 0);
});

test('16.engine: a SYN after a plausible RST, or towards a host no longer live, is decided afresh', () => {
  const e = engine();
  const next = establish(e, 40001);
  send(e, { flags: RST, seq: next });
  e.setLookupTable(uniformTable(2));
  const again = send(e, { flags: SYN, seq: 5 });
  assert.equal(again.target, 2, 'the reset connection is over: a new one follows the table');
  assert.equal(again.note, 'syn_redecided');
  // Host 1 is down (the table no longer names it): its connection is dead anyway.
  const e2 = engine();
  establish(e2, 40002);
  e2.setLookupTable(uniformTable(2));
  const o = send(e2, { flags: SYN, seq: 77, port: 40002 });
  assert.equal(o.target, 2);
  assert.equal(o.note, 'syn_redecided');
});

test('16.engine: the client\'s next sequence number follows in-window segments, not a spoofed one far ahead', () => {
  const e = engine();
  let next = establish(e);
  // Retransmissions behind it and a spoofed segment far ahead are routed but move nothing.
  assert.equal(send(e, { flags: ACK | PSH, seq: next - 50, ack: 7001, payload: 50 }).action, 'forward');
  assert.equal(send(e, { flags: ACK | PSH, seq: next + 1_000_000, ack: 7001, payload: 1000 }).action, 'forward');
  // A RST near the spoofed segment's end is not plausible; one at the real point is.
  assert.equal(send(e, { flags: RST, seq: next + 1_001_000 }).note, 'rst_out_of_window');
  // Real data in the window moves it: 1000 bytes, then a FIN (one more).
  send(e, { flags: ACK | PSH, seq: next, ack: 7001, payload: 1000 });
  next += 1000;
  send(e, { flags: ACK | FIN, seq: next, ack: 7001 });
  next += 1;
  assert.equal(send(e, { flags: RST, seq: next + WINDOW }).note, 'rst_in_window');
  assert.equal(e.stats().flows.reset, 1);
});

test('16.engine: a SYN and a bare ACK stay on probation, counted against maxEmbryonic (spoofed pairs cannot fill the table)', () => {
  const e = engine('hash', { maxFlows: 64, maxEmbryonic: 8 });
  for (let p = 41000; p < 41010; p++) establish(e, p);
  for (let p = 30000; p < 30060; p++) {
    send(e, { flags: SYN, seq: 1000, port: p });
    send(e, { flags: ACK, seq: 1001, ack: 5001, port: p });
  }
  const f = e.stats().flows;
  assert.equal(f.probation, 8, 'the first 8 pairs are remembered, on probation');
  assert.equal(f.established, 10, 'no spoofed pair became established, no real flow was pushed out');
  assert.equal(e.stats().notes.table_full, 52, 'pairs beyond the embryonic budget are routed, not remembered');
  // The rest of the table stays free for connections that make progress.
  assert.equal(e.info().flows, 18);
  e.sweep(1 << 20, T0 + TIMEOUTS.probationMs + 1);
  establish(e, 42000);
  assert.equal(e.stats().flows.established, 11, 'once probation runs out, new connections are remembered again');
});

test('16.engine: data, a FIN, or an ACK number past the first end probation; more of the same ACK does not', () => {
  const e = engine();
  const pair = (port: number): void => {
    send(e, { flags: SYN, seq: 1000, port });
    send(e, { flags: ACK, seq: 1001, ack: 5001, port });
  };
  pair(30001);
  send(e, { flags: ACK, seq: 1001, ack: 5001, port: 30001 });
  send(e, { flags: ACK, seq: 1001, ack: 5001, port: 30001 });
  assert.equal(e.stats().flows.probation, 1, 'a repeated ACK number is no progress');
  send(e, { flags: ACK, seq: 1001, ack: 5002, port: 30001 });
  pair(30002);
  send(e, { flags: ACK | PSH, seq: 1001, ack: 5001, payload: 20, port: 30002 });
  pair(30003);
  send(e, { flags: ACK | FIN, seq: 1001, ack: 5001, port: 30003 });
  const f = e.stats().flows;
  assert.deepEqual({ probation: f.probation, established: f.established, closing: f.closing }, { probation: 0, established: 2, closing: 1 });
});

test('16.engine: a flow on probation is forgotten after probationMs, an established one is not', () => {
  const e = engine();
  send(e, { flags: SYN, seq: 1000, port: 30001 });
  send(e, { flags: ACK, seq: 1001, ack: 5001, port: 30001 });
  establish(e, 30002);
  assert.equal(e.sweep(1 << 20, T0 + TIMEOUTS.probationMs), 0);
  assert.equal(e.sweep(1 << 20, T0 + TIMEOUTS.probationMs + 1), 1);
  const f = e.stats().flows;
  assert.equal(f.probation, 0);
  assert.equal(f.established, 1);
});

test('16.engine: on a closing forwarded flow, a segment nowhere near its sequence numbers is a new connection served here (its SYN went around the engine)', () => {
  for (const policy of ['hash', 'load'] as const) {
    const e = engine(policy);
    const next = establish(e);
    send(e, { flags: ACK | FIN, seq: next, ack: 7001 });
    // The old connection's last ACK still goes to its host.
    assert.equal(send(e, { flags: ACK, seq: next + 1, ack: 7002 }).action, 'forward');
    // The client reuses the 4-tuple; the kernel served that SYN here (SYN limit, a full queue), with a SYN cookie.
    const ack = send(e, { flags: ACK, seq: 99_000_001, ack: 123_457 });
    assert.equal(ack.action, 'accept', `${policy}: the new connection's ACK is for the local stack`);
    assert.equal(ack.note, 'reused_here');
    assert.equal(e.info().flows, 0, 'the stale entry is dropped');
  }
});
