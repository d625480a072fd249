// A CPU cap for one thread, with a cgroup v1 `cpu` controller (cfs quota), as
// DESIGN §10 allows for emulating a host's capacity: a test makes a queue
// thread slower than the flood it is sent, so that every receive batch is
// full, and then sees whether the thread still hears the control plane.
// The group is this test's own (dpr-<tag>-<random>) and removed afterwards.
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';

const CPU = '/sys/fs/cgroup/cpu';

export function cpuCapAvailable(): string | undefined {
  if (!fs.existsSync(path.join(CPU, 'cpu.cfs_quota_us'))) return 'no cgroup v1 cpu controller at /sys/fs/cgroup/cpu';
  return undefined;
}

export class CpuCap {
  private constructor(readonly dir: string) {}

  /** A group allowed `percent` of one CPU (period 100 ms). */
  static create(tag: string, percent: number): CpuCap {
    const dir = path.join(CPU, `dpr-${tag}-${randomBytes(3).toString('hex')}`);
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'cpu.cfs_period_us'), '100000');
    fs.writeFileSync(path.join(dir, 'cpu.cfs_quota_us'), String(Math.round(1000 * percent)));
    return new CpuCap(dir);
  }

  /** Moves one thread (not its process) into the group. */
  addThread(tid: number): void {
    fs.writeFileSync(path.join(this.dir, 'tasks'), String(tid));
  }

  /** Moves whatever is still in the group back to the root group, then removes it. */
  remove(): void {
    const tasks = fs.readFileSync(path.join(this.dir, 'tasks'), 'utf8').split('\n').filter(Boolean);
    for (const t of tasks) {
      try {
        fs.writeFileSync(path.join(CPU, 'tasks'), t);
      } catch {
        // the thread is gone
      }
    }
    fs.rmdirSync(this.dir);
  }
}
