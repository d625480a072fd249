// IPv4 addresses as unsigned 32-bit numbers, the form the addon takes.

export function parseIpv4(text: string): number {
  const parts = text.split('.');
  if (parts.length !== 4) throw new Error(`not an IPv4 address: '${text}'`);
  let value = 0;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part) || Number(part) > 255) throw new Error(`not an IPv4 address: '${text}'`);
    value = value * 256 + Number(part);
  }
  return value;
}

export function formatIpv4(value: number): string {
  return [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join('.');
}

/** Parses 'a.b.c.d/n' into its network address and prefix length. */
export function parseCidr(text: string): { network: number; prefix: number } {
  const [addr, len, extra] = text.split('/');
  const prefix = Number(len);
  if (extra !== undefined || !/^\d{1,2}$/.test(len ?? '') || prefix > 32) {
    throw new Error(`not an IPv4 CIDR: '${text}'`);
  }
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return { network: (parseIpv4(addr!) & mask) >>> 0, prefix };
}

export function cidrContains(cidr: { network: number; prefix: number }, addr: number): boolean {
  const mask = cidr.prefix === 0 ? 0 : (0xffffffff << (32 - cidr.prefix)) >>> 0;
  return ((addr & mask) >>> 0) === cidr.network;
}
