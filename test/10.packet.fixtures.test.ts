// Packet fixtures (test/fixtures/packets/*.json) through the real addon: the
// verdict, and the output bytes against bytes built by a second implementation.
// Every output's checksums are then verified here by a third, from scratch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadFixtures, type PacketFixture } from './support/fixture-format';
import { runFixture } from './support/run-fixture';
import { fromHex, toHex } from './support/packet-builder';

/** Folded one's-complement sum of big-endian 16-bit words; a correct checksum region sums to 0xffff. */
function sum16(bytes: Uint8Array, initial = 0): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let sum = initial;
  const even = bytes.length & ~1;
  for (let i = 0; i < even; i += 2) sum += view.getUint16(i);
  if (even < bytes.length) sum += bytes[even]! * 256;
  while (sum > 0xffff) sum = (sum >>> 16) + (sum & 0xffff);
  return sum;
}

interface Ipv4View {
  ihl: number;
  total: number;
  protocol: number;
  fragment: boolean;
}

/** The IPv4 header as far as it can be read, or null when there is none to check. */
function ipv4(b: Uint8Array): Ipv4View | null {
  if (b.length < 20 || b[0]! >> 4 !== 4) return null;
  const ihl = (b[0]! & 0x0f) * 4;
  if (ihl < 20 || ihl > b.length) return null;
  const total = (b[2]! << 8) | b[3]!;
  return { ihl, total, protocol: b[9]!, fragment: (((b[6]! << 8) | b[7]!) & 0x3fff) !== 0 };
}

/** The TCP segment when the packet carries a whole one. */
function tcpSegment(b: Uint8Array, ip: Ipv4View): Uint8Array | null {
  if (ip.protocol !== 6 || ip.fragment || ip.total > b.length || ip.total < ip.ihl + 20) return null;
  return b.subarray(ip.ihl, ip.total);
}

function pseudoSum(b: Uint8Array, tcpLength: number): number {
  const pseudo = new Uint8Array(12);
  pseudo.set(b.subarray(12, 20));
  pseudo[9] = 6;
  pseudo[10] = tcpLength >>> 8;
  pseudo[11] = tcpLength & 0xff;
  return sum16(pseudo);
}

/** IPv6: the upper-layer header after the extension headers a segment may carry, or null. */
function ipv6Upper(b: Uint8Array): { at: number; next: number; end: number } | null {
  if (b.length < 40 || b[0]! >> 4 !== 6) return null;
  const end = 40 + ((b[4]! << 8) | b[5]!);
  if (end > b.length) return null;
  let next = b[6]!;
  let at = 40;
  while (next === 0 || next === 43 || next === 60) {
    if (at + 8 > end) return null;
    const len = (b[at + 1]! + 1) * 8;
    next = b[at]!;
    at += len;
  }
  return at <= end ? { at, next, end } : null;
}

function pseudoSum6(b: Uint8Array, length: number, next: number): number {
  const pseudo = new Uint8Array(40);
  pseudo.set(b.subarray(8, 40));
  new DataView(pseudo.buffer).setUint32(32, length);
  pseudo[39] = next;
  return sum16(pseudo);
}

/** verifyChecksums for IPv6: no header checksum; TCP and ICMPv6 both cover the pseudo-header. */
function verifyChecksums6(f: PacketFixture, out: Uint8Array, mangled: boolean): { ip: boolean; tcp: boolean } {
  const u = ipv6Upper(out);
  if (u === null || (u.next !== 6 && u.next !== 58) || u.end - u.at < (u.next === 6 ? 20 : 8)) return { ip: false, tcp: false };
  const body = out.subarray(u.at, u.end);
  const pseudo = pseudoSum6(out, body.length, u.next);
  if (u.next === 58) {
    assert.equal(sum16(body, pseudo), 0xffff, 'ICMPv6 checksum does not verify');
  } else if (f.csumNotReady && !mangled) {
    assert.equal((body[16]! << 8) | body[17]!, pseudo, 'untouched partial checksum must stay the pseudo-header sum');
  } else {
    assert.equal(sum16(body, pseudo), 0xffff, 'TCP checksum (IPv6) does not verify');
  }
  return { ip: true, tcp: true };
}

/**
 * Checks the output's checksums. A rewritten packet must carry finished sums;
 * an untouched one keeps what it came with (for a partial input, the bare
 * pseudo-header sum the kernel will finish). Returns what was checked.
 */
function verifyChecksums(f: PacketFixture, out: Uint8Array, mangled: boolean): { ip: boolean; tcp: boolean } {
  if (out.length > 0 && out[0]! >> 4 === 6) return verifyChecksums6(f, out, mangled);
  const ip = ipv4(out);
  if (ip === null) return { ip: false, tcp: false };
  assert.equal(sum16(out.subarray(0, ip.ihl)), 0xffff, 'IPv4 header checksum does not verify');
  // An ICMP error (handed on about a forwarded flow): its own checksum, over the message.
  if (ip.protocol === 1 && !ip.fragment && ip.total <= out.length) {
    assert.equal(sum16(out.subarray(ip.ihl, ip.total)), 0xffff, 'ICMP checksum does not verify');
    return { ip: true, tcp: true };
  }
  const tcp = tcpSegment(out, ip);
  if (tcp === null) return { ip: true, tcp: false };
  const field = (tcp[16]! << 8) | tcp[17]!;
  if (f.csumNotReady && !mangled) {
    assert.equal(field, pseudoSum(out, tcp.length), 'untouched partial checksum must stay the pseudo-header sum');
  } else {
    assert.equal(sum16(tcp, pseudoSum(out, tcp.length)), 0xffff, 'TCP checksum does not verify');
  }
  return { ip: true, tcp: true };
}

const fixtures = loadFixtures();

test('10.packet: the fixture set is there and covers every action and both checksum modes', () => {
  // An empty or half-copied folder would otherwise pass as "no case failed".
  assert.ok(fixtures.length >= 40, `only ${fixtures.length} fixtures found`);
  const actions = new Set(fixtures.map((x) => x.fixture.expected.action));
  for (const a of ['accept', 'forward', 'restore', 'drop']) assert.ok(actions.has(a as never), `no fixture expects '${a}'`);
  assert.ok(fixtures.some((x) => x.fixture.csumNotReady) && fixtures.some((x) => !x.fixture.csumNotReady));
  assert.ok(fixtures.some((x) => x.fixture.expected.malformed !== null), 'no malformed-input fixture');
  // IPv6 beside IPv4: rewritten both ways, and its own malformed reasons.
  const v6 = fixtures.filter((x) => x.fixture.input.startsWith('6'));
  for (const a of ['accept', 'forward', 'restore']) assert.ok(v6.some((x) => x.fixture.expected.action === a), `no IPv6 fixture expects '${a}'`);
  for (const r of ['truncated_ipv6', 'bad_ipv6_ext']) assert.ok(v6.some((x) => x.fixture.expected.malformed === r), `no IPv6 fixture for '${r}'`);
});

for (const { file, fixture: f } of fixtures) {
  test(`10.packet: ${f.description}`, () => {
    const { outcome, output } = runFixture(f);
    const e = f.expected;
    assert.equal(outcome.action, e.action, `${file}: action`);
    assert.equal(outcome.malformed, e.malformed, `${file}: malformed`);
    assert.equal(outcome.note, e.note, `${file}: note`);
    assert.equal(outcome.mark, e.mark, `${file}: mark`);
    assert.equal(toHex(output), e.output, `${file}: output bytes`);
    assert.equal(outcome.mangled, e.output !== f.input, `${file}: mangled must say whether bytes changed`);
    assert.equal(output.length, fromHex(f.input).length, `${file}: length changed`);
    const checked = verifyChecksums(f, output, outcome.mangled);
    if (outcome.mangled) assert.ok(checked.ip && checked.tcp, `${file}: a rewritten packet must be checkable TCP over IPv4 or IPv6 (or ICMP)`);
  });
}
