// Seeds for the libFuzzer target from the packet fixtures (STYLE.md habit 6):
// each fixture's input behind the two selector bytes native/fuzz/fuzz_engine.cc
// reads, and for fixtures with steps a multi-record seed that replays them.
// Plain node (no build step) so scripts/fuzz.sh runs on a fresh checkout.
//
// Usage: node scripts/fuzz-seeds.mjs <fixture dir> <seed dir>
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

// Selector bits: keep in step with fuzz_engine.cc.
const SERVE = 0x01;
const LOAD = 0x02;
const CSUM = 0x04;
const DRAINING = 0x08;
const FIX = 0x10;
const MULTI = 0x20;
const TABLE_SELF = 1 << 6;
const TABLE_PEER = 2 << 6;

// Byte 1 of an input: what the queue adds (fuzz_engine.cc kEx*).
const EX_MACS = 0x01;
const EX_SRC_MAC = 0x02;
const EX_SRC_HOST0 = 0x04;
const EX_OVERSIZE = 0x08;
const EX_IPV4_ONLY = 0x20; // a cluster without IPv6 addresses
const EX_HOST2_NO6 = 0x40; // host 2 has IPv4 addresses only
const EX_SELF_NO6 = 0x80; // this host has IPv4 addresses only
const EX_IPV6_ONLY = EX_IPV4_ONLY | EX_SELF_NO6; // both: no host has IPv4 addresses
const TABLE_BITS = 3 << 6;
const HOST0_MAC = '02:00:5e:10:00:10'; // test/support/cluster.ts PEER_MACS[0]

function extras(f) {
  let x = f.engine === 'serve-macs' ? EX_MACS : 0;
  if (f.engine === 'entry-ipv4-only') x |= EX_IPV4_ONLY;
  if (f.srcMac) x |= EX_SRC_MAC | (f.srcMac === HOST0_MAC ? EX_SRC_HOST0 : 0);
  if (f.wireLength) x |= EX_OVERSIZE;
  return x;
}

// The fixture engine set-ups (test/support/fixture-engines.ts) as selectors.
const ENGINES = {
  'entry-hash-to-peer': TABLE_PEER,
  'entry-hash-local': TABLE_SELF,
  'entry-load-busy': LOAD | TABLE_PEER,
  'entry-load-idle': LOAD | TABLE_PEER,
  'entry-draining': DRAINING | TABLE_PEER,
  serve: SERVE,
  'serve-macs': SERVE,
  'entry-ipv4-only': TABLE_PEER, // and EX_IPV4_ONLY in byte 1
};

// Clock advances a record can ask for (kAdvanceMs): the largest not above `ms`.
const ADVANCE_MS = [0, 1, 100, 1001, 10001, 130000, 1000000, 0x80000000];
function advanceCode(ms) {
  let code = 0;
  ADVANCE_MS.forEach((v, i) => { if (v <= ms) code = i; });
  return code;
}

// `loads`: the harness publishes loads first (fuzz_engine.cc SetLoads: 0 keeps
// new flows here, 1-3 send them to a peer).
function record(hex, { csumNotReady, loads, advanceMs }) {
  const bytes = Buffer.from(hex, 'hex');
  let ctrl = csumNotReady ? 0x01 : 0;
  if (loads !== undefined) ctrl |= 0x02 | ((loads & 3) << 2);
  ctrl |= advanceCode(advanceMs) << 5;
  return Buffer.concat([Buffer.from([ctrl, bytes.length >> 8, bytes.length & 0xff]), bytes]);
}

function multiSeed(f, selector) {
  const x = extras(f);
  let last = 1000;
  const records = [];
  const busy = f.engine === 'entry-load-busy';
  for (const s of [...f.steps, { input: f.input, csumNotReady: f.csumNotReady, nowMs: f.nowMs }]) {
    const now = s.nowMs ?? 1000;
    records.push(record(s.input, { csumNotReady: s.csumNotReady, loads: busy && records.length === 0 ? 1 : undefined, advanceMs: now - last }));
    last = now;
  }
  return Buffer.concat([Buffer.from([selector | MULTI, x]), ...records]);
}

// Where the TCP header starts: after the IPv4 header, or after the IPv6
// header and the extension headers a segment may carry (hop-by-hop 0,
// routing 43, destination options 60).
function tcpOffset(b) {
  if (b[0] >> 4 === 4) return (b[0] & 0x0f) * 4;
  let next = b[6];
  let at = 40;
  while (next === 0 || next === 43 || next === 60) {
    next = b[at];
    at += (b[at + 1] + 1) * 8;
  }
  return at;
}

// A copy of an IPv4 or IPv6 TCP packet with another client port and flags;
// the harness re-fills the checksums (FIX), so they need not be right here.
function variant(hex, port, flags) {
  const b = Buffer.from(hex, 'hex');
  const tcp = tcpOffset(b);
  b.writeUInt16BE(port, tcp);
  b[tcp + 13] = flags;
  return b.toString('hex');
}

// Floods that fill the small flow table of the fuzz target (12 flows, 6
// embryonic) so that both budgets refuse, then age everything out; random
// mutation rarely strings that many distinct flows together.
function floodSeeds(f) {
  const SYN = 0x02;
  const ACK = 0x10;
  const synFlood = [];
  const filled = [];
  for (let i = 0; i < 10; i += 1) synFlood.push(record(variant(f.input, 30000 + i, SYN), { advanceMs: 0 }));
  for (let i = 0; i < 14; i += 1) {
    filled.push(record(variant(f.input, 31000 + i, SYN), { advanceMs: 0, loads: 1 }));
    filled.push(record(variant(f.input, 31000 + i, ACK), { advanceMs: 1 }));
  }
  const ageOut = record(variant(f.input, 30000, ACK), { advanceMs: 1000000 });
  ageOut[0] |= 0x10; // sweep after
  return [synFlood, filled].map((rs) => Buffer.concat([Buffer.from([ENGINES[f.engine] | MULTI | FIX, extras(f)]), ...rs, ageOut]));
}

// An IPv6 SYN behind `n` destination-options headers (8 bytes each: PadN),
// around the limit of headers the parser follows (packet.h kMaxIpv6Ext, 8):
// mutation alone seldom builds a chain that long with every next header right.
const MAX_IPV6_EXT = 8;
function deepChain(hex, n) {
  const b = Buffer.from(hex, 'hex');
  const proto = b[6];
  const ext = Buffer.alloc(8 * n);
  for (let i = 0; i < n; i += 1) {
    ext[8 * i] = i + 1 < n ? 60 : proto;
    ext.set([1, 4], 8 * i + 2); // PadN, 4 bytes
  }
  const out = Buffer.concat([b.subarray(0, 40), ext, b.subarray(40)]);
  out[6] = 60;
  out.writeUInt16BE(out.length - 40, 4);
  return out;
}

function main() {
  const [fixtureDir, seedDir] = process.argv.slice(2);
  if (!fixtureDir || !seedDir) throw new Error('usage: fuzz-seeds.mjs <fixture dir> <seed dir>');
  rmSync(seedDir, { recursive: true, force: true });
  mkdirSync(seedDir, { recursive: true });
  let n = 0;
  let n6 = 0;
  // An IPv6 seed: its packet (the first record's, for a multi-record one) is version 6.
  const write = (name, bytes) => {
    writeFileSync(path.join(seedDir, name), bytes);
    n += 1;
    if (bytes[(bytes[0] & MULTI) ? 5 : 2] >> 4 === 6) n6 += 1;
  };
  for (const file of readdirSync(fixtureDir).filter((x) => x.endsWith('.json')).sort()) {
    const f = JSON.parse(readFileSync(path.join(fixtureDir, file), 'utf8'));
    const selector = ENGINES[f.engine];
    if (selector === undefined) throw new Error(`${file}: unknown engine '${f.engine}'`);
    const base = file.replace(/\.json$/, '');
    const single = selector | (f.csumNotReady ? CSUM : 0);
    const input = Buffer.from(f.input, 'hex');
    write(`${base}.bin`, Buffer.concat([Buffer.from([single, extras(f)]), input]));
    write(`${base}.fix.bin`, Buffer.concat([Buffer.from([single | FIX, extras(f)]), input]));
    if (f.steps?.length) write(`${base}.steps.bin`, multiSeed(f, selector));
    if (/-(entry-forward-syn|load-syn-defer|entry-draining-syn)$/.test(base)) {
      floodSeeds(f).forEach((seed, i) => write(`${base}.flood${i}.bin`, seed));
    }
    // IPv6 packets on partly dual-stack clusters: host 2 without IPv6 under
    // the Maglev table (which names host 2: never an IPv6 target then), and
    // this host without IPv6 (every IPv6 packet not_ipv4).
    if (input[0] >> 4 === 6 && f.engine !== 'entry-ipv4-only') {
      write(`${base}.host2v4.bin`, Buffer.concat([Buffer.from([(single & ~TABLE_BITS) | FIX, extras(f) | EX_HOST2_NO6]), input]));
      write(`${base}.selfv4.bin`, Buffer.concat([Buffer.from([single | FIX, extras(f) | EX_SELF_NO6]), input]));
      // And on IPv6-only hosts: the same IPv6 paths with IPv4 lists of zeros.
      write(`${base}.v6only.bin`, Buffer.concat([Buffer.from([single | FIX, extras(f) | EX_IPV6_ONLY]), input]));
    }
    if (input[0] >> 4 === 6 && input[6] === 6 && /-entry-forward-syn$/.test(base)) {
      for (const n of [MAX_IPV6_EXT, MAX_IPV6_EXT + 1]) {
        write(`${base}.ext${n}.bin`, Buffer.concat([Buffer.from([single | FIX, extras(f)]), deepChain(f.input, n)]));
      }
    }
  }
  console.log(`fuzz-seeds: ${n} seeds (${n6} IPv6) from ${fixtureDir}`);
}

main();
