// One addon Queue in a host's namespace, driven by a test without a daemon.
// A netns belongs to a process, so each queue runs in a child node started
// with `ip netns exec` (Testbed.spawn); the test talks to it by signals and
// reads lines from its stdout:
//   "ready"          once the queue is bound and its thread runs
//   "stats {json}"   on SIGUSR2 (a QueueStats snapshot), and once more on
//                    SIGTERM after queue.stop(), before it exits
// Run as: node queue-runner.js run '<RunnerSpec as JSON>'
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { EngineOptions, QueueOptions, QueueStats } from '../../lib/native';
import { parseIpv4 } from '../../lib/ipv4';
import type { Testbed } from './netns';
import { waitForLine } from './lines';

export const RUNNER_SCRIPT = path.join(__dirname, 'queue-runner.js');

/** EngineOptions in JSON form: dotted addresses and plain arrays instead of typed arrays. */
export type EngineSpec = Omit<EngineOptions, 'serviceAddrs' | 'clusterAddrs' | 'servicePorts'> & {
  serviceAddrs: string[];
  clusterAddrs: string[];
  servicePorts: number[];
};

export interface RunnerSpec {
  queue: QueueOptions;
  engine: EngineSpec;
  /** The hash policy's lookup table (slot -> host id); none = every flow local. */
  lookupTable?: number[];
}

export function engineOptions(spec: EngineSpec): EngineOptions {
  return {
    ...spec,
    serviceAddrs: Uint32Array.from(spec.serviceAddrs, parseIpv4),
    clusterAddrs: Uint32Array.from(spec.clusterAddrs, parseIpv4),
    servicePorts: Uint16Array.from(spec.servicePorts),
  };
}

const STATS = 'stats ';

/** The test's handle on a runner process. */
export class QueueRunner {
  constructor(
    readonly host: string,
    readonly child: ChildProcess,
  ) {}

  /** A counter snapshot from the running queue. */
  async stats(): Promise<QueueStats> {
    const line = waitForLine(this.child, (l) => l.startsWith(STATS), 5000, `stats of the queue on ${this.host}`);
    this.child.kill('SIGUSR2');
    return JSON.parse((await line).slice(STATS.length)) as QueueStats;
  }

  /** Stops the queue the orderly way (every held packet gets a verdict) and returns its last counters. */
  async stop(): Promise<QueueStats> {
    const line = waitForLine(this.child, (l) => l.startsWith(STATS), 5000, `final stats of the queue on ${this.host}`);
    this.child.kill('SIGTERM');
    return JSON.parse((await line).slice(STATS.length)) as QueueStats;
  }

  /** Kills the process with no goodbye, as a crash would; resolves once it is gone. */
  async kill(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.kill('SIGKILL');
    await gone;
  }
}

export async function startQueueRunner(bed: Testbed, host: string, spec: RunnerSpec): Promise<QueueRunner> {
  const child = bed.spawn(host, [process.execPath, RUNNER_SCRIPT, 'run', JSON.stringify(spec)]);
  await waitForLine(child, (l) => l === 'ready', 5000, `queue ${spec.queue.queueNum} on ${host}`);
  return new QueueRunner(host, child);
}

async function run(spec: RunnerSpec): Promise<void> {
  // Loaded here, not at the top: the test process imports this file for the
  // helpers above and has no use for the addon itself.
  const { Queue } = await import('../../lib/native');
  const queue = new Queue(spec.queue, engineOptions(spec.engine));
  if (spec.lookupTable) queue.setLookupTable(Uint16Array.from(spec.lookupTable));
  queue.start();
  // The queue's thread does not hold the event loop open; this does.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  const print = (): void => {
    process.stdout.write(STATS + JSON.stringify(queue.stats()) + '\n');
  };
  process.on('SIGUSR2', print);
  process.on('SIGTERM', () => {
    queue.stop();
    print();
    clearInterval(keepAlive);
    process.exitCode = 0;
  });
  process.stdout.write('ready\n');
}

// Only with explicit arguments: the test runner loads every file under
// dist/test/ as a test, and then this must not bind a queue in the root
// namespace.
if (require.main === module && process.argv[2] === 'run') {
  Promise.resolve()
    .then(() => run(JSON.parse(process.argv[3] ?? '') as RunnerSpec))
    .catch((err: unknown) => {
      const e = err as Error & { code?: string; errno?: number };
      process.stderr.write(`queue-runner: ${e.message} (code ${e.code ?? '-'}, errno ${e.errno ?? 0})\n`);
      process.exit(1);
    });
}
