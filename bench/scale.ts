// One repetition of the scale trial: how the data path's state and the
// control plane's table grow. No namespaces: the addon's Engine (the same
// per-packet code the queues run) is driven with packets built here, and the
// Maglev table is built as the daemon builds it.
//   flows     memory per flow with 1M flows in the table
//   maglev    lookup-table build time, by table size and host count
//   packet    ns per packet through Engine.process, by hosts in the table
import vm from 'node:vm';
import v8 from 'node:v8';
import { buildMaglevTable } from '../lib/maglev';
import { Engine, type EngineOptions, type NativeEngine } from '../lib/native';
import { median } from './stats';

const SERVICE_PORT = 80;
const FLAG = { syn: 0x02, ack: 0x10 } as const;
const PACKET_BYTES = 40;
// Addresses: hosts 198.18.0.(id+1); clients from 198.19.0.0 (both in the test range).
const HOST_BASE = (198 << 24 | 18 << 16) >>> 0;
const CLIENT_BASE = (198 << 24 | 19 << 16) >>> 0;
const NOW_MS = 1000;

/** A 40-byte IPv4/TCP packet with valid checksums (the engine updates them incrementally, so they must start right). */
export function tcpPacket(saddr: number, sport: number, daddr: number, dport: number, flags: number): Uint8Array {
  const b = new Uint8Array(PACKET_BYTES);
  const v = new DataView(b.buffer);
  v.setUint8(0, 0x45);
  v.setUint16(2, PACKET_BYTES);
  v.setUint16(6, 0x4000);  // DF
  v.setUint8(8, 64);
  v.setUint8(9, 6);
  v.setUint32(12, saddr);
  v.setUint32(16, daddr);
  v.setUint16(20, sport);
  v.setUint16(22, dport);
  v.setUint32(24, 1);  // seq
  v.setUint32(28, flags & FLAG.ack ? 1 : 0);
  v.setUint8(32, 5 << 4);
  v.setUint8(33, flags);
  v.setUint16(34, 65535);
  v.setUint16(10, checksum(b, 0, 20, 0));
  // TCP pseudo-header: addresses, protocol, TCP length.
  const pseudo = (saddr >>> 16) + (saddr & 0xffff) + (daddr >>> 16) + (daddr & 0xffff) + 6 + 20;
  v.setUint16(36, checksum(b, 20, 40, pseudo));
  return b;
}

function checksum(b: Uint8Array, from: number, to: number, start: number): number {
  let sum = start;
  for (let i = from; i < to; i += 2) sum += (b[i]! << 8) | b[i + 1]!;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function engineFor(hosts: number, maxFlows: number): NativeEngine {
  const addrs = Uint32Array.from({ length: hosts }, (_, id) => HOST_BASE + id + 1);
  const options: EngineOptions = {
    role: 'entry', policy: 'hash', self: 0, serviceAddrs: addrs, clusterAddrs: addrs,
    servicePorts: Uint16Array.of(SERVICE_PORT), peerPortBase: 20000, forwardMark: 0x100, serveMark: 0x200,
    // Every flow is a SYN-only flow here: the embryonic budget is the whole table.
    maxFlows, maxEmbryonic: maxFlows,
    timeouts: { synMs: 3_600_000, establishedMs: 3_600_000, closingMs: 3_600_000 },
  };
  const engine = new Engine(options);
  engine.setLookupTable(buildMaglevTable(Array.from({ length: hosts }, (_, id) => id)));
  return engine;
}

/** The i-th distinct client (address, port): 50,000 ports per address. */
function client(i: number): [addr: number, port: number] {
  return [CLIENT_BASE + Math.floor(i / 50_000), 10_000 + (i % 50_000)];
}

/** A full GC when the process can be made to expose one; memory deltas then count live data. */
function collect(): void {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as (() => void) | undefined;
  gc?.();
}

export interface FlowsSample {
  flows: number;
  bytesPerFlowAtMax: number;
  entryBytes: number;
  capacity: number;
  /** Growth of resident memory, net of the V8 heap's growth, over the flows inserted. */
  rssBytesPerFlow: number;
  rssGrowthBytes: number;
  /** CPU ns per SYN inserted, through Engine.process (the N-API call included). */
  insertNs: number;
  tableFull: number;
}

export function runFlows(count: number): FlowsSample {
  collect();
  const m0 = process.memoryUsage();
  const engine = engineFor(2, count);
  const template = tcpPacket(0, 0, HOST_BASE + 1, SERVICE_PORT, FLAG.syn);
  const buf = new Uint8Array(PACKET_BYTES);
  const view = new DataView(buf.buffer);
  const c0 = process.cpuUsage();
  for (let i = 0; i < count; i++) {
    // Forwarded SYNs are rewritten in place: start each from the template.
    buf.set(template);
    const [addr, port] = client(i);
    view.setUint32(12, addr);
    view.setUint16(20, port);
    engine.process(buf, false, NOW_MS);
  }
  const c = process.cpuUsage(c0);
  const insertNs = ((c.user + c.system) * 1000) / count;
  collect();
  const m1 = process.memoryUsage();
  const info = engine.info();
  const growth = (m1.rss - m0.rss) - (m1.heapTotal - m0.heapTotal);
  return {
    flows: info.flows,
    bytesPerFlowAtMax: info.bytesPerFlowAtMax,
    entryBytes: info.entryBytes,
    capacity: info.capacity,
    rssBytesPerFlow: growth / info.flows,
    rssGrowthBytes: growth,
    insertNs,
    tableFull: engine.stats().notes.table_full,
  };
}

/** Build times are CPU time of this process (user + system), in ms: other work on the machine does not inflate them. */
export interface MaglevSample {
  size: number;
  hosts: number;
  /** The first build in a fresh process (what a daemon pays at start). */
  coldMs: number;
  /** Median of the builds after it (what a membership change costs later). */
  warmMs: number;
  warmRuns: number[];
  /** Every build by the wall clock, the first one first. */
  wallMs: number[];
}

export function runMaglev(size: number, hosts: number, builds: number): MaglevSample {
  const ids = Array.from({ length: hosts }, (_, id) => id);
  const times: number[] = [];
  const wall: number[] = [];
  for (let i = 0; i <= builds; i++) {
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    buildMaglevTable(ids, size);
    wall.push(Number(process.hrtime.bigint() - t0) / 1e6);
    const c = process.cpuUsage(c0);
    times.push((c.user + c.system) / 1000);
  }
  return { size, hosts, coldMs: times[0]!, warmMs: median(times.slice(1)), warmRuns: times.slice(1), wallMs: wall };
}

export interface PacketSample {
  hosts: number;
  flows: number;
  /** CPU ns per SYN of a new flow: hash, lookup table, flow insert, rewrite when forwarded. */
  synNs: number;
  /** CPU ns per packet of an established flow: flow lookup, rewrite when forwarded. */
  establishedNs: number;
  /** CPU ns per call for a packet the engine only parses (not for the service): the N-API call and outcome object. */
  floorNs: number;
  /** The same three by the wall clock (they differ when other work takes the CPU). */
  wall: { synNs: number; establishedNs: number; floorNs: number };
  forwardedShare: number;
}

/** One packet per flow of [from, from + count), each in its own copy so in-place rewrites do not carry over. */
function packets(from: number, count: number, flags: number): Uint8Array[] {
  const all = new Uint8Array(count * PACKET_BYTES);
  const views: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const [addr, port] = client(from + i);
    const view = all.subarray(i * PACKET_BYTES, (i + 1) * PACKET_BYTES);
    view.set(tcpPacket(addr, port, HOST_BASE + 1, SERVICE_PORT, flags));
    views.push(view);
  }
  return views;
}

interface PassTime {
  cpuNs: number;
  wallNs: number;
}

/**
 * Per packet, by this process's CPU time (user + system, all threads: the
 * garbage collector's helpers included) and by the wall clock. CPU time is
 * what the machine's other work cannot inflate.
 */
function timePass(engine: NativeEngine, views: readonly Uint8Array[]): PassTime {
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < views.length; i++) engine.process(views[i]!, false, NOW_MS);
  const wall = Number(process.hrtime.bigint() - t0);
  const c = process.cpuUsage(c0);
  return { cpuNs: ((c.user + c.system) * 1000) / views.length, wallNs: wall / views.length };
}

const medianOf = (ts: PassTime[], f: (t: PassTime) => number) => median(ts.map(f));

export function runPacket(hosts: number, flows: number, passes: number): PacketSample {
  const engine = engineFor(hosts, 1 << 20);
  // Built before timing, one copy per pass: forwarded packets are rewritten
  // in place. Every SYN pass brings flows never seen before.
  const synPasses = Array.from({ length: passes }, (_, p) => packets(p * flows, flows, FLAG.syn));
  const ackPasses = Array.from({ length: passes + 1 }, () => packets(0, flows, FLAG.ack));
  const outsider = tcpPacket(CLIENT_BASE, 1234, HOST_BASE + 250, SERVICE_PORT, FLAG.ack);
  const floorPass = Array.from({ length: flows }, () => outsider);
  const syn = synPasses.map((p) => timePass(engine, p));
  timePass(engine, ackPasses[0]!);  // the first ACK moves each flow of the first pass to established
  const established = ackPasses.slice(1).map((p) => timePass(engine, p));
  const floor = Array.from({ length: passes }, () => timePass(engine, floorPass));
  const s = engine.stats();
  return {
    hosts,
    flows,
    synNs: medianOf(syn, (t) => t.cpuNs),
    establishedNs: medianOf(established, (t) => t.cpuNs),
    floorNs: medianOf(floor, (t) => t.cpuNs),
    wall: { synNs: medianOf(syn, (t) => t.wallNs), establishedNs: medianOf(established, (t) => t.wallNs), floorNs: medianOf(floor, (t) => t.wallNs) },
    forwardedShare: s.newFlows.forwarded / (s.newFlows.forwarded + s.newFlows.local),
  };
}
