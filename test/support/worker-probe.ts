// A worker thread that loads the addon (and, in a namespace, runs a Queue
// with a decision callback) and is then terminated, while the main thread
// goes on using the addon. Prints one JSON line: what the kernel says about
// queue 0 after the worker ended, and the error the main thread then got.
// Run as: node worker-probe.js run '{"queue":true|false}'
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import fs from 'node:fs';
import v8 from 'node:v8';
import vm from 'node:vm';

interface ProbeSpec {
  queue: boolean;
}

const QUEUES = '/proc/net/netfilter/nfnetlink_queue';
const queues = (): string => (fs.existsSync(QUEUES) ? fs.readFileSync(QUEUES, 'utf8').trim() : '');

/** A collection now, whatever V8's heuristics would do (the flag, then gc from a fresh context). */
function collectGarbage(): void {
  v8.setFlagsFromString('--expose-gc');
  (vm.runInNewContext('gc') as () => void)();
}

/** Starts a Queue and keeps no reference to it: a started Queue must stay bound until stop(). */
function startQueueInWorker(): void {
  const native = require('../../lib/native') as typeof import('../../lib/native');
  const addrs = Uint32Array.of(0xc6120001, 0xc6120002);
  const queue = new native.Queue(
    { queueNum: 0, maxLen: 64, rcvBufBytes: 1 << 20, batchSize: 8 },
    { role: 'entry', policy: 'load', self: 0, serviceAddrs: addrs, clusterAddrs: addrs, servicePorts: Uint16Array.of(80),
      peerPortBase: 20000, forwardMark: 0x100, serveMark: 0x200, maxFlows: 64, maxEmbryonic: 64,
      timeouts: { synMs: 1000, establishedMs: 1000, closingMs: 1000 } },
  );
  queue.start();
}

async function main(spec: ProbeSpec): Promise<void> {
  const native = await import('../../lib/native');
  const worker = new Worker(__filename, { workerData: spec });
  await new Promise<void>((resolve, reject) => {
    worker.once('message', () => resolve());
    worker.once('error', reject);
  });
  // Bound before 'ready' (Start waits for the kernel's ack). Three
  // fresh-clone runs once read an empty list here: the worker kept no
  // reference to its Queue, and a collection stopped it (now start() pins
  // it; the worker collects on purpose). Still, look again for up to 3 s,
  // and say how long it took.
  let whileRunning = queues();
  const t0 = Date.now();
  while (whileRunning === '' && Date.now() - t0 < 3000) {
    await new Promise((r) => setTimeout(r, 20));
    whileRunning = queues();
  }
  const boundAfterMs = Date.now() - t0;
  await worker.terminate();
  let error = '';
  try {
    new native.Engine({} as never);
  } catch (err) {
    const e = err as Error & { code?: string };
    error = `${e.name} ${e.code ?? ''}`.trim();
  }
  process.stdout.write(JSON.stringify({ whileRunning, boundAfterMs, afterTerminate: queues(), error }) + '\n');
}

if (!isMainThread) {
  const spec = workerData as ProbeSpec;
  if (spec.queue) {
    startQueueInWorker();
    collectGarbage();
    setInterval(() => undefined, 1000); // the worker stays until terminated
    // Finalizers of collected objects run after the collection, on the loop.
    setTimeout(() => parentPort!.postMessage('ready'), 200);
  } else {
    require('../../lib/native');
    parentPort!.postMessage('ready');
  }
} else if (require.main === module && process.argv[2] === 'run') {
  main(JSON.parse(process.argv[3] ?? '{}') as ProbeSpec).catch((err: unknown) => {
    process.stderr.write(`worker-probe: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
