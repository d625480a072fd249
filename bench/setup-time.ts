// One repetition of the connection set-up trial: how long a client's
// connect() takes (SYN out, SYN-ACK back) without dpr, through dpr to a
// connection the entry host serves itself, and through dpr to one it forwards.
//
// Topology: Cluster (tools/cluster.ts) of 2 hosts and a client, hash policy,
// the real daemon and rules. The client connects to h0 only.
//
// How local and forwarded are told apart: under the hash policy the source
// port alone decides (h0 looks its lookup table up at hash(client address,
// port)). The bench builds the same Maglev table the daemons build for hosts
// [0, 1], asks the addon's own Engine.hashTarget which host each port maps to,
// and hands the probe only ports that stay on h0 (dpr-local) or only ports
// that go to h1 (dpr-forwarded). Afterwards h0's counters must show exactly
// that many local or forwarded new flows, or the repetition fails: every
// sample is known to have taken the path it is filed under.
import path from 'node:path';
import { Cluster, CLIENT_ADDRESS, hostAddress } from '../tools/cluster';
import type { EngineStats } from '../lib/native';
import { portsServedBy } from '../test/support/hash-ports';
import { runIn } from './proc';
import { mean, percentile } from './stats';

/** `kernel-forwarded`: forwarded in `direct` mode (the SYN through h0's entry queue, routed unchanged; h1 answers as h0 from its lo). */
export type SetupPath = 'direct' | 'local' | 'forwarded' | 'kernel-forwarded';

export interface SetupSize {
  connections: number;
  warmup: number;
}

export interface SetupSample {
  connections: number;
  errors: number;
  errno: Record<string, number>;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  meanUs: number;
  minUs: number;
  maxUs: number;
  /** h0's entry-queue new-flow counters over the probe: the path check. */
  newFlows: { local: number; forwarded: number } | null;
}

const ROOT = path.resolve(__dirname, '..', '..');
export const PROBE = path.join(ROOT, 'build', 'bench', 'connect_probe');
// Between connections: back to back, they arrive faster than the node web
// server accepts and its listen queue overflows (SYNs dropped, 1 s retries).
export const GAP_US = 250;
// Client ports the probe may bind: clear of the low ports, each used once.
const PORT_RANGE = { first: 10_000, last: 65_000 } as const;

/** Source ports whose connections to h0 the 2-host hash table sends to `target`. */
export function portsTo(target: 0 | 1, count: number): number[] {
  return portsServedBy(target, count, { first: PORT_RANGE.first, last: PORT_RANGE.last });
}

/** Waits until h0 has pushed the 2-host table (peers up is not enough: the push follows). */
async function waitForTable(cluster: Cluster): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (cluster.status(0).liveHosts.length < 2) {
    if (Date.now() > deadline) throw new Error('setup: h0 never saw h1 up');
    await new Promise((r) => setTimeout(r, 100));
  }
}

function newFlowCounts(cluster: Cluster): EngineStats['newFlows'] {
  const entry = cluster.status(0).entry;
  if (entry === null) throw new Error('setup: h0 has no entry queue');
  return entry.newFlows;
}

interface ProbeOutput {
  connections: number;
  errors: number;
  errno: Record<string, number>;
  samplesNs: number[];
}

async function probe(cluster: Cluster, ports: number[], warmup: number): Promise<ProbeOutput> {
  const argv = [PROBE, '--dst', hostAddress(0), '--port', '80', '--src', CLIENT_ADDRESS, '--warmup', String(warmup),
    '--timeout-ms', '2000', '--gap-us', String(GAP_US)];
  const out = await runIn(cluster.bed, 'client', argv, { input: ports.join('\n') + '\n', timeoutMs: 120_000 });
  return JSON.parse(out) as ProbeOutput;
}

function summarizeProbe(p: ProbeOutput): Omit<SetupSample, 'newFlows'> {
  const us = Float64Array.from(p.samplesNs, (ns) => ns / 1000).sort();
  return {
    connections: p.connections,
    errors: p.errors,
    errno: p.errno,
    p50Us: percentile(us, 50),
    p90Us: percentile(us, 90),
    p99Us: percentile(us, 99),
    meanUs: mean(us),
    minUs: us[0] ?? NaN,
    maxUs: us[us.length - 1] ?? NaN,
  };
}

/** Checks that every connection took the path it was meant to (a failed connect may or may not have been decided). */
function checkPath(route: SetupPath, flows: { local: number; forwarded: number }, connected: number): void {
  const [right, wrong] = route === 'local' ? [flows.local, flows.forwarded] : [flows.forwarded, flows.local];
  if (wrong !== 0 || right < connected) {
    throw new Error(`setup: h0 decided ${flows.local} local and ${flows.forwarded} forwarded for ${connected} ${route} connections`);
  }
}

export async function runSetup(route: SetupPath, size: SetupSize): Promise<SetupSample> {
  const ports = portsTo(route === 'local' || route === 'direct' ? 0 : 1, size.connections + size.warmup);
  const kernel = route === 'kernel-forwarded';
  // Capacity plays no part here: many slots, no service time.
  const cluster = await Cluster.create({
    hosts: 2, policy: 'hash', dpr: route !== 'direct', slots: 256, serviceMs: 0, tag: 'bs',
    ...(kernel ? { networks: 'split' as const, config: { mode: 'direct' } } : {}),
  });
  try {
    if (route !== 'direct') await waitForTable(cluster);
    const before = route === 'direct' ? null : newFlowCounts(cluster);
    const out = await probe(cluster, ports, size.warmup);
    let newFlows: SetupSample['newFlows'] = null;
    if (before !== null) {
      const after = newFlowCounts(cluster);
      newFlows = { local: after.local - before.local, forwarded: after.forwarded - before.forwarded };
      checkPath(route, newFlows, out.connections - out.errors);
    }
    return { ...summarizeProbe(out), newFlows };
  } finally {
    await cluster.destroy();
  }
}
