// What the cluster trial should give if routing cost nothing: a small
// discrete-event model of the same closed loop (20 wrk connections, 4 hosts of
// CLUSTER.slots FIFO slots, CLUSTER.serviceMs plus 1 ms per 16 KB of the
// SPECweb96 mix, 1 ms between a response and the next request), run with
// each way of picking a host. It separates what a policy decides from what
// its implementation costs: where the measurement sits close to the model,
// the policy is the limit.
//
//   node dist/bench/cluster-model.js
//
// Policies: fixed (each connection keeps its host: no dpr), random (the hash
// policy: any host, whatever its load), least (HAProxy leastconn: the host
// with the fewest outstanding requests, known exactly), and load (dpr's load
// policy: own and peers' loads as last reported every `reportMs`, plus what
// this host sent each peer since, forward when own - least > threshold).
import { CLUSTER } from './cluster-mix';

interface Host {
  busy: number;
  queue: number[];
  reported: number;
  sent: number[];
}

const SIM_MS = 300_000;
const THINK_MS = 1;

/** A seeded generator (xorshift32), so every run of the model gives the same numbers. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s / 0x100000000;
  };
}

function specwebBytes(r: () => number): number {
  const x = r();
  const unit = x < 0.35 ? 102 : x < 0.85 ? 1024 : x < 0.99 ? 10240 : 102400;
  return unit * (1 + Math.floor(r() * 9));
}

/** A time-ordered event list (insertion keeps it sorted; a few thousand events at most). */
class Events {
  private readonly list: Array<[number, () => void]> = [];
  add(at: number, f: () => void): void {
    let i = this.list.length;
    this.list.push([at, f]);
    while (i > 0 && this.list[i - 1]![0] > at) {
      this.list[i] = this.list[i - 1]!;
      i--;
    }
    this.list[i] = [at, f];
  }
  next(): [number, () => void] | undefined {
    return this.list.shift();
  }
}

/** Responses per second of the closed loop when `pick` chooses each connection's host. */
function simulate(entries: readonly number[], pick: (hosts: Host[], client: number, entry: number) => number, reportMs = 0): number {
  const r = rng(7);
  const hosts: Host[] = Array.from({ length: CLUSTER.hosts }, () => ({ busy: 0, queue: [], reported: 0, sent: Array(CLUSTER.hosts).fill(0) }));
  const ev = new Events();
  let now = 0;
  let done = 0;
  const begin = (h: Host, client: number): void => {
    h.busy++;
    ev.add(now + CLUSTER.serviceMs + Math.floor(specwebBytes(r) / 16384), () => {
      h.busy--;
      done++;
      const next = h.queue.shift();
      if (next !== undefined) begin(h, next);
      ev.add(now + THINK_MS, () => send(client));
    });
  };
  const send = (client: number): void => {
    const h = hosts[pick(hosts, client, entries[client]!)]!;
    if (h.busy < CLUSTER.slots) begin(h, client);
    else h.queue.push(client);
  };
  const report = (): void => {
    for (const h of hosts) {
      h.reported = h.busy + h.queue.length;
      h.sent.fill(0);
    }
    if (reportMs > 0) ev.add(now + reportMs, report);
  };
  report();
  entries.forEach((_, c) => send(c));
  for (let e = ev.next(); e !== undefined && now < SIM_MS; e = ev.next()) {
    now = e[0];
    e[1]();
  }
  return done / (SIM_MS / 1000);
}

const outstanding = (h: Host) => h.busy + h.queue.length;

function loadPolicy(threshold: number, liveOwnLoad: boolean) {
  return (hosts: Host[], _client: number, entry: number): number => {
    let best = -1;
    let bestLoad = Infinity;
    hosts.forEach((h, i) => {
      const l = h.reported + hosts[entry]!.sent[i]!;
      if (i !== entry && l < bestLoad) [best, bestLoad] = [i, l];
    });
    const own = liveOwnLoad ? outstanding(hosts[entry]!) : hosts[entry]!.reported;
    if (best < 0 || own - bestLoad <= threshold) return entry;
    hosts[entry]!.sent[best]!++;
    return best;
  };
}

function main(): void {
  const split = (counts: readonly number[]) => counts.flatMap((n, host) => Array<number>(n).fill(host));
  const balanced = split(CLUSTER.balanced);
  const skewed = split(CLUSTER.skewed);
  const r = rng(11);
  const base = simulate(balanced, (_h, _c, entry) => entry);
  const least = (hosts: Host[]) => hosts.reduce((b, h, i) => (outstanding(h) < outstanding(hosts[b]!) ? i : b), 0);
  const rows: Array<[string, number]> = [
    ['no-dpr-balanced (fixed)', base],
    ['no-dpr-skewed (fixed)', simulate(skewed, (_h, _c, entry) => entry)],
    ['dpr-hash (random host per connection)', simulate(skewed, () => Math.floor(r() * CLUSTER.hosts))],
    ['haproxy (leastconn, exact)', simulate(skewed, least)],
    ...[100, 10].map((ms): [string, number] => [`dpr-load skewed, reports every ${ms} ms, threshold ${CLUSTER.loadThreshold}`, simulate(skewed, loadPolicy(CLUSTER.loadThreshold, false), ms)]),
    [`dpr-load skewed, reports every 100 ms, own load live, threshold 1`, simulate(skewed, loadPolicy(1, true), 100)],
  ];
  process.stdout.write(`closed loop: ${CLUSTER.hosts} hosts x ${CLUSTER.slots} slots, ${CLUSTER.serviceMs} ms + 1 ms/16 KB, SPECweb96 mix, ${balanced.length} connections\n`);
  for (const [name, rps] of rows) process.stdout.write(`${name.padEnd(66)} ${rps.toFixed(0).padStart(5)} req/s  ${(rps / base).toFixed(2)}x\n`);
}

if (require.main === module) main();
