// The benchmarks as data: each trial names its variants, the variant the
// others are compared with, and how one repetition of a variant runs.
// `bench/run.ts` runs every repetition in a fresh child process and prints
// the table; nothing here keeps state between repetitions.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BACKLOG, BIN, runDatapath, type DatapathSize, type DatapathVariant } from './datapath';

export interface TrialOptions {
  /** Smaller runs for a smoke test; numbers are rougher. */
  quick: boolean;
}

/** One repetition's result: `value` is what the table compares. */
export interface Measurement {
  value: number;
  /** A second view of the same run, shown beside it (e.g. wall-clock where `value` is per CPU-second). */
  secondary: number;
  /** How much work the value was measured over (packets, requests). */
  work: number;
  detail: unknown;
}

export interface Variant {
  name: string;
  description: string;
}

export interface Trial {
  name: string;
  description: string;
  /** What `value` counts, and what `secondary` counts. */
  unit: string;
  secondaryUnit: string;
  variants: readonly Variant[];
  /** Every variant's ratio is taken to this one. */
  baseline: string;
  /** The variant the goal is about and the least ratio to the baseline it should reach. */
  goal?: { variant: string; atLeast: number };
  /** What a reader needs to judge the numbers: rules, sizes, pinning. */
  setup(options: TrialOptions): string[];
  /** Runs once in the parent before any repetition (compiles helpers, checks tools). */
  prepare?(): void;
  /** One repetition of one variant; runs in a fresh child process. */
  run(variant: string, options: TrialOptions): Promise<Measurement>;
}

const ROOT = path.resolve(__dirname, '..', '..');

/** Harness and load generators run on this core; trials pin what they measure to another. */
export const HARNESS_CPU = '0';

const datapathVariants: readonly DatapathVariant[] = [
  { name: 'dpr-rewrite', consumer: 'dpr', mode: 'rewrite',
    description: 'dpr addon Queue, hash policy, table sends every flow to the peer: flow lookup, rewrite, NF_REPEAT + mark' },
  { name: 'dpr-local', consumer: 'dpr', mode: 'accept',
    description: 'dpr addon Queue, table [self]: flow lookup, NF_ACCEPT unchanged' },
  { name: 'c-rewrite', consumer: 'c', mode: 'rewrite',
    description: 'plain C consumer: recv, rewrite, one NF_REPEAT verdict sendto per packet' },
  { name: 'c-accept', consumer: 'c', mode: 'accept',
    description: 'plain C consumer: recv, one NF_ACCEPT verdict sendto per packet' },
  { name: 'no-queue', consumer: 'none', mode: 'accept',
    description: 'same rules with DROP in place of NFQUEUE, sender and kernel on one core: what the input side alone sustains (no consumer; not a drain)' },
];

function datapathSize(options: TrialOptions): DatapathSize {
  return { cycles: options.quick ? 2 : 3 };
}

function compileC(source: string, output: string, libs: string[]): void {
  const flags = libs.length ? execFileSync('pkg-config', ['--cflags', '--libs', ...libs], { encoding: 'utf8' }) : '';
  execFileSync('cc', ['-O2', '-Wall', '-Wextra', '-o', output, path.join(ROOT, source), ...flags.split(/\s+/).filter(Boolean)], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
}

function prepareDatapath(): void {
  if (os.cpus().length < 2) throw new Error('datapath: needs 2 CPUs (sender and consumer are pinned apart)');
  for (const tool of ['taskset', 'iptables-restore', 'cc', 'pkg-config']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      throw new Error(`datapath: '${tool}' is missing (run: npm run setup)`);
    }
  }
  if (!existsSync(BIN.dprConsumer)) throw new Error(`datapath: ${BIN.dprConsumer} is missing (run: npm run build:ts)`);
  mkdirSync(path.dirname(BIN.plainConsumer), { recursive: true });
  // Built here, not by binding.gyp: the yardstick is no part of the addon.
  compileC('bench/c/plain_consumer.c', BIN.plainConsumer, ['libnetfilter_queue', 'libmnl']);
  compileC('bench/c/syn_flood.c', BIN.synFlood, []);
}

const datapath: Trial = {
  name: 'datapath',
  description: 'Packets per second through one NFQUEUE queue: dpr\'s addon vs a plain C consumer, same rules, same packets',
  unit: 'packets per consumer CPU-second',
  secondaryUnit: 'packets per wall-clock second',
  variants: datapathVariants,
  baseline: 'c-rewrite',
  goal: { variant: 'dpr-rewrite', atLeast: 0.9 },
  setup(options) {
    const { cycles } = datapathSize(options);
    return [
      `Sender: bench/c/syn_flood (raw socket, sendmmsg of 256) in its own namespace, pinned to CPU 0, harness on CPU 0 too; TCP SYNs to 198.18.0.1:80 over ${BACKLOG} distinct 4-tuples, the same ones every cycle.`,
      'Host under test: raw PREROUTING `mark 0x100/0x100 -> CT --notrack`, `mark 0x100/0x100 -> ACCEPT`, `-p tcp -d 198.18.0.1 --dport 80 -j NFQUEUE --queue-num 0` (no --queue-bypass); filter INPUT drops tcp/80 (where the local path ends); blackhole route for the peer 198.18.0.2 (where the rewrite path ends, after routing).',
      `Both consumers configure the queue alike: copy 0xffff, maxlen ${BACKLOG}, rcvbuf 64 MiB, FAIL_OPEN|GSO; consumer pinned to CPU 1. dpr: batchSize 64, lookup table 65537 slots, flow table 2^20, hash policy. Rewrite: dst 198.18.0.1:80 -> 198.18.0.2:20000, incremental checksums, NF_REPEAT + mark 0x100.`,
      `Method (fill and drain, ${cycles} cycles per repetition): the consumer binds the queue; per cycle it is stopped (SIGSTOP), the sender queues ${BACKLOG} SYNs (the most this kernel holds in one queue), and on SIGCONT the consumer drains them alone on its core. Cycle 1 meets every flow first (dpr inserts), later cycles find them.`,
      'Main number: packets per CPU-second of the consumer\'s threads (/proc/PID/task/*/schedstat) over the whole drain; it includes the kernel\'s verdict work done in the consumer\'s sendmsg (reinject, rules, routing). It is what a dedicated core would do, and holds on a busy machine. Beside it: packets per wall-clock second while queue_total (/proc/PID/net/netfilter/nfnetlink_queue, sampled every ~1 ms) falls from 90% to 10% of the backlog; it drops when other work shares the core (see waitSeconds in the JSON). no-queue: packets per CPU-second of the sender (send + receive + drop all run in its context) and per wall-clock second of sending.',
      'Why not a steady flood: the veth delivers in the sender\'s softirq, so the sender\'s core also pays the kernel\'s enqueue work and offered only ~280k SYN/s on this machine, all of which dpr took (it measured the sender).',
    ];
  },
  prepare: prepareDatapath,
  async run(variant, options) {
    const v = datapathVariants.find((d) => d.name === variant);
    if (v === undefined) throw new Error(`datapath: no variant '${variant}'`);
    const s = await runDatapath(v, datapathSize(options));
    return { value: s.cpuPps, secondary: s.pps, work: s.packets, detail: s };
  },
};

export const trials: readonly Trial[] = [datapath];

export function findTrial(name: string): Trial {
  const t = trials.find((x) => x.name === name);
  if (t === undefined) throw new Error(`no trial '${name}' (have: ${trials.map((x) => x.name).join(', ')})`);
  return t;
}
