// Writes test/fixtures/packets/*.json. Expected bytes are built here, directly
// with the new destination and full checksums, never by asking the addon: the
// fixtures are a second implementation the addon is held to.
//
// Run: npm run build:ts && node dist/test/support/make-fixtures.js
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Action, Malformed, Note } from '../../lib/native';
import {
  ACK, FIN, PSH, RST, SYN, SYN_OPTIONS, buildIcmp4, buildIpv6, buildTcp4, buildUdp4,
  setIpField16, textPayload, toHex, withIhl, withTcpDataOffset, type ChecksumMode, type TcpSpec,
} from './packet-builder';
import {
  CLIENT, CLUSTER, FORWARD_MARK, OTHER_MAC, OUTSIDER, PEER_MACS, SERVE_MARK, SERVICE, addr, peerPort, type EngineName,
} from './cluster';
import { fixtureDir, type FixtureStep, type PacketFixture } from './fixture-format';

interface Case {
  slug: string;
  description: string;
  engine: EngineName;
  csumNotReady?: boolean;
  steps?: FixtureStep[];
  nowMs?: number;
  srcMac?: string;
  wireLength?: number;
  input: Uint8Array;
  action: Action;
  malformed?: Malformed;
  note?: Note;
  /** Expected bytes; the input itself when absent (unchanged). */
  output?: Uint8Array;
}

const S0 = addr(SERVICE, 0);
const S1 = addr(SERVICE, 1);
const S2 = addr(SERVICE, 2);
const C1 = addr(CLUSTER, 1);

/** A client segment to host 0's service address, port 80; `over` changes any field. */
function toEntry(over: Partial<TcpSpec> = {}): TcpSpec {
  return { src: CLIENT, dst: S0, sport: 40001, dport: 80, flags: SYN, seq: 1000, tcpOptions: SYN_OPTIONS, ...over };
}

/** The same segment as the serving host 1 receives it from entry host `origin`. */
function toServe(origin: number, k: number, over: Partial<TcpSpec> = {}): TcpSpec {
  return toEntry({ dst: C1, dport: peerPort(origin, k), ...over });
}

/**
 * What entry host 0 must emit for `spec` when host 1 serves it. The TTL is
 * left alone: the kernel sets 255 after its forwarding decrement (mangle
 * POSTROUTING), where GTSM needs it.
 */
function forwarded(spec: TcpSpec, k = 0): Uint8Array {
  return buildTcp4({ ...spec, dst: C1, dport: peerPort(0, k) }, 'full');
}

function restored(spec: TcpSpec, service: string, port: number): Uint8Array {
  return buildTcp4({ ...spec, dst: service, dport: port }, 'full');
}

function step(spec: TcpSpec, extra: Partial<FixtureStep> = {}, mode: ChecksumMode = 'full'): FixtureStep {
  return { input: toHex(buildTcp4(spec, mode)), csumNotReady: mode === 'partial', ...extra };
}

const syn = toEntry();
const ack = toEntry({ flags: ACK, seq: 1001, ack: 5001, tcpOptions: [] });
// An odd payload length: the checksum's trailing byte must be handled.
const data = toEntry({ flags: ACK | PSH, seq: 1001, ack: 5001, tcpOptions: [], payload: textPayload(45) });
const fin = toEntry({ flags: FIN | ACK, seq: 1046, ack: 5001, tcpOptions: [] });
const rst = toEntry({ flags: RST | ACK, seq: 1046, ack: 5001, tcpOptions: [] });
// A blind guess: nowhere near the client's next sequence number (1046).
const rstFar = toEntry({ flags: RST | ACK, seq: 1046 + 10_000_000, ack: 5001, tcpOptions: [] });
// SYN, the handshake ACK and the request: the client's next sequence number is 1046.
const established = [step(syn), step(ack), step(data)];

function forwardingCases(): Case[] {
  return [
    { slug: 'entry-local-syn', description: 'entry: a SYN the hash keeps local is accepted unchanged',
      engine: 'entry-hash-local', input: buildTcp4(syn), action: 'accept' },
    { slug: 'entry-forward-syn', description: 'entry: a SYN hashed to a peer is rewritten to C_B:P(A,0) and repeated with the forward mark',
      engine: 'entry-hash-to-peer', input: buildTcp4(syn), action: 'forward', output: forwarded(syn) },
    { slug: 'entry-forward-syn-443', description: 'entry: a SYN to the second service port goes to peer port P(A,1)',
      engine: 'entry-hash-to-peer', input: buildTcp4({ ...syn, dport: 443 }), action: 'forward',
      output: forwarded({ ...syn, dport: 443 }, 1) },
    { slug: 'entry-forward-syn-retransmit', description: 'entry: a retransmitted SYN of a forwarded flow goes the same way',
      engine: 'entry-hash-to-peer', steps: [step(syn)], input: buildTcp4(syn), action: 'forward', output: forwarded(syn) },
    { slug: 'entry-forward-data', description: 'entry: data after the SYN follows the flow to the peer (odd payload length)',
      engine: 'entry-hash-to-peer', steps: [step(syn)], input: buildTcp4(data), action: 'forward', output: forwarded(data) },
    { slug: 'entry-forward-fin', description: 'entry: a FIN of a forwarded flow is forwarded',
      engine: 'entry-hash-to-peer', steps: established, input: buildTcp4(fin), action: 'forward', output: forwarded(fin) },
    { slug: 'entry-forward-rst', description: "entry: a RST at the client's next sequence number is forwarded (the flow waits in reset)",
      engine: 'entry-hash-to-peer', steps: established, input: buildTcp4(rst), action: 'forward', note: 'rst_in_window', output: forwarded(rst) },
    { slug: 'entry-rst-out-of-window', description: "entry: a RST far from the client's sequence numbers is forwarded and counted, the flow left alone",
      engine: 'entry-hash-to-peer', steps: established, input: buildTcp4(rstFar), action: 'forward', note: 'rst_out_of_window',
      output: forwarded(rstFar) },
    { slug: 'entry-after-rst-kept', description: 'entry: after a RST within the window the flow is kept; the next packet still follows it',
      engine: 'entry-hash-to-peer', steps: [...established, step(rst)], input: buildTcp4(data), action: 'forward',
      output: forwarded(data) },
    { slug: 'entry-no-flow-hashed', description: 'entry: a mid-flow packet with no entry is routed by the hash table',
      engine: 'entry-hash-to-peer', input: buildTcp4(ack), action: 'forward', note: 'no_flow_hashed', output: forwarded(ack) },
    { slug: 'entry-syn-on-established', description: 'entry: a SYN on an established flow goes to its serving host, not decided again',
      engine: 'entry-hash-to-peer', steps: established, input: buildTcp4({ ...syn, seq: 777000 }), action: 'forward',
      note: 'syn_on_flow', output: forwarded({ ...syn, seq: 777000 }) },
    { slug: 'entry-syn-after-rst', description: 'entry: a SYN after a RST within the window starts a new connection, decided afresh',
      engine: 'entry-hash-to-peer', steps: [...established, step(rst)], input: buildTcp4({ ...syn, seq: 777000 }), action: 'forward',
      note: 'syn_redecided', output: forwarded({ ...syn, seq: 777000 }) },
    { slug: 'entry-local-flow-data', description: 'entry: data of a flow kept local is accepted unchanged',
      engine: 'entry-hash-local', steps: [step(syn)], input: buildTcp4(data), action: 'accept' },
    { slug: 'entry-draining-syn', description: 'entry: while draining a new SYN stays local',
      engine: 'entry-draining', input: buildTcp4(syn), action: 'accept', note: 'draining' },
    { slug: 'entry-not-service-port', description: 'entry: a segment to a port that is no service port is not touched',
      engine: 'entry-hash-to-peer', input: buildTcp4({ ...syn, dport: 22 }), action: 'accept', note: 'not_service' },
    { slug: 'entry-not-service-addr', description: "entry: a segment to another host's service address is not touched",
      engine: 'entry-hash-to-peer', input: buildTcp4({ ...syn, dst: S1 }), action: 'accept', note: 'not_service' },
    { slug: 'entry-ethernet-padding', description: 'entry: bytes after the IP total length (link padding) are kept and left out of the checksum',
      engine: 'entry-hash-to-peer', steps: [step(syn)], input: padded(buildTcp4(data), 6), action: 'forward',
      output: padded(forwarded(data), 6) },
  ];
}

function padded(p: Uint8Array, n: number): Uint8Array {
  const out = new Uint8Array(p.length + n);
  out.set(p);
  return out;
}

function loadPolicyCases(): Case[] {
  return [
    { slug: 'load-syn-forwarded', description: 'load: a busy host sends a new SYN to the idle peer, decided at once',
      engine: 'entry-load-busy', input: buildTcp4(syn), action: 'forward', output: forwarded(syn) },
    { slug: 'load-syn-local', description: 'load: a host no busier than its peer keeps a new SYN',
      engine: 'entry-load-idle', input: buildTcp4(syn), action: 'accept' },
    { slug: 'load-syn-retransmitted', description: 'load: a retransmitted SYN follows the first one\'s decision',
      engine: 'entry-load-busy', steps: [step(syn)], input: buildTcp4(syn), action: 'forward', output: forwarded(syn) },
    { slug: 'load-after-rst-kept', description: 'load: after a RST within the window the flow is kept; the next packet still goes to its host',
      engine: 'entry-load-busy',
      steps: [step(syn), step(ack), step(rst)],
      input: buildTcp4(data), action: 'forward', output: forwarded(data) },
    { slug: 'load-after-spoofed-rst', description: 'load: after a RST far from the window the flow is untouched; the next packet goes to its host',
      engine: 'entry-load-busy',
      steps: [step(syn), step(ack), step(rstFar)],
      input: buildTcp4(data), action: 'forward', output: forwarded(data) },
    { slug: 'load-syn-on-established', description: 'load: a SYN on an established flow is not decided again; it goes to its host',
      engine: 'entry-load-busy',
      steps: [step(syn), step(ack), step(data)],
      input: buildTcp4({ ...syn, seq: 777000 }), action: 'forward', note: 'syn_on_flow', output: forwarded({ ...syn, seq: 777000 }) },
  ];
}

function serveCases(): Case[] {
  const sSyn = toServe(0, 0);
  const sData = toServe(0, 0, { flags: ACK | PSH, seq: 1001, ack: 5001, tcpOptions: [], payload: textPayload(45) });
  const s443From2 = toServe(2, 1);
  return [
    { slug: 'serve-restore-syn', description: 'serve: a forwarded SYN is restored to S_A:80 and marked',
      engine: 'serve', input: buildTcp4(sSyn), action: 'restore', output: restored(sSyn, S0, 80) },
    { slug: 'serve-restore-data', description: 'serve: forwarded data is restored to S_A:80 (odd payload length)',
      engine: 'serve', input: buildTcp4(sData), action: 'restore', output: restored(sData, S0, 80) },
    { slug: 'serve-restore-origin2-443', description: "serve: peer port P(2,1) restores host 2's address and port 443",
      engine: 'serve', input: buildTcp4(s443From2), action: 'restore', output: restored(s443From2, S2, 443) },
    { slug: 'serve-not-peer-port', description: 'serve: a segment to the cluster address on a service port is not touched',
      engine: 'serve', input: buildTcp4(toServe(0, 0, { dport: 80 })), action: 'accept', note: 'not_peer_port' },
    { slug: 'serve-past-peer-range', description: 'serve: the port just past the peer port range is not touched',
      engine: 'serve', input: buildTcp4(toServe(0, 0, { dport: peerPort(4, 0) })), action: 'accept', note: 'not_peer_port' },
    { slug: 'serve-not-cluster-addr', description: 'serve: a peer port on an address other than our cluster address is not touched',
      engine: 'serve', input: buildTcp4(toServe(0, 0, { dst: S1 })), action: 'accept', note: 'not_peer_port' },
    { slug: 'serve-bad-origin-self', description: 'serve: a peer port naming this host itself is refused',
      engine: 'serve', input: buildTcp4(toServe(1, 0)), action: 'accept', note: 'bad_origin' },
    { slug: 'serve-bad-origin-hole', description: 'serve: a peer port naming a host id with no address is refused',
      engine: 'serve', input: buildTcp4(toServe(3, 0)), action: 'accept', note: 'bad_origin' },
  ];
}

function peerMacCases(): Case[] {
  const fromHost0 = toServe(0, 0);
  const fromHost2 = toServe(2, 0);
  return [
    { slug: 'serve-mac-of-origin', description: "serve, one segment: a packet from the MAC of the host its peer port names is restored",
      engine: 'serve-macs', srcMac: PEER_MACS[0], input: buildTcp4(fromHost0), action: 'restore', output: restored(fromHost0, S0, 80) },
    { slug: 'serve-mac-other', description: "serve, one segment: a TTL-255 packet from another MAC is dropped (a forged TTL is not enough)",
      engine: 'serve-macs', srcMac: OTHER_MAC, input: buildTcp4({ ...fromHost0, ttl: 255 }), action: 'drop', note: 'bad_peer_mac' },
    { slug: 'serve-mac-absent', description: 'serve, one segment: a packet without a source MAC (not Ethernet) is dropped',
      engine: 'serve-macs', input: buildTcp4(fromHost0), action: 'drop', note: 'bad_peer_mac' },
    { slug: 'serve-mac-unknown', description: "serve, one segment: before a peer's MAC is known, its packets are dropped (TCP resends them)",
      engine: 'serve-macs', srcMac: OTHER_MAC, input: buildTcp4(fromHost2), action: 'drop', note: 'peer_mac_unknown' },
  ];
}

// "Fragmentation needed" from a router on the client's path, about a segment
// the serving host sent as host 0: S0:80 -> client:40001 (its first 40 bytes).
const answer = buildTcp4({ src: S0, dst: CLIENT, sport: 80, dport: 40001, flags: ACK | PSH, seq: 5001, ack: 1046, payload: textPayload(1400) }).slice(0, 40);
const ROUTER = '198.18.200.1';
const fragNeeded = (dst: string, ttl?: number): Uint8Array => buildIcmp4(ROUTER, dst, 3, 4, answer, { rest: 1280, ttl });

function icmpCases(): Case[] {
  return [
    { slug: 'icmp-frag-needed-forwarded', description: "ICMP: fragmentation needed about a forwarded flow's answer goes on to its serving host's cluster address",
      engine: 'entry-hash-to-peer', steps: established, input: fragNeeded(S0), action: 'forward', note: 'icmp_forwarded',
      output: fragNeeded(C1) },
    { slug: 'icmp-frag-needed-local', description: 'ICMP: fragmentation needed about a flow served here is for the local stack',
      engine: 'entry-hash-local', steps: [step(syn)], input: fragNeeded(S0), action: 'accept', note: 'icmp_local' },
    { slug: 'icmp-frag-needed-no-flow', description: 'ICMP: fragmentation needed about no known flow is left to the local stack',
      engine: 'entry-hash-to-peer', input: fragNeeded(S0), action: 'accept', note: 'icmp_no_flow' },
    { slug: 'icmp-quotes-other-address', description: "ICMP: an error quoting a segment from no service address of the cluster is left alone",
      engine: 'entry-hash-to-peer', steps: established, input: buildIcmp4(ROUTER, S0, 3, 4, forwarded(syn).slice(0, 28)),
      action: 'accept', note: 'icmp_not_ours' },
    { slug: 'icmp-restore-from-peer', description: "ICMP, serving host: an error host 0 forwarded (TTL 255) gets host 0's service address back",
      engine: 'serve', input: fragNeeded(C1, 255), action: 'restore', note: 'icmp_restored', output: fragNeeded(S0, 255) },
    { slug: 'icmp-from-peer-low-ttl', description: 'ICMP, serving host: such an error without a peer\'s TTL is left alone',
      engine: 'serve', input: fragNeeded(C1, 64), action: 'accept', note: 'icmp_not_ours' },
  ];
}

// A segment larger than the queue copies: the queue holds its first 200
// bytes; its real length (NFQA_CAP_LEN) is 65,535, as after GRO or reassembly.
const big = toEntry({ flags: ACK | PSH, seq: 1046, ack: 5001, tcpOptions: [], payload: textPayload(65535 - 40) });
const bigCopy = buildTcp4(big).slice(0, 200);

function oversizeCases(): Case[] {
  return [
    { slug: 'oversize-forwarded-flow', description: 'oversize: a packet of a forwarded flow larger than the copy is dropped (TCP resends), not given to the local stack',
      engine: 'entry-hash-to-peer', steps: established, wireLength: 65535, input: bigCopy, action: 'drop', note: 'oversize' },
    { slug: 'oversize-no-flow-hashed', description: 'oversize: with no flow, the hash says where it goes: another host, so dropped',
      engine: 'entry-hash-to-peer', wireLength: 65535, input: bigCopy, action: 'drop', note: 'oversize' },
    { slug: 'oversize-local-flow', description: 'oversize: a packet of a flow served here goes on unchanged to the local stack',
      engine: 'entry-hash-local', steps: [step(syn)], wireLength: 65535, input: bigCopy, action: 'accept', note: 'oversize' },
    { slug: 'oversize-serve', description: 'oversize: at the serving host a forwarded packet larger than the copy cannot be restored: dropped',
      engine: 'serve', wireLength: 65535, input: buildTcp4({ ...big, dst: C1, dport: peerPort(0, 0) }).slice(0, 200), action: 'drop', note: 'oversize' },
  ];
}

function partialChecksumCases(): Case[] {
  const sData = toServe(0, 0, { flags: ACK | PSH, seq: 1001, ack: 5001, tcpOptions: [], payload: textPayload(45) });
  return [
    { slug: 'partial-forward-syn', description: 'partial checksum: a forwarded SYN leaves with a full TCP checksum',
      engine: 'entry-hash-to-peer', csumNotReady: true, input: buildTcp4(syn, 'partial'), action: 'forward', output: forwarded(syn) },
    { slug: 'partial-forward-data', description: 'partial checksum: forwarded data leaves with a full TCP checksum',
      engine: 'entry-hash-to-peer', csumNotReady: true, steps: [step(syn, {}, 'partial')],
      input: buildTcp4(data, 'partial'), action: 'forward', output: forwarded(data) },
    { slug: 'partial-serve-restore', description: 'partial checksum: a restored segment leaves with a full TCP checksum',
      engine: 'serve', csumNotReady: true, input: buildTcp4(sData, 'partial'), action: 'restore', output: restored(sData, S0, 80) },
    { slug: 'partial-local-unchanged', description: 'partial checksum: a local SYN keeps its partial sum for the kernel to finish',
      engine: 'entry-hash-local', csumNotReady: true, input: buildTcp4(syn, 'partial'), action: 'accept' },
  ];
}

function ipOptionCases(): Case[] {
  const routerAlert = toEntry({ ipOptions: [0x94, 4, 0, 0] });
  // Record route with room for nine addresses: 39 bytes, the longest header (IHL 15).
  const recordRoute = toEntry({ ...data, ipOptions: [7, 39, 4, ...new Array<number>(36).fill(0)] });
  return [
    { slug: 'ipopt-ihl6-forward', description: 'IP options: a SYN with IHL 6 (router alert) is forwarded correctly',
      engine: 'entry-hash-to-peer', input: buildTcp4(routerAlert), action: 'forward', output: forwarded(routerAlert) },
    { slug: 'ipopt-ihl15-forward', description: 'IP options: data with IHL 15 (record route) is forwarded correctly',
      engine: 'entry-hash-to-peer', steps: [step(syn)], input: buildTcp4(recordRoute), action: 'forward', output: forwarded(recordRoute) },
    { slug: 'ipopt-ihl15-partial', description: 'IP options: IHL 15 with a partial checksum is forwarded with a full one',
      engine: 'entry-hash-to-peer', csumNotReady: true, input: buildTcp4({ ...recordRoute, flags: SYN }, 'partial'),
      action: 'forward', output: forwarded({ ...recordRoute, flags: SYN }) },
  ];
}

function malformedCases(): Case[] {
  const good = buildTcp4(syn);
  const bare = buildTcp4({ ...syn, tcpOptions: [] }); // 40 bytes: 20 IP + 20 TCP
  const m = (slug: string, description: string, input: Uint8Array, malformed: Malformed): Case =>
    ({ slug, description, engine: 'entry-hash-to-peer', input, action: 'accept', malformed });
  return [
    m('bad-truncated-ip', 'malformed: 19 bytes, shorter than an IPv4 header', good.slice(0, 19), 'truncated_ip'),
    m('bad-truncated-tcp', 'malformed: a total length leaving 12 bytes of TCP header',
      setIpField16(bare.slice(0, 32), 2, 32), 'truncated_tcp'),
    m('bad-ihl-small', 'malformed: IHL 4 (16 bytes) is below the minimum', withIhl(bare, 4), 'bad_ihl'),
    m('bad-ihl-beyond', 'malformed: IHL 15 in a 40-byte packet points beyond it', withIhl(bare, 15), 'bad_ihl'),
    m('bad-total-beyond', 'malformed: a total length bigger than the buffer', setIpField16(bare, 2, 100), 'truncated_ip'),
    m('bad-total-short', 'malformed: a total length shorter than the header', setIpField16(bare, 2, 16), 'bad_total_length'),
    m('bad-udp', 'not TCP: a UDP datagram to the service address and port',
      buildUdp4(CLIENT, S0, 40001, 80, textPayload(11)), 'not_tcp'),
    m('bad-fragment-mf', 'fragment: first fragment (MF set) is passed on', setIpField16(good, 6, 0x2000), 'fragment'),
    m('bad-fragment-offset', 'fragment: a later fragment (offset 185) is passed on', setIpField16(good, 6, 185), 'fragment'),
    m('bad-icmp-echo', 'not TCP: an ICMP echo request to the service address',
      buildIcmp4(OUTSIDER, S0, 8, 0, textPayload(16)), 'not_tcp'),
    m('bad-ipv6', 'not IPv4: version 6', buildIpv6(bare.slice(20)), 'not_ipv4'),
    m('bad-tcp-doff-small', 'malformed: TCP data offset 4', withTcpDataOffset(bare, 4), 'bad_tcp_offset'),
    m('bad-tcp-doff-beyond', 'malformed: TCP data offset 15 in a 20-byte segment', withTcpDataOffset(bare, 15), 'bad_tcp_offset'),
  ];
}

function toFixture(c: Case): PacketFixture {
  // Key order as a reader wants it: set-up, then input, then what must come out.
  return {
    description: c.description,
    engine: c.engine,
    csumNotReady: c.csumNotReady ?? false,
    ...(c.steps !== undefined ? { steps: c.steps } : {}),
    ...(c.nowMs !== undefined ? { nowMs: c.nowMs } : {}),
    ...(c.srcMac !== undefined ? { srcMac: c.srcMac } : {}),
    ...(c.wireLength !== undefined ? { wireLength: c.wireLength } : {}),
    input: toHex(c.input),
    expected: {
      action: c.action,
      malformed: c.malformed ?? null,
      note: c.note ?? null,
      mark: c.action === 'forward' ? FORWARD_MARK : c.action === 'restore' ? SERVE_MARK : 0,
      output: toHex(c.output ?? c.input),
    },
  };
}

export function allCases(): Case[] {
  return [
    ...forwardingCases(), ...loadPolicyCases(), ...serveCases(), ...peerMacCases(), ...icmpCases(), ...oversizeCases(),
    ...partialChecksumCases(), ...ipOptionCases(), ...malformedCases(),
  ];
}

function main(): void {
  const dir = fixtureDir();
  mkdirSync(dir, { recursive: true });
  // Regenerated as a whole: a case removed here must not linger as a file.
  for (const f of readdirSync(dir)) if (f.endsWith('.json')) rmSync(path.join(dir, f));
  const cases = allCases();
  const slugs = new Set(cases.map((c) => c.slug));
  if (slugs.size !== cases.length) throw new Error('duplicate fixture slug');
  cases.forEach((c, i) => {
    const name = `${String(i + 1).padStart(2, '0')}-${c.slug}.json`;
    writeFileSync(path.join(dir, name), `${JSON.stringify(toFixture(c), null, 2)}\n`);
  });
  console.log(`make-fixtures: wrote ${cases.length} fixtures to ${dir}`);
}

if (require.main === module) main();
