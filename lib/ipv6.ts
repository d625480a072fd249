// IPv6 addresses: parsed from any RFC 4291 text form, printed in the one
// canonical form of RFC 5952 (so that two spellings of one address compare
// equal and match what the kernel and Node print), and handed to the addon as
// four big-endian 32-bit words (2001:2::a is [0x20010002, 0, 0, 0xa]).
import { parseIpv4 } from './ipv4';

/** The smallest MTU a device carries IPv6 with (RFC 8200): below it the kernel keeps IPv6 off the device. */
export const IPV6_MIN_MTU = 1280;

/** An address as a 128-bit number: easy to mask, compare and add to. */
export type Ipv6 = bigint;

const MAX = (1n << 128n) - 1n;

function fail(text: string): never {
  throw new Error(`not an IPv6 address: '${text}'`);
}

/** Groups of one side of '::': hex groups of 1-4 digits, the last may be dotted IPv4. */
function groupsOf(part: string, text: string, last: boolean): number[] {
  if (part === '') return [];
  const out: number[] = [];
  const fields = part.split(':');
  fields.forEach((f, i) => {
    if (last && i === fields.length - 1 && f.includes('.')) {
      let v4: number;
      try {
        v4 = parseIpv4(f);
      } catch {
        fail(text);
      }
      out.push(v4 >>> 16, v4 & 0xffff);
    } else if (/^[0-9a-f]{1,4}$/i.test(f)) {
      out.push(Number.parseInt(f, 16));
    } else {
      fail(text);
    }
  });
  return out;
}

/** Parses an IPv6 address (no brackets, no zone index, no prefix). */
export function parseIpv6(text: string): Ipv6 {
  if (typeof text !== 'string' || text.length > 45) fail(String(text));
  const halves = text.split('::');
  if (halves.length > 2) fail(text);
  let groups: number[];
  if (halves.length === 2) {
    const head = groupsOf(halves[0]!, text, false);
    const tail = groupsOf(halves[1]!, text, true);
    // '::' stands for at least one zero group.
    if (head.length + tail.length > 7) fail(text);
    groups = [...head, ...Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  } else {
    groups = groupsOf(text, text, true);
    if (groups.length !== 8) fail(text);
  }
  return groups.reduce((v, g) => (v << 16n) | BigInt(g), 0n);
}

/** RFC 5952: lower case, no leading zeros, the longest run of two or more zero groups (the first of equals) as '::'. */
export function formatIpv6(value: Ipv6): string {
  const groups = Array.from({ length: 8 }, (_, i) => Number((value >> BigInt(112 - 16 * i)) & 0xffffn));
  // RFC 5952 section 5: an IPv4-mapped address ends in dotted IPv4.
  if (value >> 32n === 0xffffn) return `::ffff:${groups[6]! >>> 8}.${groups[6]! & 255}.${groups[7]! >>> 8}.${groups[7]! & 255}`;
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/** The canonical text of an address given in any form. */
export const canonicalIpv6 = (text: string): string => formatIpv6(parseIpv6(text));

/** The four big-endian 32-bit words the addon takes. */
export function ipv6Words(value: Ipv6): [number, number, number, number] {
  return [96n, 64n, 32n, 0n].map((s) => Number((value >> s) & 0xffffffffn)) as [number, number, number, number];
}

/** The 16 bytes of the address, network order. */
export function ipv6Bytes(value: Ipv6): Uint8Array {
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) out[i] = Number((value >> BigInt(120 - 8 * i)) & 0xffn);
  return out;
}

/** The address four words spell (ipv6Words' inverse). */
export function fromIpv6Words(words: ArrayLike<number>, at = 0): Ipv6 {
  let v = 0n;
  for (let i = 0; i < 4; i++) v = (v << 32n) | BigInt(words[at + i]! >>> 0);
  return v;
}

export interface Cidr6 {
  network: Ipv6;
  prefix: number;
}

const maskOf = (prefix: number): Ipv6 => (prefix === 0 ? 0n : (MAX << BigInt(128 - prefix)) & MAX);

/** Parses 'addr/n' into its network (host bits cleared) and prefix length. */
export function parseCidr6(text: string): Cidr6 {
  const [addr, len, extra] = String(text).split('/');
  const prefix = Number(len);
  if (extra !== undefined || !/^\d{1,3}$/.test(len ?? '') || prefix > 128) throw new Error(`not an IPv6 CIDR: '${text}'`);
  let network: Ipv6;
  try {
    network = parseIpv6(addr!);
  } catch {
    throw new Error(`not an IPv6 CIDR: '${text}'`);
  }
  return { network: network & maskOf(prefix), prefix };
}

export function cidr6Contains(cidr: Cidr6, addr: Ipv6): boolean {
  return (addr & maskOf(cidr.prefix)) === cidr.network;
}

/**
 * Why an address cannot be a host's service or cluster address, or null:
 * those must be global unicast addresses a peer or client can reach.
 */
export function unusableIpv6(value: Ipv6): string | null {
  if (value === 0n) return 'is the unspecified address';
  if (value === 1n) return 'is the loopback address';
  if (value >> 120n === 0xffn) return 'is a multicast address';
  if (value >> 118n === 0x3fan) return 'is link-local (fe80::/10: it needs a zone, and peers on other links cannot reach it)';
  if (value >> 32n === 0xffffn) return 'is IPv4-mapped (give the IPv4 address as service or cluster instead)';
  return null;
}
