// The flow table's hash before issue 11: no key, so anyone can compute which
// 4-tuples share a home slot, offline. Kept here (not in the addon) so that a
// test and the attack bench can build the flood that hash invited, and show
// that the keyed table no longer piles such flows into one probe run.
import { parseIpv4 } from '../../lib/ipv4';

const M64 = (1n << 64n) - 1n;

/** splitmix64's finalizer, as native/flow_table.h had it (Mix64). */
export function mix64(x: bigint): bigint {
  x ^= x >> 30n;
  x = (x * 0xbf58476d1ce4e5b9n) & M64;
  x ^= x >> 27n;
  x = (x * 0x94d049bb133111ebn) & M64;
  x ^= x >> 31n;
  return x;
}

/** An IPv4 address as native code held it: network byte order in a little-endian word. */
function networkWord(address: string): bigint {
  const n = parseIpv4(address);
  return BigInt((((n & 0xff) << 24) | ((n >>> 8 & 0xff) << 16) | ((n >>> 16 & 0xff) << 8) | (n >>> 24)) >>> 0);
}

/** The old home slot: Mix64(a ^ Mix64(b)) & mask, a = client address << 32 | service address, b = ports. */
export function oldHome(client: string, service: string, clientPort: number, servicePort: number, capacity: number): number {
  const a = (networkWord(client) << 32n) | networkWord(service);
  const b = BigInt(clientPort * 65536 + servicePort);
  return Number(mix64(a ^ mix64(b)) & BigInt(capacity - 1));
}

export interface ClientPort {
  client: string;
  port: number;
}

/**
 * `count` (client address, port) pairs whose old home slot lies in
 * [first, first + window), for a table of `capacity` slots: the flows an
 * attacker would send. Client addresses are 198.19.<i>.<j>, ports 1024 up.
 */
export function collidingClients(o: { service: string; servicePort: number; capacity: number; count: number; first?: number; window?: number }): ClientPort[] {
  const first = o.first ?? 0;
  const window = o.window ?? 1;
  const out: ClientPort[] = [];
  const mask = BigInt(o.capacity - 1);
  const service = networkWord(o.service);
  const portMix = new Array<bigint>(65536);
  for (let i = 0; out.length < o.count; i++) {
    if (i >= 65536) throw new Error('collidingClients: ran out of client addresses');
    const client = `198.19.${i >> 8}.${i & 255}`;
    const a = (networkWord(client) << 32n) | service;
    for (let port = 1024; port < 65536 && out.length < o.count; port++) {
      const m = (portMix[port] ??= mix64(BigInt(port * 65536 + o.servicePort)));
      const home = Number(mix64(a ^ m) & mask);
      if (((home - first) & (o.capacity - 1)) < window) out.push({ client, port });
    }
  }
  return out;
}
