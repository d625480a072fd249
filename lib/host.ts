// What dpr reads from the host it runs on: its TCP sockets (for the load it
// reports and for the wildcard-listener check) and the kernel settings the
// data path relies on. Read from /proc of the daemon's own network namespace.
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { formatIpv4 } from './ipv4';

const TCP_ESTABLISHED = 0x01;
const TCP_LISTEN = 0x0a;

export interface TcpSocket {
  localAddress: string;
  localPort: number;
  state: number;
}

/** /proc/net/tcp writes the address as the host-order hex of the raw bytes. */
function decodeAddress(hex: string): string {
  const raw = Number.parseInt(hex, 16);
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32LE(raw);
  return formatIpv4(bytes.readUInt32BE());
}

export function readTcpSockets(file = '/proc/net/tcp'): TcpSocket[] {
  const lines = fs.readFileSync(file, 'utf8').split('\n').slice(1);
  const out: TcpSocket[] = [];
  for (const line of lines) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4) continue;
    const [addr, port] = f[1]!.split(':');
    out.push({ localAddress: decodeAddress(addr!), localPort: Number.parseInt(port!, 16), state: Number.parseInt(f[3]!, 16) });
  }
  return out;
}

/**
 * The load this host reports: established TCP connections on the service
 * ports, local and forwarded-in alike (both end at the local server). It is
 * what a web server's capacity is spent on, it changes as fast as load does,
 * and every host measures it the same way, so loads compare across hosts.
 */
export function activeConnections(servicePorts: readonly number[]): number {
  const ports = new Set(servicePorts);
  let n = 0;
  for (const s of readTcpSockets()) if (s.state === TCP_ESTABLISHED && ports.has(s.localPort)) n++;
  return n;
}

/**
 * Connections peers forwarded here: established sockets on the service ports
 * whose local address is one of the restore addresses (lib/rules.ts).
 */
export function forwardedInConnections(restoreAddresses: ReadonlySet<string>, servicePorts: readonly number[]): number {
  const ports = new Set(servicePorts);
  let n = 0;
  for (const s of readTcpSockets()) {
    if (s.state === TCP_ESTABLISHED && ports.has(s.localPort) && restoreAddresses.has(s.localAddress)) n++;
  }
  return n;
}

export interface ListenerCheck {
  ok: boolean;
  problems: string[];
  warnings: string[];
}

/**
 * The entry rules hand non-SYN packets to a local socket only when one exists
 * for the flow; a listener bound to the service address itself would claim
 * forwarded flows too, so the server must listen on the wildcard address.
 */
export function checkListeners(serviceAddress: string, servicePorts: readonly number[]): ListenerCheck {
  const listeners = readTcpSockets().filter((s) => s.state === TCP_LISTEN);
  const problems: string[] = [];
  const warnings: string[] = [];
  for (const port of servicePorts) {
    const onPort = listeners.filter((s) => s.localPort === port);
    const bound = onPort.filter((s) => s.localAddress === serviceAddress);
    if (bound.length) {
      problems.push(`the web server listens on ${serviceAddress}:${port}; dpr needs it on the wildcard address (0.0.0.0:${port}), or forwarded connections would be taken by this host`);
    } else if (!onPort.some((s) => s.localAddress === '0.0.0.0')) {
      warnings.push(`nothing listens on 0.0.0.0:${port} yet; connections routed to this host will be refused until the web server starts`);
    }
  }
  return { ok: problems.length === 0, problems, warnings };
}

function readSysctl(key: string): string | null {
  try {
    return fs.readFileSync(`/proc/sys/${key.replace(/\./g, '/')}`, 'utf8').trim();
  } catch {
    return null;
  }
}

function hasNetAdmin(): boolean {
  if (process.getuid?.() === 0) return true;
  const status = fs.readFileSync('/proc/self/status', 'utf8');
  const m = /^CapEff:\s*([0-9a-f]+)/m.exec(status);
  return m ? (BigInt(`0x${m[1]}`) & (1n << 12n)) !== 0n : false;
}

function iptablesHas(table: string, args: string[]): boolean {
  try {
    execFileSync('iptables', ['-w', '-t', table, ...args], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export interface Preflight {
  problems: string[];
  warnings: string[];
}

/** Everything the daemon needs from the host, each with the fix in its message. */
export function preflight(serviceAddress: string, servicePorts: readonly number[]): Preflight {
  const problems: string[] = [];
  const warnings: string[] = [];
  if (!hasNetAdmin()) problems.push('dpr needs root or CAP_NET_ADMIN to bind NFQUEUE queues');
  if (readSysctl('net.ipv4.ip_forward') !== '1') {
    problems.push('net.ipv4.ip_forward is not 1: rewritten packets cannot be routed to peers (iptables/install.sh sets it)');
  }
  let ifaces: string[] = [];
  try {
    ifaces = fs.readdirSync('/proc/sys/net/ipv4/conf');
  } catch {
    // no /proc: the checks below report nothing
  }
  const redirecting = ifaces.filter((i) => readSysctl(`net.ipv4.conf.${i}.send_redirects`) === '1' && i !== 'default');
  if (redirecting.length) {
    problems.push(`send_redirects is on for ${redirecting.join(', ')}: the kernel would tell clients to bypass this host (iptables/install.sh turns it off)`);
  }
  const strict = ifaces.filter((i) => readSysctl(`net.ipv4.conf.${i}.rp_filter`) === '1' && i !== 'default' && i !== 'lo');
  if (strict.length && readSysctl('net.ipv4.conf.all.rp_filter') !== '2') {
    warnings.push(`rp_filter is strict on ${strict.join(', ')}: forwarded packets from peers on other links may be dropped (loose mode 2 is safe)`);
  }
  if (!iptablesHas('raw', ['-C', 'PREROUTING', '-j', 'DPR_PRE']) || !iptablesHas('nat', ['-C', 'PREROUTING', '-j', 'DPR_NAT']) ||
      !iptablesHas('mangle', ['-C', 'POSTROUTING', '-j', 'DPR_POST'])) {
    problems.push('the dpr rules are not installed: run iptables/install.sh CONFIG first');
  }
  const listeners = checkListeners(serviceAddress, servicePorts);
  problems.push(...listeners.problems);
  warnings.push(...listeners.warnings);
  return { problems, warnings };
}
