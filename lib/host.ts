// What dpr reads from the host it runs on: its TCP sockets (for the load it
// reports and for the wildcard-listener check) and the kernel settings the
// data path relies on. Read from /proc of the daemon's own network namespace.
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import type { Listener } from './native';
import { readTcpSockets, TCP_ESTABLISHED, TCP_LISTEN } from './proc-tcp';

/**
 * The load this host reports, read from /proc (the fallback of
 * lib/load-meter.ts): established TCP connections on the service ports, IPv4
 * and IPv6, local and forwarded-in alike (both end at the local server). It
 * is what a web server's capacity is spent on, it changes as fast as load
 * does, and every host measures it the same way, so loads compare across hosts.
 */
export function activeConnections(servicePorts: readonly number[]): number {
  const ports = new Set(servicePorts);
  let n = 0;
  for (const s of readTcpSockets()) if (s.state === TCP_ESTABLISHED && ports.has(s.localPort)) n++;
  return n;
}

/**
 * Connections peers forwarded here: established sockets on the service ports
 * whose local address is one of the restore addresses (lib/rules.ts), also
 * as the v4-mapped address of a dual-stack server's socket.
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
 * forwarded flows too, so the server must listen on the wildcard address:
 * 0.0.0.0, or [::] taking IPv4 too (a dual-stack listener, the default of
 * Apache, Node.js and others).
 */
export function checkListeners(serviceAddress: string, servicePorts: readonly number[], list: (ports: readonly number[]) => Listener[] = listenersOf): ListenerCheck {
  const listeners = list(servicePorts);
  const problems: string[] = [];
  const warnings: string[] = [];
  for (const port of servicePorts) {
    const onPort = listeners.filter((l) => l.port === port);
    // A v4-mapped ::ffff:S_A is read as S_A.
    if (onPort.some((l) => l.address === serviceAddress || l.address === `::ffff:${serviceAddress}`)) {
      problems.push(`the web server listens on ${serviceAddress}:${port}; dpr needs it on the wildcard address (0.0.0.0:${port}, or [::]:${port} taking IPv4 too), or forwarded connections would be taken by this host`);
    } else if (!onPort.some((l) => (l.family === 4 && l.address === '0.0.0.0') || (l.family === 6 && l.address === '::' && !l.v6only))) {
      const v6only = onPort.some((l) => l.family === 6 && l.address === '::' && l.v6only);
      warnings.push(v6only
        ? `[::]:${port} is IPv6-only and nothing listens on 0.0.0.0:${port}; IPv4 connections routed to this host will be refused`
        : `nothing listens on 0.0.0.0:${port} yet; connections routed to this host will be refused until the web server starts`);
    }
  }
  return { ok: problems.length === 0, problems, warnings };
}

/** Listeners from sock_diag, which knows IPV6_V6ONLY; /proc where sock_diag is missing (taken as dual-stack, the kernel's default). */
function listenersOf(ports: readonly number[]): Listener[] {
  try {
    // Required here, not at the top: `dpr check` and `dpr rules` load this
    // file and must work where the addon is not built.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { listListeners } = require('./native') as typeof import('./native');
    return listListeners(ports);
  } catch {
    return readTcpSockets()
      .filter((s) => s.state === TCP_LISTEN && ports.includes(s.localPort))
      .map((s) => ({ family: s.family, address: s.localAddress, port: s.localPort, v6only: false }));
  }
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

function iptablesHas(table: string, args: string[], tool = 'iptables'): boolean {
  try {
    execFileSync(tool, ['-w', '-t', table, ...args], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The jumps of `rewrite` mode that say the rules are installed (the kernel modes pass their own, lib/rules.ts). */
const DEFAULT_JUMPS = [
  { table: 'raw', chain: 'PREROUTING', target: 'DPR_PRE' },
  { table: 'nat', chain: 'PREROUTING', target: 'DPR_NAT' },
  { table: 'mangle', chain: 'POSTROUTING', target: 'DPR_POST' },
];

export interface Preflight {
  problems: string[];
  warnings: string[];
}

/**
 * A dual-stack host: IPv6 forwarding on, the ip6tables rules in, and no
 * listener bound to the IPv6 service address itself (it would claim
 * forwarded IPv6 flows, as one bound to the IPv4 address does).
 */
function preflight6(ipv6: { service6: string; jumps: ReadonlyArray<{ table: string; chain: string; target: string }> }, servicePorts: readonly number[], out: Preflight): void {
  if (readSysctl('net.ipv6.conf.all.forwarding') !== '1') {
    out.problems.push('net.ipv6.conf.all.forwarding is not 1: rewritten IPv6 packets cannot be routed to peers (iptables/install.sh sets it)');
  }
  if (!ipv6.jumps.every((j) => iptablesHas(j.table, ['-C', j.chain, '-j', j.target], 'ip6tables'))) {
    out.problems.push('the dpr ip6tables rules are not installed: run iptables/install.sh CONFIG first');
  }
  const listeners = listenersOf(servicePorts);
  for (const port of servicePorts) {
    const onPort = listeners.filter((l) => l.port === port);
    if (onPort.some((l) => l.family === 6 && l.address === ipv6.service6)) {
      out.problems.push(`the web server listens on [${ipv6.service6}]:${port}; dpr needs it on the wildcard address ([::]:${port}), or forwarded IPv6 connections would be taken by this host`);
    } else if (!onPort.some((l) => l.family === 6 && l.address === '::')) {
      out.warnings.push(`nothing listens on [::]:${port} yet; IPv6 connections routed to this host will be refused until the web server listens there`);
    }
  }
}

/**
 * Everything the daemon needs from the host, each with the fix in its
 * message: per family it has (no `serviceAddress`: an IPv6-only host).
 */
export function preflight(serviceAddress: string | undefined, servicePorts: readonly number[], jumps: ReadonlyArray<{ table: string; chain: string; target: string }> = DEFAULT_JUMPS, ipv6?: { service6: string; jumps: ReadonlyArray<{ table: string; chain: string; target: string }> }): Preflight {
  const out: Preflight = { problems: [], warnings: [] };
  if (!hasNetAdmin()) out.problems.push('dpr needs root or CAP_NET_ADMIN to bind NFQUEUE queues');
  if (serviceAddress !== undefined) preflight4(serviceAddress, servicePorts, jumps, out);
  if (ipv6) preflight6(ipv6, servicePorts, out);
  return out;
}

/** An IPv4 host: forwarding on, no redirects, the iptables rules in, no listener on the service address itself. */
function preflight4(serviceAddress: string, servicePorts: readonly number[], jumps: ReadonlyArray<{ table: string; chain: string; target: string }>, { problems, warnings }: Preflight): void {
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
  if (!jumps.every((j) => iptablesHas(j.table, ['-C', j.chain, '-j', j.target]))) {
    problems.push('the dpr rules are not installed: run iptables/install.sh CONFIG first');
  }
  const listeners = checkListeners(serviceAddress, servicePorts);
  problems.push(...listeners.problems);
  warnings.push(...listeners.warnings);
}
