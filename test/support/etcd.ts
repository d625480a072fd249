// A real etcd (Debian's etcd-server) for the membership tests and the demo:
// one member, in a namespace of a test bed, on a 198.18.x address, its data
// in a temporary folder that goes with it (also when the test fails: the
// test bed kills the process, an exit handler removes the folder). It can be
// stopped and started again on the same data, as an etcd restart. With
// `tls`, it serves https only and asks every client for a certificate signed
// by its own CA (made here with openssl, in the same folder).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { Testbed } from './netns';
import { waitFor } from './wait';

export const ETCD_BINARY = '/usr/bin/etcd';

/** PEM files of a TLS etcd: its CA, and a client certificate that CA signed. */
export interface EtcdCerts {
  ca: string;
  clientCert: string;
  clientKey: string;
  serverCert: string;
  serverKey: string;
}

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A CA, a server certificate for `address` and a client certificate, in `dir`. */
function makeCerts(dir: string, address: string): EtcdCerts {
  const f = (name: string): string => path.join(dir, name);
  const days = ['-days', '2'];
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca-key.pem'), '-out', f('ca.pem'), ...days, '-subj', '/CN=dpr test CA']);
  for (const [who, ext] of [['server', `subjectAltName=IP:${address}`], ['client', 'extendedKeyUsage=clientAuth']] as const) {
    openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f(`${who}-key.pem`), '-out', f(`${who}.csr`), '-subj', `/CN=dpr-${who}`]);
    fs.writeFileSync(f(`${who}.ext`), `${ext}\n`);
    openssl(['x509', '-req', '-in', f(`${who}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca-key.pem'), '-CAcreateserial', '-out', f(`${who}.pem`), ...days, '-extfile', f(`${who}.ext`)]);
  }
  return { ca: f('ca.pem'), clientCert: f('client.pem'), clientKey: f('client-key.pem'), serverCert: f('server.pem'), serverKey: f('server-key.pem') };
}

/** An address as a URL's host: an IPv6 one in brackets. */
const bracketed = (address: string): string => (address.includes(':') ? `[${address}]` : address);

export class EtcdServer {
  readonly endpoint: string;
  /** With `tls`: the files a client needs (and the server's). */
  readonly certs: EtcdCerts | null;
  private child: ChildProcess | null = null;
  private readonly dataDir: string;

  constructor(private readonly bed: Testbed, private readonly host: string, private readonly address: string, options: { tls?: boolean } = {}) {
    this.dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpr-etcd-'));
    const dir = this.dataDir;
    process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
    this.certs = options.tls ? makeCerts(dir, address) : null;
    this.endpoint = `${this.certs ? 'https' : 'http'}://${bracketed(address)}:2379`;
  }

  /** curl's options to reach this etcd as a client (its CA, the client certificate). */
  private curlTls(): string[] {
    const c = this.certs;
    return c ? ['--cacert', c.ca, '--cert', c.clientCert, '--key', c.clientKey] : [];
  }

  /** A call of etcd's JSON gateway (`/v3/...`), as a client with the client certificate; the parsed answer. */
  api(route: string, body: object, token?: string): Record<string, unknown> {
    const auth = token ? ['-H', `Authorization: ${token}`] : [];
    const out = this.bed.exec(this.host, ['curl', '-sS', '-g', '--max-time', '5', ...this.curlTls(), ...auth, '-X', 'POST', `${this.endpoint}${route}`, '-d', JSON.stringify(body)]);
    return JSON.parse(out) as Record<string, unknown>;
  }

  /** Starts etcd (on the data it has, if it ran before) and waits until it serves. */
  async start(timeoutMs = 20000): Promise<void> {
    const peer = `http://${bracketed(this.address)}:2380`;
    this.child = this.bed.spawn(this.host, [
      ETCD_BINARY, '--name', 'dpr-test', '--data-dir', path.join(this.dataDir, 'data'),
      '--listen-client-urls', this.endpoint, '--advertise-client-urls', this.endpoint,
      '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `dpr-test=${peer}`,
      '--logger', 'zap', '--log-outputs', 'stderr', '--log-level', 'warn',
      ...(this.certs ? ['--cert-file', this.certs.serverCert, '--key-file', this.certs.serverKey, '--trusted-ca-file', this.certs.ca, '--client-cert-auth'] : []),
    ]);
    const child = this.child;
    await waitFor('etcd to serve', () => {
      if (child.exitCode !== null) throw new Error(`etcd exited (${child.exitCode}) before it served`);
      try {
        return JSON.parse(this.bed.exec(this.host, ['curl', '-sS', '-g', '--max-time', '1', ...this.curlTls(), `${this.endpoint}/health`])).health === 'true';
      } catch {
        return false;
      }
    }, timeoutMs, 100);
  }

  running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Stops etcd (SIGTERM: a clean stop; SIGKILL: a crash) and waits until it is gone. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    await gone;
  }

  /** Stops etcd and removes its data. */
  async destroy(): Promise<void> {
    await this.stop('SIGKILL');
    fs.rmSync(this.dataDir, { recursive: true, force: true });
  }
}
