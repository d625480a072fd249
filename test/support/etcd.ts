// A real etcd (Debian's etcd-server) for the membership tests and the demo:
// one member, in a namespace of a test bed, on a 198.18.x address, its data
// in a temporary folder that goes with it (also when the test fails: the
// test bed kills the process, an exit handler removes the folder). It can be
// stopped and started again on the same data, as an etcd restart.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { Testbed } from './netns';
import { waitFor } from './wait';

export const ETCD_BINARY = '/usr/bin/etcd';

export class EtcdServer {
  readonly endpoint: string;
  private child: ChildProcess | null = null;
  private readonly dataDir: string;

  constructor(private readonly bed: Testbed, private readonly host: string, private readonly address: string) {
    this.endpoint = `http://${address}:2379`;
    this.dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpr-etcd-'));
    const dir = this.dataDir;
    process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  }

  /** Starts etcd (on the data it has, if it ran before) and waits until it serves. */
  async start(timeoutMs = 20000): Promise<void> {
    const peer = `http://${this.address}:2380`;
    this.child = this.bed.spawn(this.host, [
      ETCD_BINARY, '--name', 'dpr-test', '--data-dir', path.join(this.dataDir, 'data'),
      '--listen-client-urls', this.endpoint, '--advertise-client-urls', this.endpoint,
      '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `dpr-test=${peer}`,
      '--logger', 'zap', '--log-outputs', 'stderr', '--log-level', 'warn',
    ]);
    const child = this.child;
    await waitFor('etcd to serve', () => {
      if (child.exitCode !== null) throw new Error(`etcd exited (${child.exitCode}) before it served`);
      try {
        return JSON.parse(this.bed.exec(this.host, ['curl', '-sS', '--max-time', '1', `${this.endpoint}/health`])).health === 'true';
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
