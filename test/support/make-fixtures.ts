// Writes test/fixtures/packets/*.json. Expected bytes are built here, directly
// with the new destination and full checksums, never by asking the addon: the
// fixtures are a second implementation the addon is held to.
//
// Run: npm run build:ts && node dist/test/support/make-fixtures.js
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Action, Malformed, Note } from '../../lib/native';
import {
  ACK, FIN, PSH, RST, SYN, SYN_OPTIONS, buildIcmp4, buildIcmp6, buildIpv6, buildTcp4, buildTcp6, buildUdp4, buildUdp6, fillTcp6Checksum,
  setIpField16, textPayload, toHex, withIhl, withTcpDataOffset, type ChecksumMode, type Tcp6Spec, type TcpSpec,
} from './packet-builder';
import {
  CLIENT, CLIENT6, CLUSTER, CLUSTER6, FORWARD_MARK, OTHER_MAC, OUTSIDER, PEER_MACS, SERVE_MARK, SERVICE, SERVICE6, addr, peerPort,
  type EngineName,
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
    { slug: 'entry-forward-syn-new-isn', description: 'entry: a SYN of another sequence number on a flow that has seen only its SYN (a client port reused: the kernel modes and local flows show the entry host nothing after the SYN) follows the flow, counted as syn_on_flow',
      engine: 'entry-hash-to-peer', steps: [step(syn)], input: buildTcp4({ ...syn, seq: 7_000_000 }), action: 'forward', note: 'syn_on_flow',
      output: forwarded({ ...syn, seq: 7_000_000 }) },
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
    { ...m('bad-ipv6', 'not IPv4: version 6 on a host without IPv6', buildIpv6(bare.slice(20)), 'not_ipv4'), engine: 'entry-ipv4-only' },
    m('bad-tcp-doff-small', 'malformed: TCP data offset 4', withTcpDataOffset(bare, 4), 'bad_tcp_offset'),
    m('bad-tcp-doff-beyond', 'malformed: TCP data offset 15 in a 20-byte segment', withTcpDataOffset(bare, 15), 'bad_tcp_offset'),
  ];
}

// IPv6: the same cluster's IPv6 addresses (test/support/cluster.ts).
const S6_0 = addr(SERVICE6, 0);
const S6_1 = addr(SERVICE6, 1);
const S6_2 = addr(SERVICE6, 2);
const C6_1 = addr(CLUSTER6, 1);
const HOP_BY_HOP = 0, ROUTING = 43, FRAGMENT = 44, DEST_OPTIONS = 60, ESP = 50;

function toEntry6(over: Partial<Tcp6Spec> = {}): Tcp6Spec {
  return { src: CLIENT6, dst: S6_0, sport: 40001, dport: 80, flags: SYN, seq: 1000, tcpOptions: SYN_OPTIONS, ...over };
}
function toServe6(origin: number, k: number, over: Partial<Tcp6Spec> = {}): Tcp6Spec {
  return toEntry6({ dst: C6_1, dport: peerPort(origin, k), ...over });
}
const forwarded6 = (spec: Tcp6Spec, k = 0): Uint8Array => buildTcp6({ ...spec, dst: C6_1, dport: peerPort(0, k) }, 'full');
const restored6 = (spec: Tcp6Spec, service: string, port: number): Uint8Array => buildTcp6({ ...spec, dst: service, dport: port }, 'full');
const step6 = (spec: Tcp6Spec, mode: ChecksumMode = 'full'): FixtureStep =>
  ({ input: toHex(buildTcp6(spec, mode)), csumNotReady: mode === 'partial' });

const syn6 = toEntry6();
const ack6 = toEntry6({ flags: ACK, seq: 1001, ack: 5001, tcpOptions: [] });
const data6 = toEntry6({ flags: ACK | PSH, seq: 1001, ack: 5001, tcpOptions: [], payload: textPayload(45) });
const fin6 = toEntry6({ flags: FIN | ACK, seq: 1046, ack: 5001, tcpOptions: [] });
const rst6 = toEntry6({ flags: RST | ACK, seq: 1046, ack: 5001, tcpOptions: [] });
const established6 = [step6(syn6), step6(ack6), step6(data6)];
// Hop-by-hop options (a router alert and padding) and destination options (PadN): skipped, kept.
const withExt = (spec: Tcp6Spec): Tcp6Spec => ({ ...spec, ext: [{ type: HOP_BY_HOP, body: [5, 2, 0, 0, 1, 0] }, { type: DEST_OPTIONS, body: [1, 4, 0, 0, 0, 0] }] });

function ipv6Cases(): Case[] {
  return [
    { slug: 'v6-entry-local-syn', description: 'IPv6, entry: a SYN the hash keeps local is accepted unchanged',
      engine: 'entry-hash-local', input: buildTcp6(syn6), action: 'accept' },
    { slug: 'v6-entry-forward-syn', description: "IPv6, entry: a SYN hashed to a peer is rewritten to the peer's IPv6 cluster address and peer port",
      engine: 'entry-hash-to-peer', input: buildTcp6(syn6), action: 'forward', output: forwarded6(syn6) },
    { slug: 'v6-entry-forward-syn-443', description: 'IPv6, entry: a SYN to the second service port goes to peer port P(A,1)',
      engine: 'entry-hash-to-peer', input: buildTcp6({ ...syn6, dport: 443 }), action: 'forward', output: forwarded6({ ...syn6, dport: 443 }, 1) },
    { slug: 'v6-entry-forward-data', description: 'IPv6, entry: data after the SYN follows the flow to the peer (odd payload length)',
      engine: 'entry-hash-to-peer', steps: [step6(syn6)], input: buildTcp6(data6), action: 'forward', output: forwarded6(data6) },
    { slug: 'v6-entry-forward-fin', description: 'IPv6, entry: a FIN of a forwarded flow is forwarded',
      engine: 'entry-hash-to-peer', steps: established6, input: buildTcp6(fin6), action: 'forward', output: forwarded6(fin6) },
    { slug: 'v6-entry-forward-rst', description: "IPv6, entry: a RST at the client's next sequence number is forwarded (the flow waits in reset)",
      engine: 'entry-hash-to-peer', steps: established6, input: buildTcp6(rst6), action: 'forward', note: 'rst_in_window', output: forwarded6(rst6) },
    { slug: 'v6-entry-no-flow-hashed', description: 'IPv6, entry: a mid-flow packet with no entry is routed by the hash table',
      engine: 'entry-hash-to-peer', input: buildTcp6(ack6), action: 'forward', note: 'no_flow_hashed', output: forwarded6(ack6) },
    { slug: 'v6-entry-local-flow-data', description: 'IPv6, entry: data of a flow kept local is accepted unchanged',
      engine: 'entry-hash-local', steps: [step6(syn6)], input: buildTcp6(data6), action: 'accept' },
    { slug: 'v6-entry-ext-headers', description: 'IPv6, entry: hop-by-hop and destination options are skipped and kept; the segment is forwarded',
      engine: 'entry-hash-to-peer', input: buildTcp6(withExt(syn6)), action: 'forward', output: forwarded6(withExt(syn6)) },
    { slug: 'v6-entry-routing-done', description: 'IPv6, entry: a routing header with no segments left is skipped; the segment is forwarded',
      engine: 'entry-hash-to-peer', input: buildTcp6({ ...syn6, ext: [{ type: ROUTING, body: [4, 0] }] }), action: 'forward',
      output: forwarded6({ ...syn6, ext: [{ type: ROUTING, body: [4, 0] }] }) },
    { slug: 'v6-entry-routing-segments-left', description: 'IPv6: a routing header with segments left is not this hop\'s to rewrite: passed on',
      engine: 'entry-hash-to-peer', input: buildTcp6({ ...syn6, ext: [{ type: ROUTING, body: [4, 1] }] }), action: 'accept', malformed: 'bad_ipv6_ext' },
    { slug: 'v6-entry-hop-by-hop-late', description: 'IPv6: hop-by-hop options after another extension header (RFC 8200 4.1 forbids it) are passed on',
      engine: 'entry-hash-to-peer', input: buildTcp6({ ...syn6, ext: [{ type: DEST_OPTIONS }, { type: HOP_BY_HOP }] }), action: 'accept', malformed: 'bad_ipv6_ext' },
    { slug: 'v6-entry-fragment', description: 'IPv6: a fragment header (ports may be absent) is passed on',
      engine: 'entry-hash-to-peer', input: buildTcp6({ ...syn6, ext: [{ type: FRAGMENT, body: [0, 1, 0, 0, 0, 7] }] }), action: 'accept', malformed: 'fragment' },
    { slug: 'v6-entry-esp', description: 'IPv6: ESP (not TCP as far as the data path can see) is passed on',
      engine: 'entry-hash-to-peer', input: buildTcp6({ ...syn6, ext: [{ type: ESP, body: [0, 0, 0, 0, 0, 0] }] }), action: 'accept', malformed: 'not_tcp' },
    { slug: 'v6-entry-not-service-addr', description: "IPv6, entry: a segment to another host's IPv6 service address is not touched",
      engine: 'entry-hash-to-peer', input: buildTcp6({ ...syn6, dst: S6_1 }), action: 'accept', note: 'not_service' },
    { slug: 'v6-entry-partial-forward', description: 'IPv6, partial checksum: a forwarded SYN leaves with a full TCP checksum',
      engine: 'entry-hash-to-peer', csumNotReady: true, input: buildTcp6(syn6, 'partial'), action: 'forward', output: forwarded6(syn6) },
    { slug: 'v6-entry-partial-data', description: 'IPv6, partial checksum: forwarded data after extension headers leaves with a full one',
      engine: 'entry-hash-to-peer', csumNotReady: true, steps: [step6(syn6, 'partial')],
      input: buildTcp6(withExt(data6), 'partial'), action: 'forward', output: forwarded6(withExt(data6)) },
    { slug: 'v6-entry-partial-local', description: 'IPv6, partial checksum: a local SYN keeps its partial sum for the kernel to finish',
      engine: 'entry-hash-local', csumNotReady: true, input: buildTcp6(syn6, 'partial'), action: 'accept' },
    { slug: 'v6-load-syn-forwarded', description: 'IPv6, load: a busy host sends a new SYN to the idle peer',
      engine: 'entry-load-busy', input: buildTcp6(syn6), action: 'forward', output: forwarded6(syn6) },
    { slug: 'v6-load-syn-local', description: 'IPv6, load: a host no busier than its peer keeps a new SYN',
      engine: 'entry-load-idle', input: buildTcp6(syn6), action: 'accept' },
    { slug: 'v6-entry-draining-syn', description: 'IPv6, entry: while draining a new SYN stays local',
      engine: 'entry-draining', input: buildTcp6(syn6), action: 'accept', note: 'draining' },
    { slug: 'v6-oversize-forwarded-flow', description: 'IPv6, oversize: a packet of a forwarded flow larger than the copy is dropped (TCP resends)',
      engine: 'entry-hash-to-peer', steps: established6, wireLength: 65535,
      input: buildTcp6({ ...data6, seq: 1046, payload: textPayload(65535 - 60) }).slice(0, 200), action: 'drop', note: 'oversize' },
    { slug: 'v6-oversize-local-flow', description: 'IPv6, oversize: a packet of a flow served here goes on unchanged',
      engine: 'entry-hash-local', steps: [step6(syn6)], wireLength: 65535,
      input: buildTcp6({ ...data6, payload: textPayload(65535 - 60) }).slice(0, 200), action: 'accept', note: 'oversize' },
    ...ipv6ServeCases(), ...ipv6IcmpCases(), ...ipv6MalformedCases(),
  ];
}

function ipv6ServeCases(): Case[] {
  const sSyn = toServe6(0, 0);
  const sData = toServe6(0, 0, { flags: ACK | PSH, seq: 1001, ack: 5001, tcpOptions: [], payload: textPayload(45) });
  const s443From2 = toServe6(2, 1);
  return [
    { slug: 'v6-serve-restore-syn', description: "IPv6, serve: a forwarded SYN is restored to host 0's IPv6 service address, port 80, and marked",
      engine: 'serve', input: buildTcp6(sSyn), action: 'restore', output: restored6(sSyn, S6_0, 80) },
    { slug: 'v6-serve-restore-data', description: 'IPv6, serve: forwarded data is restored (odd payload length)',
      engine: 'serve', input: buildTcp6(sData), action: 'restore', output: restored6(sData, S6_0, 80) },
    { slug: 'v6-serve-restore-partial', description: 'IPv6, serve, partial checksum: a restored segment leaves with a full TCP checksum',
      engine: 'serve', csumNotReady: true, input: buildTcp6(sData, 'partial'), action: 'restore', output: restored6(sData, S6_0, 80) },
    { slug: 'v6-serve-restore-origin2-443', description: "IPv6, serve: peer port P(2,1) restores host 2's IPv6 address and port 443",
      engine: 'serve', input: buildTcp6(s443From2), action: 'restore', output: restored6(s443From2, S6_2, 443) },
    { slug: 'v6-serve-bad-origin-hole', description: 'IPv6, serve: a peer port naming a host id with no address is refused',
      engine: 'serve', input: buildTcp6(toServe6(3, 0)), action: 'accept', note: 'bad_origin' },
    { slug: 'v6-serve-not-cluster-addr', description: 'IPv6, serve: a peer port on an address other than our IPv6 cluster address is not touched',
      engine: 'serve', input: buildTcp6(toServe6(0, 0, { dst: S6_1 })), action: 'accept', note: 'not_peer_port' },
  ];
}

// "Packet too big" from a router on the client's path, about a segment the
// serving host sent as host 0: S6_0:80 -> client:40001 (its first 60 bytes).
const answer6 = buildTcp6({ src: S6_0, dst: CLIENT6, sport: 80, dport: 40001, flags: ACK | PSH, seq: 5001, ack: 1046, payload: textPayload(1400) }).slice(0, 60);
const ROUTER6 = '2001:2:0:200::1';
const tooBig = (dst: string, hopLimit?: number): Uint8Array => buildIcmp6(ROUTER6, dst, 2, 0, answer6, { rest: 1280, hopLimit });

function ipv6IcmpCases(): Case[] {
  return [
    { slug: 'v6-icmp-too-big-forwarded', description: "ICMPv6: packet too big about a forwarded flow's answer goes on to its serving host (checksum follows the new destination)",
      engine: 'entry-hash-to-peer', steps: established6, input: tooBig(S6_0), action: 'forward', note: 'icmp_forwarded', output: tooBig(C6_1) },
    { slug: 'v6-icmp-unreachable-forwarded', description: 'ICMPv6: destination unreachable about a forwarded flow goes on too',
      engine: 'entry-hash-to-peer', steps: established6, input: buildIcmp6(ROUTER6, S6_0, 1, 3, answer6), action: 'forward', note: 'icmp_forwarded',
      output: buildIcmp6(ROUTER6, C6_1, 1, 3, answer6) },
    { slug: 'v6-icmp-too-big-local', description: 'ICMPv6: packet too big about a flow served here is for the local stack',
      engine: 'entry-hash-local', steps: [step6(syn6)], input: tooBig(S6_0), action: 'accept', note: 'icmp_local' },
    { slug: 'v6-icmp-too-big-no-flow', description: 'ICMPv6: packet too big about no known flow is left to the local stack',
      engine: 'entry-hash-to-peer', input: tooBig(S6_0), action: 'accept', note: 'icmp_no_flow' },
    { slug: 'v6-icmp-restore-from-peer', description: "ICMPv6, serving host: an error host 0 forwarded (hop limit 255) gets host 0's service address back",
      engine: 'serve', input: tooBig(C6_1, 255), action: 'restore', note: 'icmp_restored', output: tooBig(S6_0, 255) },
    { slug: 'v6-icmp-from-peer-low-hops', description: "ICMPv6, serving host: such an error without a peer's hop limit is left alone",
      engine: 'serve', input: tooBig(C6_1, 64), action: 'accept', note: 'icmp_not_ours' },
    { slug: 'v6-icmp-echo', description: 'ICMPv6: an echo request is no error about a segment: passed on',
      engine: 'entry-hash-to-peer', input: buildIcmp6(ROUTER6, S6_0, 128, 0, textPayload(16)), action: 'accept', malformed: 'not_tcp' },
  ];
}

function ipv6MalformedCases(): Case[] {
  const bare = buildTcp6({ ...syn6, tcpOptions: [] }); // 60 bytes: 40 IPv6 + 20 TCP
  const withPayloadLength = (p: Uint8Array, n: number): Uint8Array => {
    const q = p.slice();
    q[4] = n >>> 8;
    q[5] = n & 0xff;
    return q;
  };
  const m = (slug: string, description: string, input: Uint8Array, malformed: Malformed): Case =>
    ({ slug, description, engine: 'entry-hash-to-peer', input, action: 'accept', malformed });
  const doff = (words: number): Uint8Array => {
    const q = bare.slice();
    q[52] = words << 4;
    fillTcp6Checksum(q);
    return q;
  };
  return [
    m('v6-bad-truncated', 'IPv6 malformed: 39 bytes, shorter than an IPv6 header', bare.slice(0, 39), 'truncated_ipv6'),
    m('v6-bad-payload-beyond', 'IPv6 malformed: a payload length beyond the buffer', withPayloadLength(bare, 100), 'truncated_ipv6'),
    m('v6-bad-jumbo', 'IPv6 malformed: payload length 0 (a jumbogram) is not rewritten', withPayloadLength(bare, 0), 'truncated_ipv6'),
    m('v6-bad-truncated-tcp', 'IPv6 malformed: a payload length leaving 12 bytes of TCP header', withPayloadLength(bare.slice(0, 52), 12), 'truncated_tcp'),
    m('v6-bad-ext-beyond', 'IPv6 malformed: an extension header running past the packet',
      withPayloadLength(buildTcp6({ ...syn6, tcpOptions: [], ext: [{ type: HOP_BY_HOP, body: new Array<number>(14).fill(0) }] }).slice(0, 48), 8), 'bad_ipv6_ext'),
    m('v6-bad-ext-chain', 'IPv6 malformed: more extension headers than a segment carries (9 destination options)',
      buildTcp6({ ...syn6, ext: new Array(9).fill({ type: DEST_OPTIONS }) }), 'bad_ipv6_ext'),
    m('v6-bad-tcp-doff-small', 'IPv6 malformed: TCP data offset 4', doff(4), 'bad_tcp_offset'),
    m('v6-bad-tcp-doff-beyond', 'IPv6 malformed: TCP data offset 15 in a 20-byte segment', doff(15), 'bad_tcp_offset'),
    m('v6-bad-udp', 'IPv6, not TCP: a UDP datagram to the service address and port', buildUdp6(CLIENT6, S6_0, 40001, 80, textPayload(11)), 'not_tcp'),
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
    ...partialChecksumCases(), ...ipOptionCases(), ...malformedCases(), ...ipv6Cases(),
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
