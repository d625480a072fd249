// One addon Queue in a host's namespace, driven by a test without a daemon.
// A netns belongs to a process, so each queue runs in a child node started
// with `ip netns exec` (Testbed.spawn); the test talks to it by signals and
// reads lines from its stdout:
//   "ready"          once the queue is bound and its thread runs
//   "stats {json}"   on SIGUSR2 (a QueueStats snapshot), and once more on
//                    SIGTERM after queue.stop(), before it exits
// Run as: node queue-runner.js run '<RunnerSpec as JSON>'
//
// The queue is configured from a dpr configuration file by the daemon's own
// code (lib/plan.ts), so the test drives exactly what the daemon would run.
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { QueueStats, Role } from '../../lib/native';
import type { Testbed } from './netns';
import { waitForLine } from './lines';

export const RUNNER_SCRIPT = path.join(__dirname, 'queue-runner.js');

export interface RunnerSpec {
  /** A dpr configuration file (for this host: its `self`). */
  config: string;
  role: Role;
  /** The hash policy's lookup table (slot -> host id); none = every flow local. */
  lookupTable?: number[];
  /** Load policy: this host's load as the load meter would calibrate it (absent: 0, every flow local while peers send nothing). */
  ownLoad?: number;
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
  await waitForLine(child, (l) => l === 'ready', 10000, `${spec.role} queue on ${host}`);
  return new QueueRunner(host, child);
}

async function run(spec: RunnerSpec): Promise<void> {
  // Loaded here, not at the top: the test process imports this file for the
  // helpers above and has no use for the addon itself.
  const { Queue } = await import('../../lib/native');
  const { loadConfig } = await import('../../lib/config');
  const { engineOptions, queueOptions } = await import('../../lib/plan');
  const config = loadConfig({ file: spec.config });
  const queue = new Queue(queueOptions(config, spec.role), engineOptions(config, spec.role));
  if (spec.ownLoad !== undefined) queue.calibrateLoad(spec.ownLoad, -1);
  if (spec.lookupTable) queue.setLookupTable(Uint16Array.from(spec.lookupTable));
  queue.start();
  // On one L2 segment the engines take forwarded packets only from their
  // entry host's MAC; the daemon reads the neighbour table when a peer comes
  // up (lib/neighbours). No heartbeats here: read it often instead.
  const { PeerMacs } = await import('../../lib/neighbours');
  const macs = config.peers.routersBetween === 0 ? new PeerMacs(config.hosts, config.self, (t) => queue.setPeerMacs(t)) : null;
  macs?.refresh();
  // The queue's thread does not hold the event loop open; this does.
  const keepAlive = setInterval(() => macs?.refresh(), 100);
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
