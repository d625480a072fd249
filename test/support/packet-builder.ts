// Builders for IPv4 and IPv6 + TCP test packets, written apart from the addon so that a
// fixture's expected bytes come from a second implementation: every checksum
// here is computed from scratch, byte by byte, in network order (the addon
// sums 32-bit words in memory order and updates incrementally).
import { parseIpv4 } from '../../lib/ipv4';

export const FIN = 0x01;
export const SYN = 0x02;
export const RST = 0x04;
export const PSH = 0x08;
export const ACK = 0x10;

export interface TcpSpec {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  flags: number;
  seq?: number;
  ack?: number;
  window?: number;
  /** Raw IPv4 options; padded with EOL to a multiple of 4 bytes. */
  ipOptions?: number[];
  /** Raw TCP options; padded with EOL to a multiple of 4 bytes. */
  tcpOptions?: number[];
  payload?: Uint8Array;
  ttl?: number;
  id?: number;
}

/** How the TCP checksum field is filled. */
export type ChecksumMode =
  | 'full'     // a finished checksum, as on the wire
  | 'partial'; // only the folded pseudo-header sum, not complemented (Linux CHECKSUM_PARTIAL)

const IP_HEADER = 20;
const TCP_HEADER = 20;

function pad4(bytes: number[]): number[] {
  const out = bytes.slice();
  while (out.length % 4 !== 0) out.push(0);
  return out;
}

function put16(buf: Uint8Array, at: number, v: number): void {
  buf[at] = (v >>> 8) & 0xff;
  buf[at + 1] = v & 0xff;
}

function put32(buf: Uint8Array, at: number, v: number): void {
  put16(buf, at, (v >>> 16) & 0xffff);
  put16(buf, at + 2, v & 0xffff);
}

export function get16(buf: Uint8Array, at: number): number {
  return (buf[at]! << 8) | buf[at + 1]!;
}

/** One's-complement sum of big-endian 16-bit words (odd tail padded with zero), folded to 16 bits. */
export function onesSum(bytes: Uint8Array, start = 0): number {
  let sum = start;
  for (let i = 0; i < bytes.length; i += 2) {
    sum += (bytes[i]! << 8) | (i + 1 < bytes.length ? bytes[i + 1]! : 0);
  }
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/** The pseudo-header sum of RFC 793: source, destination, protocol 6, TCP length. */
export function pseudoHeaderSum(ip: Uint8Array, tcpLength: number): number {
  const pseudo = new Uint8Array(12);
  pseudo.set(ip.subarray(12, 20), 0);
  pseudo[9] = 6;
  put16(pseudo, 10, tcpLength);
  return onesSum(pseudo);
}

/** Writes a fresh IPv4 header checksum (over IHL * 4 bytes). */
export function fillIpChecksum(packet: Uint8Array): void {
  const ihl = (packet[0]! & 0x0f) * 4;
  put16(packet, 10, 0);
  put16(packet, 10, ~onesSum(packet.subarray(0, ihl)) & 0xffff);
}

/** Writes the TCP checksum of a well-formed IPv4 + TCP packet, full or partial. */
export function fillTcpChecksum(packet: Uint8Array, mode: ChecksumMode): void {
  const ihl = (packet[0]! & 0x0f) * 4;
  const total = get16(packet, 2);
  const tcp = packet.subarray(ihl, total);
  put16(tcp, 16, 0);
  const pseudo = pseudoHeaderSum(packet, tcp.length);
  put16(tcp, 16, mode === 'partial' ? pseudo : ~onesSum(tcp, pseudo) & 0xffff);
}

/** The TCP header, its options and the payload at `t`, for either family (the checksum field is left to the caller). */
function writeTcp(p: Uint8Array, t: number, spec: Pick<TcpSpec, 'sport' | 'dport' | 'flags' | 'seq' | 'ack' | 'window'>, tcpOpts: number[], payload: Uint8Array): void {
  const doff = TCP_HEADER + tcpOpts.length;
  put16(p, t, spec.sport);
  put16(p, t + 2, spec.dport);
  put32(p, t + 4, spec.seq ?? 1000);
  put32(p, t + 8, spec.ack ?? 0);
  p[t + 12] = (doff / 4) << 4;
  p[t + 13] = spec.flags;
  put16(p, t + 14, spec.window ?? 64240);
  p.set(tcpOpts, t + TCP_HEADER);
  p.set(payload, t + doff);
}

/** An IPv4 + TCP packet with both checksums filled as `mode` says. */
export function buildTcp4(spec: TcpSpec, mode: ChecksumMode = 'full'): Uint8Array {
  const ipOpts = pad4(spec.ipOptions ?? []);
  const tcpOpts = pad4(spec.tcpOptions ?? []);
  const payload = spec.payload ?? new Uint8Array(0);
  const ihl = IP_HEADER + ipOpts.length;
  const doff = TCP_HEADER + tcpOpts.length;
  if (ihl > 60 || doff > 60) throw new Error('options too long for the header length fields');
  const total = ihl + doff + payload.length;
  const p = new Uint8Array(total);
  p[0] = 0x40 | (ihl / 4);
  put16(p, 2, total);
  put16(p, 4, spec.id ?? 0x1234);
  put16(p, 6, 0x4000); // DF, as Linux sends TCP
  p[8] = spec.ttl ?? 64;
  p[9] = 6;
  put32(p, 12, parseIpv4(spec.src));
  put32(p, 16, parseIpv4(spec.dst));
  p.set(ipOpts, IP_HEADER);
  writeTcp(p, ihl, spec, tcpOpts, payload);
  fillIpChecksum(p);
  fillTcpChecksum(p, mode);
  return p;
}

/** A UDP datagram (protocol 17) with a correct IPv4 header checksum; the UDP checksum is 0 (none). */
export function buildUdp4(src: string, dst: string, sport: number, dport: number, payload: Uint8Array): Uint8Array {
  const p = new Uint8Array(IP_HEADER + 8 + payload.length);
  p[0] = 0x45;
  put16(p, 2, p.length);
  put16(p, 6, 0x4000);
  p[8] = 64;
  p[9] = 17;
  put32(p, 12, parseIpv4(src));
  put32(p, 16, parseIpv4(dst));
  put16(p, 20, sport);
  put16(p, 22, dport);
  put16(p, 24, 8 + payload.length);
  p.set(payload, 28);
  fillIpChecksum(p);
  return p;
}

/**
 * An ICMP message whose body quotes `quoted` (as an error about a forwarded
 * flow would); `rest` is the second word of the ICMP header (next-hop MTU
 * for "fragmentation needed": rest = mtu).
 */
export function buildIcmp4(src: string, dst: string, type: number, code: number, quoted: Uint8Array, o: { ttl?: number; rest?: number } = {}): Uint8Array {
  const p = new Uint8Array(IP_HEADER + 8 + quoted.length);
  p[0] = 0x45;
  put16(p, 2, p.length);
  p[8] = o.ttl ?? 64;
  put32(p, 24, o.rest ?? 0);
  p[9] = 1;
  put32(p, 12, parseIpv4(src));
  put32(p, 16, parseIpv4(dst));
  p[20] = type;
  p[21] = code;
  p.set(quoted, 28);
  put16(p, 22, ~onesSum(p.subarray(IP_HEADER)) & 0xffff);
  fillIpChecksum(p);
  return p;
}

/**
 * An IPv6 address as its 16 bytes: written here from RFC 4291 section 2.2
 * (groups, one "::"), apart from lib/ipv6.ts, so the fixtures check it too.
 */
export function ipv6Bytes(text: string): Uint8Array {
  const halves = text.split('::');
  if (halves.length > 2) throw new Error(`bad IPv6 address ${text}`);
  const groups = (h: string): number[] => (h === '' ? [] : h.split(':').map((g) => {
    if (!/^[0-9a-f]{1,4}$/i.test(g)) throw new Error(`bad IPv6 address ${text}`);
    return parseInt(g, 16);
  }));
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  const fill = 8 - head.length - tail.length;
  if (fill < (halves.length === 2 ? 1 : 0) || (halves.length === 1 && fill !== 0)) throw new Error(`bad IPv6 address ${text}`);
  const all = [...head, ...new Array<number>(fill).fill(0), ...tail];
  const out = new Uint8Array(16);
  all.forEach((g, i) => put16(out, i * 2, g));
  return out;
}

/** An IPv6 extension header: its type (next-header value) and its body after the first two bytes. */
export interface Ipv6Ext {
  type: number;
  /** Bytes after next-header and length; padded with zeros to a multiple of 8 with those two. */
  body?: number[];
}

export interface Tcp6Spec extends Omit<TcpSpec, 'ipOptions' | 'ttl' | 'id'> {
  hopLimit?: number;
  ext?: Ipv6Ext[];
}

/** The IPv6 pseudo-header sum of RFC 8200 section 8.1: both addresses, the upper-layer length, next header. */
export function pseudoHeaderSum6(packet: Uint8Array, upperLength: number, next: number): number {
  const pseudo = new Uint8Array(40);
  pseudo.set(packet.subarray(8, 40), 0);
  put32(pseudo, 32, upperLength);
  pseudo[39] = next;
  return onesSum(pseudo);
}

/** The IPv6 header and extension headers; returns the packet and where the upper-layer header starts. */
function ipv6Frame(src: string, dst: string, hopLimit: number, ext: Ipv6Ext[], upper: number, upperLength: number): { p: Uint8Array; at: number } {
  const exts = ext.map((e) => {
    const raw = [0, 0, ...(e.body ?? [])];
    while (raw.length % 8 !== 0) raw.push(0);
    raw[1] = raw.length / 8 - 1;
    return { type: e.type, raw };
  });
  const extBytes = exts.reduce((n, e) => n + e.raw.length, 0);
  const p = new Uint8Array(40 + extBytes + upperLength);
  p[0] = 0x60;
  put16(p, 4, extBytes + upperLength);
  p[6] = exts.length > 0 ? exts[0]!.type : upper;
  p[7] = hopLimit;
  p.set(ipv6Bytes(src), 8);
  p.set(ipv6Bytes(dst), 24);
  let at = 40;
  exts.forEach((e, i) => {
    e.raw[0] = i + 1 < exts.length ? exts[i + 1]!.type : upper;
    p.set(e.raw, at);
    at += e.raw.length;
  });
  return { p, at };
}

/** An IPv6 + TCP packet (after any extension headers), its checksum filled as `mode` says. */
export function buildTcp6(spec: Tcp6Spec, mode: ChecksumMode = 'full'): Uint8Array {
  const tcpOpts = pad4(spec.tcpOptions ?? []);
  const payload = spec.payload ?? new Uint8Array(0);
  const doff = TCP_HEADER + tcpOpts.length;
  const { p, at: t } = ipv6Frame(spec.src, spec.dst, spec.hopLimit ?? 64, spec.ext ?? [], 6, doff + payload.length);
  writeTcp(p, t, spec, tcpOpts, payload);
  const pseudo = pseudoHeaderSum6(p, p.length - t, 6);
  put16(p, t + 16, mode === 'partial' ? pseudo : ~onesSum(p.subarray(t), pseudo) & 0xffff);
  return p;
}

/** Re-fills the TCP checksum of an IPv6 packet with no extension headers (malformed-packet cases). */
export function fillTcp6Checksum(p: Uint8Array): void {
  const t = 40;
  if (p.length < t + 18) return;
  put16(p, t + 16, 0);
  put16(p, t + 16, ~onesSum(p.subarray(t), pseudoHeaderSum6(p, p.length - t, 6)) & 0xffff);
}

/** A UDP datagram over IPv6 with its (mandatory) checksum. */
export function buildUdp6(src: string, dst: string, sport: number, dport: number, payload: Uint8Array): Uint8Array {
  const { p, at } = ipv6Frame(src, dst, 64, [], 17, 8 + payload.length);
  put16(p, at, sport);
  put16(p, at + 2, dport);
  put16(p, at + 4, 8 + payload.length);
  p.set(payload, at + 8);
  put16(p, at + 6, ~onesSum(p.subarray(at), pseudoHeaderSum6(p, p.length - at, 17)) & 0xffff);
  return p;
}

/**
 * An ICMPv6 message quoting `quoted` (RFC 4443); `rest` is the second word
 * (the MTU of "packet too big"). Its checksum covers the IPv6 pseudo-header.
 */
export function buildIcmp6(src: string, dst: string, type: number, code: number, quoted: Uint8Array, o: { hopLimit?: number; rest?: number } = {}): Uint8Array {
  const { p, at } = ipv6Frame(src, dst, o.hopLimit ?? 64, [], 58, 8 + quoted.length);
  p[at] = type;
  p[at + 1] = code;
  put32(p, at + 4, o.rest ?? 0);
  p.set(quoted, at + 8);
  put16(p, at + 2, ~onesSum(p.subarray(at), pseudoHeaderSum6(p, p.length - at, 58)) & 0xffff);
  return p;
}

/** A minimal IPv6 header (version 6) carrying `tcpSegment`, for the not-IPv4 case. */
export function buildIpv6(tcpSegment: Uint8Array): Uint8Array {
  const p = new Uint8Array(40 + tcpSegment.length);
  p[0] = 0x60;
  put16(p, 4, tcpSegment.length);
  p[6] = 6;
  p[7] = 64;
  p[8] = 0x20; // 2001:db8::/32, the documentation prefix
  p[9] = 0x01;
  p[10] = 0x0d;
  p[11] = 0xb8;
  p[23] = 1;
  p.set(p.subarray(8, 24), 24);
  p[39] = 2;
  p.set(tcpSegment, 40);
  fillTcp6Checksum(p);
  return p;
}

/** Sets a 16-bit field of the IPv4 header and re-fills its checksum (malformed-packet cases). */
export function setIpField16(packet: Uint8Array, at: number, value: number): Uint8Array {
  const p = packet.slice();
  put16(p, at, value);
  fillIpChecksum(p);
  return p;
}

/** Replaces the IHL nibble and re-fills the header checksum over what the header now claims, when it fits. */
export function withIhl(packet: Uint8Array, ihlWords: number): Uint8Array {
  const p = packet.slice();
  p[0] = (p[0]! & 0xf0) | (ihlWords & 0x0f);
  if (ihlWords >= 5 && ihlWords * 4 <= p.length) fillIpChecksum(p);
  return p;
}

/** Replaces the TCP data offset nibble and re-fills the TCP checksum. */
export function withTcpDataOffset(packet: Uint8Array, words: number): Uint8Array {
  const p = packet.slice();
  const ihl = (p[0]! & 0x0f) * 4;
  p[ihl + 12] = (words & 0x0f) << 4;
  fillTcpChecksum(p, 'full');
  return p;
}

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

export function fromHex(hex: string): Uint8Array {
  if (!/^([0-9a-f]{2})*$/.test(hex)) throw new Error('not lowercase hex bytes');
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

/** Typical SYN options: MSS 1460, SACK permitted, timestamps, window scale 7. */
export const SYN_OPTIONS = [2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0x12, 0x34, 0, 0, 0, 0, 1, 3, 3, 7];

/** `n` payload bytes of readable text (an HTTP request prefix repeated). */
export function textPayload(n: number): Uint8Array {
  const src = Buffer.from('GET /index.html HTTP/1.1\r\nHost: dpr.test\r\n\r\n');
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 1) out[i] = src[i % src.length]!;
  return out;
}
