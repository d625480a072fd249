// Scratch: per-thread CPU of idle daemons (not committed).
import fs from 'node:fs';
import { Cluster } from './cluster';
import { daemonPid } from '../test/support/faults';

function threads(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    const comm = fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
    const ns = Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    out.set(`${tid}:${comm}`, ns);
  }
  return out;
}

async function main(): Promise<void> {
  const cluster = await Cluster.create({ hosts: 4, tag: 'idle', config: { peers: { heartbeatMs: 200, deadAfterMs: 1000 } } });
  try {
    await new Promise((r) => setTimeout(r, 3000));
    const pid = daemonPid(cluster, 0);
    const a = threads(pid);
    const secs = 20;
    await new Promise((r) => setTimeout(r, secs * 1000));
    const b = threads(pid);
    let total = 0;
    const by: Record<string, number> = {};
    for (const [k, v] of b) {
      const d = (v - (a.get(k) ?? 0)) / 1e6 / secs;
      total += d;
      const name = k;
      by[name] = (by[name] ?? 0) + d;
    }
    console.log(`daemon idle: ${total.toFixed(2)} ms CPU per s`, JSON.stringify(Object.fromEntries(Object.entries(by).map(([k, v]) => [k, +v.toFixed(3)]))));
  } finally {
    await cluster.destroy();
  }
}
void main();
