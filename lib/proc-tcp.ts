// The kernel's socket tables as text (/proc/net/tcp and /proc/net/tcp6 of the
// daemon's own network namespace): the fallback where sock_diag is missing,
// and slower (every socket, TIME_WAIT included, is printed and parsed).
import fs from 'node:fs';
import net from 'node:net';
import { formatIpv4 } from './ipv4';

export const TCP_ESTABLISHED = 0x01;
export const TCP_LISTEN = 0x0a;

export interface TcpSocket {
  family: 4 | 6;
  /** Dotted for IPv4 and for v4-mapped IPv6 (a dual-stack socket's IPv4 peer), else IPv6 text. */
  localAddress: string;
  localPort: number;
  state: number;
}

/** The file writes each 32-bit word of the address in host byte order (little-endian here). */
function decodeAddress(hex: string): { family: 4 | 6; text: string } {
  const bytes = Buffer.alloc(hex.length / 2);
  for (let w = 0; w < hex.length / 8; w++) bytes.writeUInt32LE(Number.parseInt(hex.slice(w * 8, w * 8 + 8), 16), w * 4);
  if (bytes.length === 4) return { family: 4, text: formatIpv4(bytes.readUInt32BE(0)) };
  const mapped = bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  if (mapped) return { family: 6, text: formatIpv4(bytes.readUInt32BE(12)) };
  const groups = Array.from({ length: 8 }, (_, i) => bytes.readUInt16BE(i * 2).toString(16));
  // net.SocketAddress normalises to the compressed form.
  return { family: 6, text: new net.SocketAddress({ address: groups.join(':'), family: 'ipv6' }).address };
}

function readFile(file: string): TcpSocket[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    // No IPv6 in this kernel or namespace: nothing to list.
    if (file.endsWith('6') && (err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: TcpSocket[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4) continue;
    const [addr, port] = f[1]!.split(':');
    const a = decodeAddress(addr!);
    out.push({ family: a.family, localAddress: a.text, localPort: Number.parseInt(port!, 16), state: Number.parseInt(f[3]!, 16) });
  }
  return out;
}

/** Every TCP socket of the namespace, IPv4 then IPv6. */
export function readTcpSockets(dir = '/proc/net'): TcpSocket[] {
  return [...readFile(`${dir}/tcp`), ...readFile(`${dir}/tcp6`)];
}
