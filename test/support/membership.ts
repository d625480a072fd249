// Hosts that run only their membership source (tools/membership-agent.ts),
// each in its own namespace of a test bed, against a real etcd: what they
// print, read line by line.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { HostEntry } from '../../lib/config';
import type { MembershipStatus } from '../../lib/membership';
import type { Testbed } from './netns';
import { waitForLine } from './lines';
import { writeConfig } from './configs';
import { waitFor } from './wait';

const AGENT = path.resolve(__dirname, '..', '..', 'tools', 'membership-agent.js');
export const KEY = '00112233445566778899aabbccddeeff';

export interface AgentEvent {
  event: 'started' | 'hosts' | 'status' | 'stopped';
  self?: number;
  hosts?: HostEntry[];
  status?: MembershipStatus;
}

/** The dpr configuration of a host with etcd membership, on the test bed's 198.18.0.0/24. */
export function etcdConfig(address: string, endpoint: string, prefix: string, stateFile: string, etcd: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    clusterCidr: '198.18.0.0/24',
    peers: { key: KEY },
    membership: { source: 'etcd', service: address, cluster: address, etcd: { endpoints: [endpoint], prefix, leaseTtlS: 2, stateFile, retryMinMs: 100, retryMaxMs: 500, ...etcd } },
    log: { level: 'debug' },
    ...extra,
  };
}

/** A folder for claim files, removed when the test process exits. */
export function stateDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpr-claims-'));
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export class Agent {
  readonly events: AgentEvent[] = [];
  private readonly child: ChildProcess;

  constructor(bed: Testbed, readonly host: string, config: Record<string, unknown>) {
    this.child = bed.spawn(host, [process.execPath, AGENT, '--config', writeConfig(config)], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stdout!.setEncoding('utf8');
    let partial = '';
    this.child.stdout!.on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop()!;
      for (const l of lines) if (l.startsWith('{')) this.events.push(JSON.parse(l) as AgentEvent);
    });
  }

  /** The 'started' event (registered), within `timeoutMs`. */
  async started(timeoutMs = 15000): Promise<{ self: number; hosts: HostEntry[] }> {
    const find = (): AgentEvent | undefined => this.events.find((e) => e.event === 'started');
    await waitFor(`membership agent on ${this.host} to register`, () => {
      if (this.child.exitCode !== null) throw new Error(`membership agent on ${this.host} exited (${this.child.exitCode})`);
      return find() !== undefined;
    }, timeoutMs);
    const e = find()!;
    return { self: e.self!, hosts: e.hosts! };
  }

  /** Whether it has registered yet. */
  isStarted(): boolean {
    return this.events.some((e) => e.event === 'started');
  }

  /** The last list this host had: from its last 'hosts' event, else its 'started' one. */
  hosts(): HostEntry[] | null {
    const last = [...this.events].reverse().find((e) => e.event === 'hosts' || e.event === 'started');
    return last?.hosts ?? null;
  }

  /** Ids of the last list. */
  ids(): number[] {
    return (this.hosts() ?? []).map((h) => h.id);
  }

  /** 'hosts' events so far. */
  changes(): number {
    return this.events.filter((e) => e.event === 'hosts').length;
  }

  async status(): Promise<MembershipStatus> {
    const line = waitForLine(this.child, (l) => l.includes('"event":"status"'), 5000, `status of ${this.host}`);
    this.child.stdin!.write('status\n');
    return (JSON.parse(await line) as AgentEvent).status!;
  }

  /** Leaves (the source revokes its lease) and exits. */
  async stop(): Promise<void> {
    const line = waitForLine(this.child, (l) => l.includes('"event":"stopped"'), 10000, `${this.host} to leave`);
    this.child.stdin!.write('stop\n');
    await line;
    await this.exited();
  }

  /** Dies without a word: its lease runs out. */
  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited();
  }

  private exited(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => this.child.once('exit', () => resolve()));
  }
}
