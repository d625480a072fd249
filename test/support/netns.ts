// A test bed of network namespaces: hosts joined by a bridge that lives in a
// switch namespace of its own. Nothing is created in the root namespace but
// the namespace names themselves; `destroy()` removes everything, and a
// process exit handler does it too when a test dies half-way.
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export interface HostPlan {
  /** Short name, unique in the bed: 'client', 'a', 'b', ... */
  name: string;
  /** Addresses with prefix length on the host's eth0, from 198.18.0.0/15 only. */
  addrs: string[];
}

const live = new Set<Testbed>();
process.on('exit', () => {
  for (const bed of live) bed.destroySync();
});

function run(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
}

function assertTestRange(cidr: string): void {
  const [addr] = cidr.split('/');
  const [a, b] = addr!.split('.').map(Number);
  if (a !== 198 || (b !== 18 && b !== 19)) throw new Error(`test addresses must be in 198.18.0.0/15, got ${cidr}`);
}

export class Testbed {
  readonly prefix: string;
  readonly hosts: string[] = [];
  private destroyed = false;
  private readonly children = new Set<ChildProcess>();

  private constructor(prefix: string) {
    this.prefix = prefix;
  }

  /** Builds the bed: a switch namespace with a bridge, one namespace per host. */
  static create(plans: HostPlan[], tag = 't'): Testbed {
    const bed = new Testbed(`dpr-${tag}${randomBytes(3).toString('hex')}-`);
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
    run('ip', ['-n', sw, 'link', 'add', 'br0', 'type', 'bridge']);
    run('ip', ['-n', sw, 'link', 'set', 'br0', 'up']);
    run('ip', ['-n', sw, 'link', 'set', 'lo', 'up']);
    plans.forEach((plan, i) => {
      plan.addrs.forEach(assertTestRange);
      const ns = this.ns(plan.name);
      run('ip', ['netns', 'add', ns]);
      this.hosts.push(plan.name);
      run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      // Create the pair inside the host namespace, then move one end to the switch.
      run('ip', ['-n', ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', `p${i}`]);
      run('ip', ['-n', ns, 'link', 'set', `p${i}`, 'netns', sw]);
      run('ip', ['-n', sw, 'link', 'set', `p${i}`, 'master', 'br0', 'up']);
      for (const a of plan.addrs) run('ip', ['-n', ns, 'addr', 'add', a, 'dev', 'eth0']);
      run('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
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
    return child;
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

/** Namespaces left by an earlier run that died before it could clean up. */
export function leftoverNamespaces(): string[] {
  return run('ip', ['netns', 'list'])
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter((n) => n.startsWith('dpr-'));
}
