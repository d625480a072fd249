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
const HOST0_MAC = '02:00:5e:10:00:10'; // test/support/cluster.ts PEER_MACS[0]

function extras(f) {
  let x = f.engine === 'serve-macs' ? EX_MACS : 0;
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

// A copy of an IPv4 + TCP packet with another client port and flags; the
// harness re-fills the checksums (FIX), so they need not be right here.
function variant(hex, port, flags) {
  const b = Buffer.from(hex, 'hex');
  const tcp = (b[0] & 0x0f) * 4;
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
  return [synFlood, filled].map((rs) => Buffer.concat([Buffer.from([ENGINES[f.engine] | MULTI | FIX, 0]), ...rs, ageOut]));
}

function main() {
  const [fixtureDir, seedDir] = process.argv.slice(2);
  if (!fixtureDir || !seedDir) throw new Error('usage: fuzz-seeds.mjs <fixture dir> <seed dir>');
  rmSync(seedDir, { recursive: true, force: true });
  mkdirSync(seedDir, { recursive: true });
  let n = 0;
  const write = (name, bytes) => { writeFileSync(path.join(seedDir, name), bytes); n += 1; };
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
  }
  console.log(`fuzz-seeds: ${n} seeds from ${fixtureDir}`);
}

main();
