// A test bed of network namespaces: hosts joined by a bridge that lives in a
// switch namespace of its own. Nothing is created in the root namespace but
// the namespace names themselves; `destroy()` removes everything, and a
// process exit handler does it too when a test dies half-way.
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { transcript, watch } from './lines';
import { cidr6Contains, parseCidr6, parseIpv6 } from '../../lib/ipv6';

export interface HostPlan {
  /** Short name, unique in the bed: 'client', 'a', 'b', ... */
  name: string;
  /** Addresses with prefix length on the host's eth0 (bridge br0), from 198.18.0.0/15 or 2001:2::/48 only. */
  addrs: string[];
  /** More interfaces, eth1, eth2, ..., each on the named bridge of the switch (made on first use). */
  nics?: Array<{ bridge: string; addrs: string[] }>;
}

const live = new Set<Testbed>();
process.on('exit', () => {
  for (const bed of live) bed.destroySync();
});
// An interrupted run (Ctrl-C, CI's time limit) must not leave namespaces
// behind either: clean up, then die of the signal as we would have.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    for (const bed of live) bed.destroySync();
    process.kill(process.pid, signal);
  });
}

/** Namespaces of one `npm test` run share this prefix (scripts/test.sh sets DPR_TEST_RUN), so the run can remove exactly its own. */
export const RUN_PREFIX = `dpr-${process.env.DPR_TEST_RUN ? `${process.env.DPR_TEST_RUN}-` : ''}`;

function run(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
}

const TEST_RANGE6 = parseCidr6('2001:2::/48');

function assertTestRange(cidr: string): void {
  const [addr] = cidr.split('/');
  if (addr!.includes(':')) {
    if (!cidr6Contains(TEST_RANGE6, parseIpv6(addr!))) throw new Error(`test IPv6 addresses must be in 2001:2::/48, got ${cidr}`);
    return;
  }
  const [a, b] = addr!.split('.').map(Number);
  if (a !== 198 || (b !== 18 && b !== 19)) throw new Error(`test addresses must be in 198.18.0.0/15, got ${cidr}`);
}

/** `ip addr add` arguments: IPv6 ones without duplicate address detection, so they work at once (no tentative second). */
const addrArgs = (a: string, dev: string): string[] => ['addr', 'add', a, 'dev', dev, ...(a.includes(':') ? ['nodad'] : [])];

export class Testbed {
  readonly prefix: string;
  readonly hosts: string[] = [];
  private destroyed = false;
  private readonly children = new Set<ChildProcess>();
  /** Everything spawned, for the logs a failed run keeps (DPR_TEST_LOG_DIR). */
  private readonly spawned: Array<{ host: string; argv: string[]; child: ChildProcess }> = [];

  private constructor(prefix: string) {
    this.prefix = prefix;
  }

  /** Builds the bed: a switch namespace with a bridge, one namespace per host. */
  static create(plans: HostPlan[], tag = 't'): Testbed {
    const bed = new Testbed(`${RUN_PREFIX}${tag}${randomBytes(3).toString('hex')}-`);
    live.add(bed);
    try {
      bed.build(plans);
    } catch (err) {
      bed.destroySync();
      throw err;
    }
    return bed;
  }

  ns(host: string): string {
    return this.prefix + host;
  }

  private build(plans: HostPlan[]): void {
    const sw = this.ns('sw');
    run('ip', ['netns', 'add', sw]);
    this.hosts.push('sw');
    run('ip', ['-n', sw, 'link', 'set', 'lo', 'up']);
    const bridges = new Set<string>();
    const bridge = (name: string): string => {
      if (!bridges.has(name)) {
        run('ip', ['-n', sw, 'link', 'add', name, 'type', 'bridge']);
        run('ip', ['-n', sw, 'link', 'set', name, 'up']);
        bridges.add(name);
      }
      return name;
    };
    bridge('br0');
    plans.forEach((plan, i) => {
      const nics = [{ bridge: 'br0', addrs: plan.addrs }, ...(plan.nics ?? [])];
      for (const n of nics) n.addrs.forEach(assertTestRange);
      const ns = this.ns(plan.name);
      run('ip', ['netns', 'add', ns]);
      this.hosts.push(plan.name);
      run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      nics.forEach((nic, j) => {
        const dev = `eth${j}`;
        const port = j === 0 ? `p${i}` : `p${i}n${j}`;
        // Create the pair inside the host namespace, then move one end to the switch.
        run('ip', ['-n', ns, 'link', 'add', dev, 'type', 'veth', 'peer', 'name', port]);
        run('ip', ['-n', ns, 'link', 'set', port, 'netns', sw]);
        run('ip', ['-n', sw, 'link', 'set', port, 'master', bridge(nic.bridge), 'up']);
        for (const a of nic.addrs) run('ip', ['-n', ns, ...addrArgs(a, dev)]);
        run('ip', ['-n', ns, 'link', 'set', dev, 'up']);
      });
    });
  }

  /** Runs a command inside a host's namespace and returns its stdout; throws with stderr on failure. */
  exec(host: string, argv: string[], input?: string): string {
    try {
      return run('ip', ['netns', 'exec', this.ns(host), ...argv], input);
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`[${host}] ${argv.join(' ')}: ${e.stderr?.trim() || e.message}`);
    }
  }

  sysctl(host: string, key: string, value: string | number): void {
    this.exec(host, ['sysctl', '-qw', `${key}=${value}`]);
  }

  /** Starts a long-running process in a host's namespace; killed by destroy(). */
  spawn(host: string, argv: string[], options: SpawnOptions = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.ns(host), ...argv], { stdio: ['ignore', 'pipe', 'pipe'], ...options });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    watch(child);
    this.spawned.push({ host, argv, child });
    return child;
  }

  /** Writes what every spawned process printed to DPR_TEST_LOG_DIR (set by scripts/test.sh), one file each. */
  private writeLogs(): void {
    const dir = process.env.DPR_TEST_LOG_DIR;
    if (!dir || this.spawned.length === 0) return;
    try {
      fs.mkdirSync(dir, { recursive: true });
      this.spawned.forEach(({ host, argv, child }, i) => {
        const lines = transcript(child);
        if (lines.length === 0) return;
        const what = path.basename(argv.find((a) => a.endsWith('.js')) ?? argv[0] ?? 'proc', '.js');
        const head = `# ${host}: ${argv.join(' ')} (exit ${child.exitCode ?? child.signalCode ?? 'running'})\n`;
        fs.writeFileSync(path.join(dir, `${this.prefix}${host}-${i}-${what}.log`), head + lines.join('\n') + '\n');
      });
    } catch {
      // logs are a courtesy: never fail a test over them
    }
  }

  /** Kills what it spawned and deletes every namespace it made. Safe to call twice. */
  async destroy(): Promise<void> {
    const waits = [...this.children].map(
      (c) => new Promise<void>((resolve) => {
        if (c.exitCode !== null || c.signalCode !== null) return resolve();
        c.once('exit', () => resolve());
        c.kill('SIGKILL');
        setTimeout(resolve, 2000).unref();
      }),
    );
    await Promise.all(waits);
    this.destroySync();
  }

  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const c of this.children) c.kill('SIGKILL');
    this.writeLogs();
    for (const h of this.hosts) {
      try {
        run('ip', ['netns', 'del', this.ns(h)]);
      } catch {
        // already gone
      }
    }
    live.delete(this);
  }
}

/** Namespaces whose name starts with `prefix` (default: this run's). */
export function leftoverNamespaces(prefix = RUN_PREFIX): string[] {
  return run('ip', ['netns', 'list'])
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter((n) => n.startsWith(prefix));
}
