// `npm run demo`: a 4-host web cluster and a client in network namespaces,
// a skewed load (70% of connections to host 0, as round-robin DNS gives a few
// big clients), run once without dpr and once with each policy. Prints what
// each host received and served and what the client saw; `--json` for JSON.
// `--etcd`: hosts that join, leave and ride out an etcd restart (tools/demo-etcd.ts).
import { Cluster, hostAddress } from './cluster';
import { etcdDemo } from './demo-etcd';
import type { LoadSummary } from './loadgen';

const HOSTS = 4;
const WEIGHTS = [7, 1, 1, 1];
const SLOTS = 2;
const SERVICE_MS = 20;
const LOAD = { requests: 2000, concurrency: 32, maxDurationMs: 40000 };
// Host capacity, not the two shared cores, must be what runs out: 2 slots of
// 20 ms each make 100 requests/s per host, 400 for the cluster.

interface HostRow {
  host: number;
  arrived: number;
  served: number;
  forwardedOut: number;
  forwardedIn: number;
}

interface Run {
  name: string;
  hosts: HostRow[];
  client: Pick<LoadSummary, 'ok' | 'errors' | 'p50Ms' | 'p99Ms' | 'rps' | 'addressMismatch'>;
}

function rows(s: LoadSummary): HostRow[] {
  return Array.from({ length: HOSTS }, (_, id) => {
    const t = s.byTarget[hostAddress(id)] ?? { sent: 0, ok: 0, servedBy: {} };
    const keptHere = t.servedBy[String(id)] ?? 0;
    const served = s.servedBy[String(id)] ?? 0;
    return { host: id, arrived: t.sent, served, forwardedOut: t.ok - keptHere, forwardedIn: served - keptHere };
  });
}

async function runOne(name: string, dpr: boolean, policy: 'hash' | 'load'): Promise<Run> {
  const cluster = await Cluster.create({ hosts: HOSTS, dpr, policy, slots: SLOTS, serviceMs: SERVICE_MS, tag: 'demo' });
  try {
    const s = await cluster.load({ ...LOAD, targets: WEIGHTS.map((weight, id) => ({ address: hostAddress(id), weight })) });
    return { name, hosts: rows(s), client: { ok: s.ok, errors: s.errors, p50Ms: s.p50Ms, p99Ms: s.p99Ms, rps: s.rps, addressMismatch: s.addressMismatch } };
  } finally {
    await cluster.destroy();
  }
}

function print(run: Run): void {
  const pad = (v: string | number, n: number): string => String(v).padStart(n);
  process.stdout.write(`\n== ${run.name} ==\n`);
  process.stdout.write(`${pad('host', 6)}${pad('arrived', 9)}${pad('served', 8)}${pad('fwd out', 9)}${pad('fwd in', 8)}\n`);
  for (const r of run.hosts) {
    process.stdout.write(`${pad(`h${r.host}`, 6)}${pad(r.arrived, 9)}${pad(r.served, 8)}${pad(r.forwardedOut, 9)}${pad(r.forwardedIn, 8)}\n`);
  }
  const c = run.client;
  process.stdout.write(`client: ${c.ok} ok, ${c.errors} errors, p50 ${c.p50Ms} ms, p99 ${c.p99Ms} ms, ${c.rps} req/s` +
    `${c.addressMismatch ? `, ${c.addressMismatch} answers from an unexpected address` : ', every answer from the address dialled'}\n`);
}

async function main(): Promise<void> {
  const json = process.argv.includes('--json');
  if (process.getuid?.() !== 0) throw new Error('the demo builds network namespaces: run it as root');
  if (process.argv.includes('--etcd')) return etcdDemo((line) => void process.stdout.write(`${line}\n`));
  if (!json) {
    process.stdout.write(`4 hosts (${SLOTS} request slots, ${SERVICE_MS} ms per request each), 1 client, ${LOAD.requests} connections, ` +
      `${LOAD.concurrency} at a time, 70% of them to h0\n`);
  }
  const runs: Run[] = [];
  for (const [name, dpr, policy] of [['without dpr', false, 'hash'], ['dpr, hash policy', true, 'hash'], ['dpr, load policy', true, 'load']] as const) {
    const run = await runOne(name, dpr, policy);
    runs.push(run);
    if (!json) print(run);
  }
  if (json) process.stdout.write(JSON.stringify(runs, null, 2) + '\n');
}

main().catch((err: Error) => {
  process.stderr.write(`demo: ${err.message}\n`);
  process.exit(1);
});
