// Helpers of the fault tests (64-68) and the reliability bench: processes of
// a cluster host, the kernel's counters inside a host's namespace, the C
// senders, and the catalogue of malformed packets. Nothing here changes the
// root namespace; every command runs inside the cluster's own namespaces.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CLIENT_ADDRESS, Cluster, hostAddress, hostName } from '../../tools/cluster';
import { loadConfig } from '../../lib/config';
import { waitForLine } from './lines';
import { nfqueueHits, parseKernelQueues, parseRuleCounters, KERNEL_QUEUE_FILE, type KernelQueue, type QueueSample, type RuleCounter } from '../../lib/kernel-queue';
import * as pb from './packet-builder';
import type { Probe, ProbeSpec } from './probe';
import type { LoadSpec, LoadSummary } from '../../tools/loadgen';

const ROOT = path.resolve(__dirname, '..', '..', '..');
const PROBE = path.join(__dirname, 'probe.js');

/** A source outside the test cluster's clusterCidr (198.18.0.0/24), still in the benchmarking range. */
export const OUTSIDER = '198.19.9.9';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// Every directory buildC made goes when the process exits, also when a test
// failed before its own cleanup (a cluster that did not start).
const builtDirs = new Set<string>();
process.once('exit', () => {
  for (const dir of builtDirs) fs.rmSync(dir, { recursive: true, force: true });
});

/** Compiles one C helper of the repository into a fresh temporary directory (removed at exit at the latest). */
export function buildC(source: string): { bin: string; dir: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpr-faults-'));
  builtDirs.add(dir);
  const bin = path.join(dir, path.basename(source, '.c'));
  execFileSync('cc', ['-O2', '-Wall', '-Wextra', '-o', bin, path.join(ROOT, source)], { stdio: ['ignore', 'pipe', 'pipe'] });
  return { bin, dir };
}

// ---------------------------------------------------------------- processes

export function namespacePids(cluster: Cluster, host: string): number[] {
  return execFileSync('ip', ['netns', 'pids', cluster.bed.ns(host)], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)
    .map(Number);
}

function cmdline(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return '';
  }
}

/** The pid of the `dpr start` process in host `id`'s namespace. */
export function daemonPid(cluster: Cluster, id: number): number {
  const pid = namespacePids(cluster, hostName(id)).find((p) => / start --config /.test(cmdline(p)) && cmdline(p).includes('cli.js'));
  if (pid === undefined) throw new Error(`no dpr daemon runs on h${id}`);
  return pid;
}

/** Resident memory of a process in KiB (VmRSS). */
export function rssKb(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]);
}

/**
 * A host dies: every process in its namespace (web server, daemon) gets
 * SIGKILL. Its rules stay, as on a machine that hangs: with no daemon, the
 * peer ports hold forwarded packets back, so they go unanswered.
 */
export async function killHost(cluster: Cluster, id: number): Promise<number[]> {
  const pids = namespacePids(cluster, hostName(id));
  for (const p of pids) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  for (let i = 0; i < 50 && namespacePids(cluster, hostName(id)).length > 0; i++) await sleep(20);
  return pids;
}

/** Starts host `id`'s web server again, as Cluster.create did. */
export async function startWebServer(cluster: Cluster, id: number): Promise<void> {
  await cluster.startWebServer(id);
}

// ---------------------------------------------------------------- counters

/** The kernel's SNMP counters of a host's namespace, by nstat name (IpInHdrErrors, TcpInCsumErrors, ...). */
export function nstat(cluster: Cluster, host: string): Record<string, number> {
  // -a absolute, -s do not touch nstat's history file, -z zero counters too.
  const out: Record<string, number> = {};
  for (const line of cluster.bed.exec(host, ['nstat', '-asz']).split('\n')) {
    const m = /^(\w+)\s+(\d+)/.exec(line);
    if (m) out[m[1]!] = Number(m[2]);
  }
  return out;
}

/** Every iptables rule of a host with its counters. */
export function ruleCounters(cluster: Cluster, host: string): RuleCounter[] {
  return parseRuleCounters(cluster.bed.exec(host, ['iptables-save', '-c']));
}

export function rulePackets(rules: RuleCounter[], chain: string, match: RegExp): number {
  return rules.filter((r) => r.chain === chain && match.test(r.rule)).reduce((s, r) => s + r.packets, 0);
}

/**
 * Packets that entered DPR_ENTRY and left it by no rule: iptables dropped
 * them inside a match (xt_tcp "hotdrop"s a TCP header it cannot read).
 */
export function entryHotdrops(rules: RuleCounter[]): number {
  const entered = rulePackets(rules, 'DPR_PRE', /-j DPR_ENTRY$/);
  const left = rules.filter((r) => r.chain === 'DPR_ENTRY').reduce((s, r) => s + r.packets, 0);
  return entered - left;
}

export function kernelQueues(cluster: Cluster, host: string): KernelQueue[] {
  return parseKernelQueues(cluster.bed.exec(host, ['cat', KERNEL_QUEUE_FILE]));
}

/** h0's entry queue (number 0: SYNs, fail-open) as the kernel, the rules and the daemon count it, now. */
export function entryQueueSample(cluster: Cluster): QueueSample {
  const st = cluster.status(0).entry!;
  return {
    hits: nfqueueHits(ruleCounters(cluster, 'h0'), ['DPR_ENTRY']).get(0) ?? 0,
    // The daemon reads the flows queue on the same socket: its packets are not queue 0's.
    received: st.queue.batchPackets - (st.queue.flowsPackets ?? 0) + st.queue.startupAccepted,
    kernel: kernelQueues(cluster, 'h0').find((q) => q.queueNum === 0)!,
  };
}

// ---------------------------------------------------------------- traffic

export function macOf(cluster: Cluster, host: string): string {
  return cluster.bed.exec(host, ['cat', '/sys/class/net/eth0/address']).trim();
}

export interface SendResult {
  packets: number;
  sent: number;
  errors: number;
}

/** Sends packets (IP bytes) from `from`'s eth0 to `to`'s MAC with tools/c/packet_send, asynchronously. */
export async function sendPackets(cluster: Cluster, bin: string, from: string, to: string, packets: Uint8Array[], gapUs = 0): Promise<SendResult> {
  const child = cluster.bed.spawn(from, [bin, '--ifname', 'eth0', '--dst-mac', macOf(cluster, to), '--gap-us', String(gapUs)], { stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin!.end(packets.map(pb.toHex).join('\n') + '\n');
  const line = await waitForLine(child, (l) => l.startsWith('{'), 60000, 'packet_send');
  return JSON.parse(line) as SendResult;
}

/** Runs the open-loop connection probe (support/probe) in the client namespace. */
export async function probe(cluster: Cluster, spec: ProbeSpec): Promise<Probe[]> {
  const child = cluster.bed.spawn('client', [process.execPath, PROBE, JSON.stringify(spec)]);
  const line = await waitForLine(child, (l) => l.startsWith('['), spec.durationMs + spec.timeoutMs + 30000, 'connection probe');
  return JSON.parse(line) as Probe[];
}

// ---------------------------------------------------------------- bad input

/** Where a kind of bad packet ends on the host it is sent to. */
export type Fate =
  | 'ip'         // the IP layer drops it before any netfilter hook (ip_rcv): nstat counts it
  | 'defrag'     // a fragment: reassembly holds it (the entry queue never sees fragments)
  | 'entry'      // reaches the entry queue: the engine counts it by reason, or routes it
  | 'serve'      // reaches the serve queue: counted by note
  | 'serve_drop'; // peer port without an entry host's TTL (GTSM): the DPR_SERVE DROP rule

export interface BadKind {
  kind: string;
  fate: Fate;
  /** The counter that shows it: an nstat name, an engine reason or note, or a rule. */
  counter: string;
  /** Packets to send (a fragment pair counts as one copy of its kind). */
  packets: Uint8Array[];
}

export interface BadTarget {
  client: string;
  outsider: string;
  /** Service address (= cluster address) of the host under attack. */
  service: string;
  /** Its own peer port (origin = itself: refused as bad_origin) and a peer's. */
  ownPeerPort: number;
  peerPeerPort: number;
  /** Distinct copies of every kind (different source port and IP id). */
  copies: number;
}

function fragment(full: Uint8Array, from: number, to: number, more: boolean): Uint8Array {
  // Offsets count 8-byte units of the IP payload; `from` must be a multiple of 8.
  const p = new Uint8Array(20 + (to - from));
  p.set(full.subarray(0, 20), 0);
  p.set(full.subarray(20 + from, 20 + to), 20);
  const frag = (more ? 0x2000 : 0) | (from / 8);
  return pb.setIpField16(pb.setIpField16(p, 2, p.length), 6, frag);
}

/**
 * The malformed and odd packets of issue 5, `copies` of each kind, aimed at
 * the service address and the peer ports of one host. Source ports lie below
 * the client's ephemeral range, so they never meet its real connections.
 */
export function malformedSet(t: BadTarget): BadKind[] {
  if (t.copies < 1 || t.copies > 500) throw new Error('copies: 1..500');
  const kinds: BadKind[] = [];
  const add = (kind: string, fate: Fate, counter: string, make: (s: pb.TcpSpec) => Uint8Array | Uint8Array[]): void => {
    const k = kinds.length;
    const packets: Uint8Array[] = [];
    for (let i = 0; i < t.copies; i++) {
      const spec: pb.TcpSpec = { src: t.client, dst: t.service, sport: 10000 + k * 500 + i, dport: 80, flags: pb.SYN, seq: 7000 + i, id: (k * 500 + i) & 0xffff };
      const made = make(spec);
      packets.push(...(Array.isArray(made) ? made : [made]));
    }
    kinds.push({ kind, fate, counter, packets });
  };
  const syn = (s: pb.TcpSpec): Uint8Array => pb.buildTcp4(s);

  // IP-level garbage: ip_rcv drops it before PREROUTING.
  add('truncated_ip', 'ip', 'IpInHdrErrors', (s) => syn(s).slice(0, 16));
  add('ip_version_6', 'ip', 'IpInHdrErrors', (s) => {
    const p = syn(s);
    p[0] = 0x65;
    pb.fillIpChecksum(p);
    return p;
  });
  add('ihl_too_small', 'ip', 'IpInHdrErrors', (s) => pb.withIhl(syn(s), 4));
  add('ihl_beyond_packet', 'ip', 'IpInHdrErrors', (s) => pb.withIhl(syn(s), 15));
  add('total_length_zero', 'ip', 'IpInHdrErrors', (s) => pb.setIpField16(syn(s), 2, 0));
  add('total_length_beyond_frame', 'ip', 'IpExtInTruncatedPkts', (s) => pb.setIpField16(syn(s), 2, 1000));
  add('bad_ip_checksum', 'ip', 'IpExtInCsumErrors', (s) => {
    const p = syn(s);
    p[10] ^= 0xff;
    return p;
  });
  // Fragments: reassembly (needed by conntrack and -m socket) runs before the raw table.
  const unfragmented = (s: pb.TcpSpec): Uint8Array => pb.setIpField16(pb.buildTcp4({ ...s, flags: pb.SYN, payload: pb.textPayload(32) }), 6, 0);
  add('fragment_first_alone', 'defrag', 'IpReasmReqds', (s) => fragment(unfragmented(s), 0, 24, true));
  add('fragment_middle_alone', 'defrag', 'IpReasmReqds', (s) => fragment(unfragmented(s), 24, 48, true));
  add('fragments_complete', 'defrag', 'IpReasmOKs', (s) => {
    const full = unfragmented(s);
    return [fragment(full, 0, 24, true), fragment(full, 24, full.length - 20, false)];
  });
  // A TCP header cut short (12 of 20 bytes). iptables-nft matches the flags
  // with a payload expression, which does not match what it cannot read, so
  // the packet falls through to the queue; iptables-legacy's xt_tcp would drop
  // it inside the match ("hotdrop"). The test accepts either, counted.
  add('truncated_tcp', 'entry', 'truncated_tcp', (s) => pb.setIpField16(syn(s).slice(0, 32), 2, 32));
  // Malformed TCP the rules let through: the engine counts and passes them on.
  add('tcp_offset_too_small', 'entry', 'bad_tcp_offset', (s) => pb.withTcpDataOffset(pb.buildTcp4({ ...s, flags: pb.ACK, ack: 1 }), 4));
  add('tcp_offset_beyond_packet', 'entry', 'bad_tcp_offset', (s) => pb.withTcpDataOffset(syn(s), 15));
  // Well-formed but odd: routed like any other packet, counted by action and note.
  add('ip_options', 'entry', 'new_flow', (s) => pb.buildTcp4({ ...s, ipOptions: [7, 7, 4, 0, 0, 0, 0] })); // record route
  add('syn_fin', 'entry', 'new_flow', (s) => pb.buildTcp4({ ...s, flags: pb.SYN | pb.FIN }));
  add('syn_rst', 'entry', 'no_flow_hashed', (s) => pb.buildTcp4({ ...s, flags: pb.SYN | pb.RST }));
  add('no_flags', 'entry', 'no_flow_hashed', (s) => pb.buildTcp4({ ...s, flags: 0 }));
  add('all_flags', 'entry', 'no_flow_hashed', (s) => pb.buildTcp4({ ...s, flags: 0xff }));
  add('zero_length_segment', 'entry', 'no_flow_hashed', (s) => pb.buildTcp4({ ...s, flags: pb.ACK, ack: 1 }));
  add('mtu_sized_segment', 'entry', 'no_flow_hashed', (s) => pb.buildTcp4({ ...s, flags: pb.ACK | pb.PSH, ack: 1, payload: pb.textPayload(1460) }));
  add('bad_tcp_checksum', 'entry', 'TcpInCsumErrors', (s) => {
    const p = syn(s);
    p[20 + 16] ^= 0x55;
    return p;
  });
  // Peer ports. The serving host queues only packets that arrive with the
  // TTL an entry host sends (255, GTSM); the source address says nothing, a
  // forwarded packet keeps the client's.
  add('peer_port_from_outsider', 'serve_drop', 'DPR_SERVE DROP', (s) => syn({ ...s, src: t.outsider, dport: t.peerPeerPort }));
  add('peer_port_low_ttl', 'serve_drop', 'DPR_SERVE DROP', (s) => syn({ ...s, dport: t.peerPeerPort }));
  // On the cluster's own link a sender can forge the TTL (as with GTSM
  // anywhere): then the engine still refuses a peer port naming this host itself.
  add('peer_port_own_origin_ttl_255', 'serve', 'bad_origin', (s) => syn({ ...s, ttl: 255, dport: t.ownPeerPort }));
  return kinds;
}

/** The set's packets in an order that mixes the kinds (one copy of each in turn). */
export function interleave(kinds: BadKind[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  const longest = Math.max(...kinds.map((k) => k.packets.length));
  for (let i = 0; i < longest; i++) for (const k of kinds) if (i < k.packets.length) out.push(k.packets[i]!);
  return out;
}

// ---------------------------------------------------------------- floods

export interface FloodResult {
  sent: number;
  errors: number;
  seconds: number;
}

/**
 * Spoofed SYNs at `dst` from the client namespace with bench/c/syn_flood, in
 * bursts `gapMs` apart; burst b comes from 198.18.0.(100 + b), an address no
 * host has, one source port per SYN, so every SYN is a new 4-tuple.
 */
export async function synFlood(cluster: Cluster, bin: string, o: { dst: string; count: number; bursts: number; gapMs: number }): Promise<FloodResult> {
  if (o.bursts < 1 || o.bursts > 50) throw new Error('bursts: 1..50');
  const per = Math.ceil(o.count / o.bursts);
  const total: FloodResult = { sent: 0, errors: 0, seconds: 0 };
  for (let b = 0; b < o.bursts; b++) {
    const n = Math.min(per, o.count - b * per);
    if (n <= 0) break;
    const child = cluster.bed.spawn('client', [bin, '--dst', o.dst, '--src', `198.18.0.${100 + b}`, '--flows', String(n), '--count', String(n), '--seconds', '20']);
    const r = JSON.parse(await waitForLine(child, (l) => l.startsWith('{'), 30000, 'syn_flood')) as FloodResult;
    total.sent += r.sent;
    total.errors += r.errors;
    total.seconds += r.seconds;
    if (b + 1 < o.bursts) await sleep(o.gapMs);
  }
  return total;
}

/** Flows in an engine's table, every state. */
export function flowCount(s: { flows: { pending: number; syn: number; established: number; closing: number } }): number {
  return s.flows.pending + s.flows.syn + s.flows.established + s.flows.closing;
}

// ---------------------------------------------------------------- a peer dies

export interface PeerDeath {
  /** Wall-clock time of the kill (epoch ms). */
  killedAt: number;
  /** When the entry host's own table dropped the dead host (/status liveHosts), after the kill. */
  detectedMs: number | null;
  /** Start of the last new connection after the kill that still went to the dead host (it failed), after the kill. */
  lastToDeadMs: number | null;
  /**
   * Connections started before the kill ended (its processes all gone) that
   * failed: in flight to the dead host when it died. (One started while the
   * kill was under way can be accepted by the web server, then reset as it
   * dies: seen once in a full run.)
   */
  inFlight: number;
  /** Connections started after the kill ended that failed: sent to the dead host before the others noticed. */
  sentToDead: number;
  /** Connections started later than `settleMs` after the kill: failed, and answered by the dead host. */
  lateErrors: number;
  lateToDead: number;
  /** The dead host served some connections before the kill (else the run shows nothing). */
  servedByVictimBefore: number;
  probes: number;
  errorKinds: Record<string, number>;
}

/**
 * Host `victim` dies (its daemon and web server killed; or only its web
 * server, with `webServerOnly`) while a steady stream of new connections (one
 * per `intervalMs`) arrives at host `entry`.
 */
export async function peerDeath(cluster: Cluster, o: { entry: number; victim: number; intervalMs: number; beforeMs: number; afterMs: number; timeoutMs: number; settleMs: number; webServerOnly?: boolean }): Promise<PeerDeath> {
  const probes = probe(cluster, { address: hostAddress(o.entry), intervalMs: o.intervalMs, durationMs: o.beforeMs + o.afterMs, timeoutMs: o.timeoutMs });
  await sleep(o.beforeMs);
  const killedAt = Date.now();
  if (o.webServerOnly) await cluster.killWebServer(o.victim);
  else await killHost(cluster, o.victim);
  const deadAt = Date.now();
  let detectedMs: number | null = null;
  while (Date.now() - killedAt < o.settleMs) {
    if (!cluster.status(o.entry).liveHosts.includes(o.victim)) {
      detectedMs = Date.now() - killedAt;
      break;
    }
    await sleep(20);
  }
  const all = await probes;
  const failed = all.filter((p) => p.error !== null);
  const after = failed.filter((p) => p.startedAt >= deadAt);
  const late = all.filter((p) => p.startedAt >= killedAt + o.settleMs);
  const errorKinds: Record<string, number> = {};
  for (const p of failed) errorKinds[p.error!] = (errorKinds[p.error!] ?? 0) + 1;
  return {
    killedAt,
    detectedMs,
    lastToDeadMs: after.length ? Math.max(...after.map((p) => p.startedAt - killedAt)) : null,
    inFlight: failed.length - after.length,
    sentToDead: after.length,
    lateErrors: late.filter((p) => p.error !== null).length,
    lateToDead: late.filter((p) => p.servedBy === o.victim).length,
    servedByVictimBefore: all.filter((p) => p.startedAt < killedAt && p.servedBy === o.victim).length,
    probes: all.length,
    errorKinds,
  };
}

/** Brings a dead host back: web server, then daemon, then waits for every daemon to see every other. */
export async function reviveHost(cluster: Cluster, id: number): Promise<void> {
  await startWebServer(cluster, id);
  await cluster.startDaemon(id);
  await cluster.waitForMembership();
}

// ---------------------------------------------------------------- a malformed run

export interface CounterCheck {
  /** Where it is counted: nstat name, engine reason or note, or rule. */
  counter: string;
  /** What the kinds sent should add (at least, where `atLeast`). */
  expected: number;
  seen: number;
  atLeast: boolean;
}

export interface MalformedRun {
  kinds: Array<{ kind: string; fate: Fate; counter: string; packets: number }>;
  sent: SendResult;
  load: LoadSummary;
  checks: CounterCheck[];
  /** Engine reasons and notes on the attacked host (deltas), for the record. */
  entryMalformed: Record<string, number>;
  entryNotes: Record<string, number>;
  /** TcpInCsumErrors on each host (wrong TCP checksums end at whichever host a packet was routed to). */
  tcpCsumErrors: number[];
  daemonRestarted: boolean;
}

type Counts = Record<string, number>;
const deltas = (a: Counts, b: Counts): Counts => Object.fromEntries(Object.entries(a).map(([k, v]) => [k, v - (b[k] ?? 0)]));

/**
 * Sends `copies` of every bad kind at host 0 (service address and peer
 * ports) from the client, `gapUs` apart, while `load` runs; then reads every
 * counter that should show them. The switch namespace's bridge must not run
 * iptables (bridge-nf-call-iptables 0), or it drops the IP-level garbage first.
 */
export async function runMalformed(cluster: Cluster, senderBin: string, copies: number, load: LoadSpec, gapUs: number): Promise<MalformedRun> {
  const base = loadConfig({ file: cluster.configFiles[0] }).peerPortBase;
  const kinds = malformedSet({ client: CLIENT_ADDRESS, outsider: OUTSIDER, service: hostAddress(0), ownPeerPort: base, peerPeerPort: base + 1, copies });
  const packets = interleave(kinds);
  const hosts = Array.from({ length: cluster.options.hosts }, (_, id) => `h${id}`);
  const snap = () => {
    const st = cluster.status(0);
    return { st, ip: nstat(cluster, 'h0'), rules: ruleCounters(cluster, 'h0'), csum: hosts.map((h) => nstat(cluster, h).TcpInCsumErrors ?? 0) };
  };
  const b = snap();
  const running = cluster.load(load);
  await sleep(300);
  const sent = await sendPackets(cluster, senderBin, 'client', 'h0', packets, gapUs);
  const summary = await running;
  await sleep(500); // the last packets settle (reassembly keeps lone fragments; it never passes them on)
  const a = snap();

  const entryMalformed = deltas(a.st.entry!.malformed, b.st.entry!.malformed);
  const entryNotes = deltas(a.st.entry!.notes, b.st.entry!.notes);
  const serveNotes = deltas(a.st.serve!.notes, b.st.serve!.notes);
  const ip = deltas(a.ip, b.ip);
  const copiesWith = (pick: (k: BadKind) => boolean): number => kinds.filter(pick).length * copies;
  const serveDrop = rulePackets(a.rules, 'DPR_SERVE', /^-j DROP$/) - rulePackets(b.rules, 'DPR_SERVE', /^-j DROP$/);
  const hotdrops = entryHotdrops(a.rules) - entryHotdrops(b.rules);
  const nft = cluster.bed.exec('h0', ['iptables', '-V']).includes('nf_tables');
  const check = (counter: string, expected: number, seen: number, atLeast = false): CounterCheck => ({ counter, expected, seen, atLeast });
  const checks = [
    // bad_ip_checksum counts as a header error too.
    check('IpInHdrErrors', copiesWith((k) => k.fate === 'ip' && (k.counter === 'IpInHdrErrors' || k.counter === 'IpExtInCsumErrors')), ip.IpInHdrErrors ?? 0),
    check('IpExtInCsumErrors', copiesWith((k) => k.counter === 'IpExtInCsumErrors'), ip.IpExtInCsumErrors ?? 0),
    check('IpExtInTruncatedPkts', copiesWith((k) => k.counter === 'IpExtInTruncatedPkts'), ip.IpExtInTruncatedPkts ?? 0),
    check('IpReasmReqds', kinds.filter((k) => k.fate === 'defrag').reduce((s, k) => s + k.packets.length, 0), ip.IpReasmReqds ?? 0, true),
    check('IpReasmOKs', copiesWith((k) => k.counter === 'IpReasmOKs'), ip.IpReasmOKs ?? 0, true),
    // iptables-nft lets a cut TCP header through to the engine; iptables-legacy drops it in xt_tcp.
    nft
      ? check('entry.malformed.truncated_tcp', copiesWith((k) => k.counter === 'truncated_tcp'), entryMalformed.truncated_tcp ?? 0)
      : check('DPR_ENTRY hotdrops (xt_tcp)', copiesWith((k) => k.counter === 'truncated_tcp'), hotdrops),
    check('entry.malformed.bad_tcp_offset', copiesWith((k) => k.counter === 'bad_tcp_offset'), entryMalformed.bad_tcp_offset ?? 0),
    check('entry.malformed (every other reason)', 0, Object.entries(entryMalformed).filter(([r]) => r !== (nft ? 'truncated_tcp' : '') && r !== 'bad_tcp_offset').reduce((s, [, n]) => s + n, 0)),
    check('entry.notes.no_flow_hashed', copiesWith((k) => k.counter === 'no_flow_hashed'), entryNotes.no_flow_hashed ?? 0, true),
    check('DPR_SERVE DROP', copiesWith((k) => k.fate === 'serve_drop'), serveDrop),
    // Well-formed SYNs (and the reassembled pair) are new flows, beside the
    // load's own connections to h0; or, where the client used a port again
    // while h0 still remembered its closed flow, follow that flow (syn_on_flow,
    // 5 of 558 in one run).
    check('entry.newFlows + notes.syn_on_flow', (summary.byTarget[hostAddress(0)]?.sent ?? 0) +
      copiesWith((k) => ['ip_options', 'syn_fin', 'fragments_complete', 'bad_tcp_checksum'].includes(k.kind)),
      a.st.entry!.newFlows.local + a.st.entry!.newFlows.forwarded - b.st.entry!.newFlows.local - b.st.entry!.newFlows.forwarded + (entryNotes.syn_on_flow ?? 0), true),
    check('serve.notes.bad_origin', copiesWith((k) => k.fate === 'serve'), serveNotes.bad_origin ?? 0),
  ];
  return {
    kinds: kinds.map((k) => ({ kind: k.kind, fate: k.fate, counter: k.counter, packets: k.packets.length })),
    sent,
    load: summary,
    checks,
    entryMalformed,
    entryNotes,
    tcpCsumErrors: a.csum.map((v, i) => v - b.csum[i]!),
    daemonRestarted: a.st.startedAt !== b.st.startedAt,
  };
}

export function checkPasses(c: CounterCheck): boolean {
  return c.atLeast ? c.seen >= c.expected : c.seen === c.expected;
}

/** What a blind attacker sends at one client port: RSTs with random sequence numbers, then SYNs. */
export function rstSynStorm(client: string, service: string, ports: number[], each = 3): Uint8Array[] {
  const random = (): number => Math.floor(Math.random() * 0x100000000);
  const out: Uint8Array[] = [];
  for (const flags of [pb.RST | pb.ACK, pb.SYN]) {
    for (let i = 0; i < each; i++) {
      for (const sport of ports) out.push(pb.buildTcp4({ src: client, dst: service, sport, dport: 80, flags, seq: random(), ack: flags === pb.SYN ? 0 : random() }));
    }
  }
  return out;
}
