// `npm run demo -- --etcd`: a cluster whose host list comes from etcd (issue
// 16). Three hosts register in an etcd of their own (in a namespace), a
// fourth joins while a load runs and takes its share, etcd is stopped and
// started again under load, and the fourth leaves. Prints what each step
// did and what the client saw; everything it makes is removed.
import { Cluster, ETCD_ADDRESS, hostAddress } from './cluster';
import type { LoadSummary } from './loadgen';

const LOAD = { requests: 1500, concurrency: 16, maxDurationMs: 40000 };
const TARGETS = [0, 1, 2].map((id) => ({ address: hostAddress(id) }));

const served = (s: LoadSummary): string => Object.entries(s.servedBy).map(([h, n]) => `h${h} ${n}`).join(', ');
const client = (s: LoadSummary): string => `${s.ok} ok, ${s.errors} errors, p50 ${s.p50Ms} ms; served by ${served(s)}`;

export async function etcdDemo(say: (line: string) => void): Promise<void> {
  const cluster = await Cluster.create({ hosts: 4, members: [0, 1, 2], etcd: true, policy: 'hash', slots: 4, serviceMs: 10, tag: 'demo' });
  const membership = (id: number): string => {
    const m = cluster.status(id).membership!;
    return `h${id}: ${m.state}${m.self !== null ? ` as id ${m.self}` : ''}, ${m.hosts} hosts${m.lease ? `, lease ${m.lease}` : ''}${m.lastError ? ` (${m.lastError.slice(0, 60)})` : ''}`;
  };
  try {
    say(`etcd on ${ETCD_ADDRESS}:2379 (a namespace of its own); each host's file names only itself.`);
    say('three hosts started one after the other, each claimed the lowest free id:');
    for (const id of [0, 1, 2]) say(`  ${membership(id)}`);

    say('\nh3 starts while a load runs on h0-h2; nobody edits a file or reloads:');
    const joining = cluster.load({ ...LOAD, targets: TARGETS });
    cluster.install(3);
    await cluster.startDaemon(3);
    say(`  ${membership(3)}`);
    say(`  client: ${client(await joining)}`);
    const after = await cluster.load({ ...LOAD, targets: TARGETS });
    say(`  after the join: ${client(after)}`);

    say('\netcd is killed while a load runs, and started again 5 s later:');
    const outage = cluster.load({ ...LOAD, targets: TARGETS });
    await cluster.etcd!.stop('SIGKILL');
    await new Promise((r) => setTimeout(r, 2500));
    for (const id of [0, 3]) say(`  ${membership(id)}`);
    await new Promise((r) => setTimeout(r, 2500));
    await cluster.etcd!.start();
    await new Promise((r) => setTimeout(r, 2000));
    for (const id of [0, 3]) say(`  ${membership(id)}`);
    say(`  client: ${client(await outage)}`);

    say('\nh3 stops (SIGTERM: it drains, then revokes its lease):');
    await cluster.signalDaemon(3, 'SIGTERM', 20000);
    await new Promise((r) => setTimeout(r, 500));
    say(`  ${membership(0)}`);
    say(`  client: ${client(await cluster.load({ ...LOAD, targets: TARGETS }))}`);
  } finally {
    await cluster.destroy();
  }
}
