// One addon Queue in a host's namespace, driven by line commands on stdin, so
// that a test can time control-plane calls while the queue's thread is busy:
//   -> {"cmd":"export"}   <- {"reply":"export","ms":12,"flows":3} or {..., "error":"..."}
//        ({"cmd":"export","family":6}: the IPv6 table)
//   -> {"cmd":"stats"}    <- {"reply":"stats","stats":{QueueStats}}
//   -> {"cmd":"stop"}     <- {"reply":"stop","ms":3,"stats":{QueueStats}}, then it exits
//   -> {"cmd":"snapshot","count":N,"mode":"async","file":F}  N flow snapshots as the daemon writes them
//        (export, then lib/flow-state's saveFlows to F), 100 ms apart, with the event loop's delay
//        measured throughout (mode sync: exportFlows on the event loop; none: the same waits, no snapshot)
//        <- {"reply":"snapshot","flows":..,"lagP99Ms":..,"lagMaxMs":..,"snapshotMs":[..]}
//   -> {"cmd":"block","ms":N}  the JavaScript thread sleeps N ms (the queue's thread goes on), then <- {"reply":"block"}
// With `ownLoad`, the load policy's engine counts this host that busy (peers send no reports: idle).
// On start it prints {"reply":"ready","tid":N}: the queue thread's id (its
// name is dpr-q<queueNum>), for per-thread accounting and cgroups.
// Run as: node queue-driver.js run '<DriverSpec as JSON>'
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { ChildProcess } from 'node:child_process';
import type { EngineOptions, NativeQueue, QueueOptions, QueueStats } from '../../lib/native';
import { parseIpv4 } from '../../lib/ipv4';
import { ipv6Words, parseIpv6 } from '../../lib/ipv6';
import type { Testbed } from './netns';
import { waitForLine } from './lines';

export const DRIVER_SCRIPT = path.join(__dirname, 'queue-driver.js');

/** EngineOptions in JSON form: addresses as text and plain arrays instead of typed arrays. */
export type EngineSpec = Omit<EngineOptions, 'serviceAddrs' | 'clusterAddrs' | 'serviceAddrs6' | 'clusterAddrs6' | 'servicePorts'> & {
  serviceAddrs: string[];
  clusterAddrs: string[];
  serviceAddrs6?: string[];
  clusterAddrs6?: string[];
  servicePorts: number[];
};

const addrs6 = (list: string[]): Uint32Array => Uint32Array.from(list.flatMap((a) => ipv6Words(parseIpv6(a))));

function engineOptions(spec: EngineSpec): EngineOptions {
  return {
    ...spec,
    serviceAddrs: Uint32Array.from(spec.serviceAddrs, parseIpv4),
    clusterAddrs: Uint32Array.from(spec.clusterAddrs, parseIpv4),
    serviceAddrs6: spec.serviceAddrs6 && addrs6(spec.serviceAddrs6),
    clusterAddrs6: spec.clusterAddrs6 && addrs6(spec.clusterAddrs6),
    servicePorts: Uint16Array.from(spec.servicePorts),
  };
}

export interface DriverSpec {
  queue: QueueOptions;
  engine: EngineSpec;
  lookupTable?: number[];
  /** Load policy: this host's load, as the load meter would calibrate it. */
  ownLoad?: number;
  /** A file of exported flow words (FLOW_WORDS each) to import before the queue starts. */
  flowsFile?: string;
}

export interface Reply {
  reply: string;
  ms?: number;
  flows?: number;
  error?: string;
  tid?: number;
  stats?: QueueStats;
}

export class QueueDriver {
  constructor(readonly child: ChildProcess, readonly tid: number) {}

  async send(cmd: string, timeoutMs = 20000, extra: Record<string, unknown> = {}): Promise<Reply> {
    const line = waitForLine(this.child, (l) => l.startsWith(`{"reply":"${cmd}"`), timeoutMs, `queue driver: ${cmd}`);
    this.child.stdin!.write(JSON.stringify({ cmd, ...extra }) + '\n');
    return JSON.parse(await line) as Reply;
  }
}

export async function startQueueDriver(bed: Testbed, host: string, spec: DriverSpec): Promise<QueueDriver> {
  const child = bed.spawn(host, [process.execPath, DRIVER_SCRIPT, 'run', JSON.stringify(spec)], { stdio: ['pipe', 'pipe', 'pipe'] });
  const ready = JSON.parse(await waitForLine(child, (l) => l.startsWith('{"reply":"ready"'), 5000, `queue driver on ${host}`)) as Reply;
  return new QueueDriver(child, ready.tid!);
}

/** The id of this process's thread named `name` (threads name themselves: dpr-q<N>). */
export function threadId(pid: number | 'self', name: string): number {
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    if (fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim() === name) return Number(tid);
  }
  throw new Error(`no thread named ${name}`);
}

/** As lib/flow-snapshots.ts saves, `count` times, with the event loop's delay recorded (1 ms resolution). */
export type SnapshotMode = 'none' | 'sync' | 'async';

async function snapshots(queue: NativeQueue, count: number, mode: SnapshotMode, file: string) {
  const { saveFlows } = await import('../../lib/flow-state');
  const { FLOW_WORDS } = await import('../../lib/native');
  const lag = monitorEventLoopDelay({ resolution: 1 });
  const times: number[] = [];
  let flows = 0;
  lag.enable();
  for (let i = 0; i < count; i++) {
    await new Promise((r) => setTimeout(r, 100));
    if (mode === 'none') continue;
    const t0 = performance.now();
    const words = mode === 'async' ? await queue.exportFlowsAsync() : queue.exportFlows();
    await saveFlows(file, words);
    times.push(performance.now() - t0);
    flows = words.length / FLOW_WORDS;
  }
  await new Promise((r) => setTimeout(r, 100));
  lag.disable();
  if (mode === 'none') flows = queue.stats().flows.syn;
  return { flows, lagP99Ms: lag.percentile(99) / 1e6, lagMaxMs: lag.max / 1e6, snapshotMs: times.length ? times : [0] };
}

async function run(spec: DriverSpec): Promise<void> {
  // Loaded here: the test process imports this file for the helpers above.
  const { Queue, FLOW_WORDS, FLOW_WORDS6 } = await import('../../lib/native');
  const queue = new Queue(spec.queue, engineOptions(spec.engine));
  if (spec.ownLoad !== undefined) queue.calibrateLoad(spec.ownLoad, -1);
  if (spec.flowsFile) {
    const b = fs.readFileSync(spec.flowsFile);
    queue.importFlows(new Uint32Array(b.buffer, b.byteOffset, b.byteLength / 4));
  }
  if (spec.lookupTable) queue.setLookupTable(Uint16Array.from(spec.lookupTable));
  queue.start();
  const print = (o: Reply): void => void process.stdout.write(JSON.stringify(o) + '\n');
  const timed = (f: () => void): number => {
    const t0 = process.hrtime.bigint();
    f();
    return Number(process.hrtime.bigint() - t0) / 1e6;
  };
  readline.createInterface({ input: process.stdin }).on('line', (line) => {
    const { cmd, ms, count, mode, file, family } = JSON.parse(line) as {
      cmd: string; ms?: number; count?: number; mode?: SnapshotMode; file?: string; family?: 4 | 6;
    };
    if (cmd === 'snapshot') {
      void snapshots(queue, count ?? 5, mode ?? 'async', file!).then((r) => print({ reply: 'snapshot', ...r }));
    } else if (cmd === 'export') {
      let flows = 0;
      let error: string | undefined;
      const ms = timed(() => {
        try {
          flows = family === 6 ? queue.exportFlows6().length / FLOW_WORDS6 : queue.exportFlows().length / FLOW_WORDS;
        } catch (err) {
          error = (err as Error).message;
        }
      });
      print({ reply: 'export', ms, flows, ...(error ? { error } : {}) });
    } else if (cmd === 'block') {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms ?? 1000);
      print({ reply: 'block' });
    } else if (cmd === 'stats') {
      print({ reply: 'stats', stats: queue.stats() });
    } else if (cmd === 'stop') {
      const ms = timed(() => queue.stop());
      print({ reply: 'stop', ms, stats: queue.stats() });
      process.exit(0);
    }
  });
  print({ reply: 'ready', tid: threadId('self', `dpr-q${spec.queue.queueNum}`) });
}

// Only with explicit arguments: the test runner loads every file under
// dist/test/ as a test, and then this must not bind a queue in the root namespace.
if (require.main === module && process.argv[2] === 'run') {
  run(JSON.parse(process.argv[3] ?? '') as DriverSpec).catch((err: unknown) => {
    process.stderr.write(`queue-driver: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
