// Scratch: cpu profile of an idle daemon (not committed).
import { Cluster, hostName } from './cluster';
import path from 'node:path';
import { waitForLine } from '../test/support/lines';

async function main(): Promise<void> {
  const cluster = await Cluster.create({ hosts: 4, tag: 'idlp', config: { peers: { heartbeatMs: 200, deadAfterMs: 1000 }, flows: { snapshotMs: 5000 } } });
  try {
    await cluster.signalDaemon(0, 'SIGKILL');
    const cli = path.resolve(__dirname, '..', 'lib', 'cli.js');
    const child = cluster.bed.spawn(hostName(0), [process.execPath, '--cpu-prof', '--cpu-prof-dir=/work/scratch/prof', cli, 'start', '--config', cluster.configFiles[0]!], { env: { ...process.env, DPR_LOG_LEVEL: 'warn' } });
    await waitForLine(child, (l) => l.startsWith('dpr: host'), 15000, 'daemon');
    await new Promise((r) => setTimeout(r, 20000));
    child.kill('SIGINT');
    await new Promise((r) => setTimeout(r, 3000));
  } finally {
    await cluster.destroy();
  }
}
void main();
