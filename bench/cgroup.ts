// A CPU cap for one emulated host: a child group of the cgroup v1 `cpu`
// controller (CFS quota), with a twin in `cpuacct` that counts what the
// group used. A host's processes are moved in once they run (adopt); what they
// start afterwards is born inside. remove() moves anything left back to the
// root groups and deletes both; a process exit handler does it when a run
// dies half-way, as test/support/netns.ts does for namespaces.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const CPU_ROOT = '/sys/fs/cgroup/cpu';
const ACCT_ROOT = '/sys/fs/cgroup/cpuacct';

const live = new Set<CpuCap>();
process.on('exit', () => {
  for (const cap of live) cap.remove();
});

export interface CapSpec {
  /** CPU time per period, in µs (the kernel's minimum is 1000). */
  quotaUs: number;
  /** The CFS period, in µs: short, so a host that used its share waits milliseconds, not 100 ms. */
  periodUs: number;
}

export class CpuCap {
  private removed = false;

  private constructor(readonly name: string, private readonly dirs: string[]) {}

  /** True where the cgroup v1 cpu and cpuacct controllers are mounted (DESIGN §2). */
  static available(): boolean {
    return fs.existsSync(path.join(CPU_ROOT, 'cpu.cfs_quota_us')) && fs.existsSync(path.join(ACCT_ROOT, 'cpuacct.usage'));
  }

  /** Makes dpr-<tag><random>-<host> under both controllers, capped at spec. */
  static create(tag: string, host: string, spec: CapSpec): CpuCap {
    const name = `dpr-${tag}${randomBytes(3).toString('hex')}-${host}`;
    const dirs = [path.join(CPU_ROOT, name), path.join(ACCT_ROOT, name)];
    const cap = new CpuCap(name, []);
    live.add(cap);
    try {
      for (const d of dirs) {
        fs.mkdirSync(d);
        cap.dirs.push(d);
      }
      // Period first: the kernel refuses a quota above a shorter period's bounds otherwise.
      fs.writeFileSync(path.join(dirs[0]!, 'cpu.cfs_period_us'), String(spec.periodUs));
      fs.writeFileSync(path.join(dirs[0]!, 'cpu.cfs_quota_us'), String(spec.quotaUs));
    } catch (err) {
      cap.remove();
      throw err;
    }
    return cap;
  }

  /**
   * Moves a process, with all its threads, into the cap; threads and
   * children it starts later are born inside. From outside the namespace:
   * `ip netns exec` mounts a sysfs of its own, without the cgroup file
   * systems, so a process cannot join from in there.
   */
  adopt(pid: number): void {
    for (const d of this.dirs) fs.writeFileSync(path.join(d, 'cgroup.procs'), String(pid));
  }

  /** Every process now in network namespace `ns` (a host's web server and daemon). */
  adoptNamespace(ns: string): number[] {
    const pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
    for (const pid of pids) this.adopt(pid);
    return pids;
  }

  /** CPU seconds the group's tasks used so far (cpuacct.usage). */
  usageSeconds(): number {
    return Number(fs.readFileSync(path.join(this.dirs[1]!, 'cpuacct.usage'), 'utf8')) / 1e9;
  }

  /** Periods in which the cap ran out, and the time its tasks were held back (cpu.stat). */
  throttled(): { periods: number; throttledPeriods: number; throttledSeconds: number } {
    const stat = Object.fromEntries(fs.readFileSync(path.join(this.dirs[0]!, 'cpu.stat'), 'utf8').trim().split('\n').map((l) => {
      const [k, v] = l.split(' ');
      return [k!, Number(v)];
    }));
    return { periods: stat.nr_periods ?? 0, throttledPeriods: stat.nr_throttled ?? 0, throttledSeconds: (stat.throttled_time ?? 0) / 1e9 };
  }

  /**
   * Moves what is left to the root groups and deletes the groups. Safe to
   * call twice. A task killed a moment ago may still be exiting, and the
   * kernel refuses to delete a group it is in (EBUSY): tried again for up to
   * a second. Synchronous, so the exit handler can use it.
   */
  remove(): void {
    if (this.removed) return;
    this.removed = true;
    for (const d of this.dirs) {
      const root = d.startsWith(CPU_ROOT) ? CPU_ROOT : ACCT_ROOT;
      for (let attempt = 0; fs.existsSync(d) && attempt < 100; attempt++) {
        try {
          for (const pid of fs.readFileSync(path.join(d, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
            try {
              fs.writeFileSync(path.join(root, 'cgroup.procs'), pid);
            } catch {
              // gone meanwhile
            }
          }
          fs.rmdirSync(d);
        } catch {
          Atomics.wait(PAUSE, 0, 0, 10);
        }
      }
    }
    live.delete(this);
  }
}

/** For a synchronous 10 ms pause between attempts. */
const PAUSE = new Int32Array(new SharedArrayBuffer(4));

/** dpr-owned groups whose name starts with `prefix` (what a run must leave none of). */
export function leftoverCaps(prefix: string): string[] {
  return [CPU_ROOT, ACCT_ROOT].flatMap((root) => fs.readdirSync(root).filter((n) => n.startsWith(prefix)).map((n) => path.join(root, n)));
}
