// Machine-wide CPU from /proc/stat: every process and the kernel (softirq
// included, where packets of every namespace are handled), in CPU-seconds.
// On a shared machine it also counts others' work: read it beside the
// attributable figures (cgroup usage, ns-cpu.ts).
import { readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100;

export interface MachineTicks {
  busy: number;
  total: number;
}

/** The aggregate `cpu` line: everything but idle and iowait is busy. */
export function machineTicks(): MachineTicks {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is inside user)
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - f[3]! - f[4]!, total };
}

/** Busy CPU-seconds between two readings. */
export function machineBusySeconds(before: MachineTicks, after: MachineTicks): number {
  return (after.busy - before.busy) / TICKS_PER_SECOND;
}
