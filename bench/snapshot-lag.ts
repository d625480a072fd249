// One repetition of the snapshot trial (issue 14): how long the daemon's
// event loop stalls while a flow snapshot of 1M flows is taken (what
// lib/flow-snapshots.ts does every flows.snapshotMs while traffic passes).
// An entry Queue (test/support/queue-driver.ts) in a namespace of its own
// imports 1M flows before it starts, then takes snapshots as the daemon
// does: the export (on the event loop, `sync`, or waited for on a worker
// thread, `async`, as the daemon does now) and the file write, while
// perf_hooks' monitorEventLoopDelay records the loop's delay (1 ms steps).
// `none` waits the same without snapshots: the delay a busy machine causes
// anyway.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Engine, type EngineOptions } from '../lib/native';
import { parseIpv4 } from '../lib/ipv4';
import { Testbed } from '../test/support/netns';
import { tcpPacket } from './scale';
import { startQueueDriver, type DriverSpec, type SnapshotMode } from '../test/support/queue-driver';

const HOST = '198.18.0.1';
const TIMEOUTS = { synMs: 3_600_000, establishedMs: 3_600_000, closingMs: 3_600_000 };

export interface SnapshotSample {
  flows: number;
  lagP99Ms: number;
  lagMaxMs: number;
  /** Median wall time of one snapshot (export and write). */
  snapshotMs: number;
}

/** The exported words of `count` SYN-only flows to HOST:80, built with an Engine in this process. */
function flowWords(count: number): Uint32Array {
  const service = parseIpv4(HOST);
  const options: EngineOptions = {
    role: 'entry', policy: 'hash', self: 0, serviceAddrs: Uint32Array.of(service), clusterAddrs: Uint32Array.of(service),
    servicePorts: Uint16Array.of(80), peerPortBase: 20000, forwardMark: 0x100, serveMark: 0x200,
    maxFlows: 1 << 21, maxEmbryonic: 1 << 21, timeouts: TIMEOUTS,
  };
  const engine = new Engine(options);
  engine.setLookupTable(new Uint16Array(251));
  const client = parseIpv4('198.19.0.0');
  for (let i = 0; i < count; i++) {
    engine.process(tcpPacket((client + Math.floor(i / 50_000)) >>> 0, 10_000 + (i % 50_000), service, 80, 0x02), false, 1000);
  }
  return engine.exportFlows(1000);
}

export async function runSnapshotLag(count: number, mode: SnapshotMode, snapshots: number): Promise<SnapshotSample> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpr-bench-snapshot-'));
  const bed = Testbed.create([{ name: 'host', addrs: [`${HOST}/24`] }], 'sn');
  try {
    const flowsFile = path.join(dir, 'flows.bin');
    const words = flowWords(count);
    fs.writeFileSync(flowsFile, Buffer.from(words.buffer, words.byteOffset, words.byteLength));
    const spec: DriverSpec = {
      queue: { queueNum: 0, maxLen: 1024, rcvBufBytes: 1 << 20, batchSize: 64 },
      engine: {
        role: 'entry', policy: 'hash', self: 0, serviceAddrs: [HOST], clusterAddrs: [HOST], servicePorts: [80],
        peerPortBase: 20000, forwardMark: 0x100, serveMark: 0x200, maxFlows: 1 << 21, maxEmbryonic: 1 << 21, timeouts: TIMEOUTS,
      },
      lookupTable: [0],
      flowsFile,
    };
    const driver = await startQueueDriver(bed, 'host', spec);
    try {
      const r = await driver.send('snapshot', 120_000, { count: snapshots, mode, file: path.join(dir, 'snapshot') });
      const times = [...(r as unknown as { snapshotMs: number[] }).snapshotMs].sort((a, b) => a - b);
      const out = r as unknown as { flows: number; lagP99Ms: number; lagMaxMs: number };
      if (out.flows < count) throw new Error(`snapshot: only ${out.flows} of ${count} flows in the table`);
      return { flows: out.flows, lagP99Ms: out.lagP99Ms, lagMaxMs: out.lagMaxMs, snapshotMs: times[Math.floor(times.length / 2)]! };
    } finally {
      await driver.send('stop', 30_000).catch(() => undefined);
      driver.child.kill('SIGKILL');
    }
  } finally {
    await bed.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
