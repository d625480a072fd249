// CPU time used by the processes in a test bed's namespaces, grouped by what
// they are (daemon, web server, load generator, HAProxy): what each part of a
// run cost, beside what it achieved. Read from /proc/PID/stat (utime+stime,
// all threads), so it counts work done in a process's own context, including
// kernel work such as the reinjection that follows an NFQUEUE verdict.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Testbed } from '../test/support/netns';

const TICKS_PER_SECOND = 100;

export type CpuTicks = Map<number, { kind: string; ticks: number }>;

function kindOf(cmdline: string): string {
  if (cmdline.includes('cli.js')) return 'dpr';
  if (cmdline.includes('web-server') || cmdline.startsWith('nginx')) return 'web';
  if (cmdline.includes('wrk')) return 'wrk';
  if (cmdline.includes('haproxy')) return 'haproxy';
  return 'other';
}

function ticksOf(pid: number): number | null {
  try {
    // Fields after the command name: state is field 3; utime, stime are 14, 15.
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return null;  // gone
  }
}

/** Every process in the bed's namespaces with its CPU ticks so far. */
export function cpuTicks(bed: Testbed): CpuTicks {
  const out: CpuTicks = new Map();
  for (const host of bed.hosts) {
    let pids: number[] = [];
    try {
      pids = execFileSync('ip', ['netns', 'pids', bed.ns(host)], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
    } catch {
      continue;
    }
    for (const pid of pids) {
      const ticks = ticksOf(pid);
      let cmd = '';
      try {
        cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      } catch {
        continue;
      }
      if (ticks !== null) out.set(pid, { kind: kindOf(cmd), ticks });
    }
  }
  return out;
}

/** CPU seconds per kind between two snapshots (processes that ended in between are not counted). */
export function cpuSeconds(before: CpuTicks, after: CpuTicks): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [pid, a] of after) {
    const b = before.get(pid);
    if (b === undefined) continue;
    out[a.kind] = (out[a.kind] ?? 0) + (a.ticks - b.ticks) / TICKS_PER_SECOND;
  }
  return out;
}
