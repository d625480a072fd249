// The dpr side of the data-path bench: one addon Queue as an entry host
// (host 0) with the hash policy, its lookup table forcing every new flow to
// host 1 (`--path rewrite`: the forward path) or to itself (`--path local`:
// accept). Prints "ready" once bound; on SIGTERM prints one JSON line with the
// packet count and the full stats() snapshot. `--family 6`: the hosts have
// IPv6 addresses too, and the SYNs come over IPv6.
//
//   node dist/bench/datapath-dpr.js --queue 0 --path rewrite|local [--family 4|6] [--maxlen L] [--rcvbuf BYTES]
import { parseIpv4 } from '../lib/ipv4';
import { ipv6Words, parseIpv6 } from '../lib/ipv6';
import { Queue, type EngineOptions, type QueueOptions, type QueueStats } from '../lib/native';
import { DATAPATH } from './datapath-config';

// A prime, like the Maglev tables the policy will push; its size decides how
// much of the cache the per-packet lookup touches.
const LOOKUP_SLOTS = 65537;

interface Args {
  queueNum: number;
  path: 'rewrite' | 'local';
  maxLen: number;
  rcvBufBytes: number;
  family: 4 | 6;
}

const USAGE = 'usage: datapath-dpr --queue N --path rewrite|local [--family 4|6] [--maxlen L] [--rcvbuf BYTES]';

function parseArgs(argv: string[]): Args {
  const args: Args = { queueNum: 0, path: 'rewrite', maxLen: 4096, rcvBufBytes: 8 << 20, family: 4 };
  let sawPath = false;
  for (let i = 0; i < argv.length; i += 2) {
    const [key, value] = [argv[i], argv[i + 1] ?? ''];
    const num = /^\d+$/.test(value) ? Number(value) : NaN;
    if (key === '--path' && (value === 'rewrite' || value === 'local')) [args.path, sawPath] = [value, true];
    else if (key === '--queue' && num <= 65535) args.queueNum = num;
    else if (key === '--family' && (num === 4 || num === 6)) args.family = num;
    else if (key === '--maxlen' && num >= 1) args.maxLen = num;
    else if (key === '--rcvbuf' && num >= 4096 && num < 2 ** 31) args.rcvBufBytes = num;
    else throw new Error(`${USAGE} (bad '${key} ${value}')`);
  }
  if (!sawPath) throw new Error(USAGE);
  return args;
}

function engineOptions(family: 4 | 6): EngineOptions {
  const hosts = [parseIpv4(DATAPATH.self), parseIpv4(DATAPATH.peer)];
  const words6 = Uint32Array.from([DATAPATH.self6, DATAPATH.peer6].flatMap((a) => ipv6Words(parseIpv6(a))));
  const hosts6 = family === 6 ? { serviceAddrs6: words6, clusterAddrs6: words6 } : {};
  return {
    role: 'entry',
    policy: 'hash',
    self: 0,
    serviceAddrs: Uint32Array.from(hosts),
    clusterAddrs: Uint32Array.from(hosts),
    ...hosts6,
    servicePorts: Uint16Array.of(DATAPATH.servicePort),
    peerPortBase: DATAPATH.peerPortBase,
    forwardMark: DATAPATH.forwardMark,
    serveMark: DATAPATH.serveMark,
    maxFlows: 1 << 20,
    maxEmbryonic: 1 << 18,
    // Every cycle revisits the same flows within seconds: nothing expires mid-run.
    timeouts: { synMs: 30_000, establishedMs: 300_000, closingMs: 10_000 },
  };
}

function queueOptions(args: Args): QueueOptions {
  return { queueNum: args.queueNum, maxLen: args.maxLen, rcvBufBytes: args.rcvBufBytes, batchSize: 64 };
}

function main(): void {
  const args = parseArgs(process.argv.slice(2));
  const queue = new Queue(queueOptions(args), engineOptions(args.family));
  queue.setLookupTable(new Uint16Array(LOOKUP_SLOTS).fill(args.path === 'rewrite' ? 1 : 0));
  queue.start();
  // Nothing runs in JavaScript until SIGTERM: the bench times the queue
  // thread from outside, as it does the C consumer.
  const idle = setInterval(() => undefined, 1 << 30);
  process.stdout.write('ready\n');
  process.once('SIGTERM', () => {
    clearInterval(idle);
    queue.stop();
    const stats: QueueStats = queue.stats();
    process.stdout.write(`${JSON.stringify({ packets: stats.packets, stats })}\n`);
  });
}

main();
