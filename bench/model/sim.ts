// The cluster trial's closed loop as a discrete-event model (bench/cluster-model.ts
// runs it): wrk connections that each send a request, wait for the answer,
// think 1 ms and send the next on a new connection; hosts with a number of
// FIFO slots, each request taking serviceMs plus 1 ms per 16 KB of the
// SPECweb96 mix (what tools/web-server.ts does). A policy (bench/model/policies.ts)
// places each new connection, seeing what a dpr host can know: its own load
// exactly, its peers' loads as last reported plus the connections it sent
// them since, idle tokens it was given. Routing itself costs nothing here
// unless a knob says so, which separates what a policy decides from what its
// implementation costs.
import { rng, type Rng } from './rng';

export interface HostSpec {
  /** Requests worked on at once (tools/web-server.ts --slots). */
  slots: number;
  /** hosts[].weight: what a weighted policy divides load by. */
  weight: number;
}

export interface Scenario {
  hosts: readonly HostSpec[];
  /** Closed-loop connections per entry host (wrk processes dialling that host's address). */
  entries: readonly number[];
  /** Simulated time (default LOOP.simMs); big clusters reach enough requests sooner. */
  simMs?: number;
}

export interface Knobs {
  /** Interval of a host's load reports (its heartbeat); each host's timer has its own phase. */
  reportMs: number;
  /** 'timer': one report per interval; 'change': also when the load changed, at most one per minGapMs. */
  reportMode: 'timer' | 'change';
  minGapMs: number;
  /** How old a report's value is when it arrives (measured before sending, network). */
  reportAgeMs: number;
  /** Time a new connection waits for its decision (load policy: the crossing into JavaScript). */
  decisionMs: number;
  /** One hop between hosts: a forwarded or bounced SYN, an idle token. */
  hopMs: number;
  /**
   * Share of reports whose identity the entry host misreads between
   * decisions, so that it forgets what it sent that peer since (today's
   * daemon keys a report by its arrival time rounded to 10 ms, from two
   * clocks; see docs/design-notes.md). 0: reports are told apart exactly.
   */
  flickerShare: number;
  /**
   * Service times stretched by this factor: what the CPU the routers take
   * from the machine's two shared cores costs the hosts' timers (1: free).
   */
  serviceScale: number;
  /**
   * How an entry host estimates a peer: 'sends' = last report + connections
   * sent there since (today's daemon); 'net' = also minus those of its own
   * forwarded connections that closed since (it sees their FIN).
   */
  estimator: 'sends' | 'net';
  /**
   * Sampled peers: each host hears every report of `sample` peers it picks
   * (again every 2 s) and draws its random second choice among them; other
   * peers' reports reach it once per `slowMs`. 0: every host hears every
   * report (all-to-all).
   */
  sample: number;
  slowMs: number;
  /**
   * How the sample is drawn: 'rotating', at random again every 2 s (the
   * proposal), or 'ring', once, the `sample` hosts before each host on a
   * ring over a random order (native/peer_link.cc's watchers: a host hears
   * its subjects, the hosts it watches).
   */
  sampling: 'rotating' | 'ring';
}

export const DEFAULT_KNOBS: Knobs = { reportMs: 100, reportMode: 'timer', minGapMs: 10, reportAgeMs: 0, decisionMs: 0, hopMs: 0, flickerShare: 0, serviceScale: 1, estimator: 'sends', sample: 0, slowMs: 1000, sampling: 'rotating' };

/** How long a host keeps its sample of peers (Knobs.sample) before drawing another. */
const SAMPLE_MS = 2000;

/**
 * simMs: 150 s of the loop is ~75,000 requests per run at 4 hosts. 300 s
 * moved no throughput ratio by more than 0.01 and p99 ratios by up to 0.06,
 * at twice the time (test/26 regenerates every table).
 */
export const LOOP = { serviceMs: 40, thinkMs: 1, simMs: 150_000, warmupMs: 5_000 } as const;

/** What an entry host knows of one peer. */
export interface PeerEstimate {
  reported: number;
  sentSince: number;
  /** This host's own connections forwarded there that closed since that report. */
  closedSince: number;
  /** Today's daemon may misread this report's identity (Knobs.flickerShare). */
  flickers: boolean;
}

/** Everything a policy may read or change when it places a connection. */
export interface View {
  readonly self: number;
  readonly n: number;
  readonly weights: readonly number[];
  readonly slots: readonly number[];
  readonly r: Rng;
  /** This host's outstanding requests (busy + queued): exact, as sock_diag counts them. */
  own(): number;
  /** Another host's load as this host estimates it: last report + what it sent there since. */
  estimate(peer: number): number;
  /** The host the Maglev table names for this connection: a random host by weight (the client port differs every time). */
  maglev(): number;
  /** A uniformly random host other than this one. */
  randomPeer(): number;
  /** Uses up an idle token this host holds (Join-Idle-Queue); -1 when it has none. */
  takeToken(): number;
  /** The exact outstanding count of any host: only a central balancer knows it. */
  exact(host: number): number;
}

export interface Policy {
  name: string;
  decide(v: View): number;
  /** A serving host that got a forwarded SYN may send it on once; -1 keeps it. */
  bounce?(v: View, entry: number): number;
  /** Join-Idle-Queue: how many peers a host tells when a slot falls free (0: no tokens). */
  tokens?: number;
}

export interface Result {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** Share of responses the busiest host served (0.25 is even over 4 equal hosts). */
  busiestShare: number;
  /** Share of connections served elsewhere than their entry host. */
  forwardedShare: number;
  /** Load reports each host sent per second (each to every peer). */
  reportsPerHostPerSecond: number;
  /** Load-report datagrams each host received per second. */
  reportsInPerHostPerSecond: number;
  /** Idle tokens each host sent per second (Join-Idle-Queue). */
  tokensPerHostPerSecond: number;
}

interface Request {
  client: number;
  entry: number;
  /** Where the entry host sent it (a bounce may move it on; the entry does not know). */
  routedTo: number;
  sentAt: number;
}

interface Host {
  busy: number;
  queue: Array<() => void>;
  served: number;
  lastReported: number;
  lastReportAt: number;
  reportPending: boolean;
  lastSlowAt: number;
  /** The peers whose every report this host hears (Knobs.sample). */
  sample: number[];
  estimates: PeerEstimate[];
  tokens: number[];
}

interface Event {
  at: number;
  seq: number;
  fn: () => void;
}

/** A binary heap of events ordered by time, then by insertion (runs repeat exactly). */
class Events {
  private readonly heap: Event[] = [];
  private count = 0;
  get size(): number {
    return this.heap.length;
  }
  add(at: number, fn: () => void): void {
    const h = this.heap;
    const e: Event = { at, seq: this.count++, fn };
    let i = h.length;
    h.push(e);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(e, h[p]!)) break;
      h[i] = h[p]!;
      i = p;
    }
    h[i] = e;
  }
  /** Time of the next event; the caller then runs pop(). */
  peek(): number {
    return this.heap[0]!.at;
  }
  pop(): () => void {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= h.length) break;
        const r = l + 1;
        const c = r < h.length && before(h[r]!, h[l]!) ? r : l;
        if (!before(h[c]!, last)) break;
        h[i] = h[c]!;
        i = c;
      }
      h[i] = last;
    }
    return top.fn;
  }
}

const before = (a: Event, b: Event): boolean => a.at < b.at || (a.at === b.at && a.seq < b.seq);

/** SPECweb96 class and size, as bench/wrk/specweb96.lua draws them. */
function specwebBytes(r: Rng): number {
  const x = r();
  const unit = x < 0.35 ? 102 : x < 0.85 ? 1024 : x < 0.99 ? 10240 : 102400;
  return unit * (1 + Math.floor(r() * 9));
}

/** Runs the closed loop for the scenario's time and measures it after LOOP.warmupMs. */
export function simulate(s: Scenario, policy: Policy, knobs: Partial<Knobs> = {}, seed = 7): Result {
  return new ClosedLoop(s, policy, { ...DEFAULT_KNOBS, ...knobs }, seed).run();
}

/** Counts over the measured part of a run. */
interface Tally {
  reports: number;
  delivered: number;
  tokens: number;
  placed: number;
  forwarded: number;
  latencies: number[];
}

class ClosedLoop {
  private readonly n: number;
  private readonly weights: number[];
  private readonly slots: number[];
  private readonly r: Rng;
  /** A second stream for request sizes, so policies that draw more do not change the work. */
  private readonly work: Rng;
  private readonly ev = new Events();
  private now = 0;
  private readonly hosts: Host[];
  private readonly views: View[];
  private readonly tally: Tally = { reports: 0, delivered: 0, tokens: 0, placed: 0, forwarded: 0, latencies: [] };

  constructor(private readonly s: Scenario, private readonly policy: Policy, private readonly k: Knobs, seed: number) {
    this.n = s.hosts.length;
    this.weights = s.hosts.map((h) => h.weight);
    this.slots = s.hosts.map((h) => h.slots);
    this.r = rng(seed);
    this.work = rng(seed + 1);
    this.hosts = s.hosts.map(() => ({
      busy: 0, queue: [], served: 0, lastReported: 0, lastReportAt: -Infinity, reportPending: false, lastSlowAt: -Infinity, sample: [],
      estimates: Array.from({ length: this.n }, () => ({ reported: 0, sentSince: 0, closedSince: 0, flickers: false })), tokens: [],
    }));
    this.views = this.hosts.map((_, i) => this.view(i));
  }

  run(): Result {
    this.hosts.forEach((_, h) => this.ev.add(this.r() * this.k.reportMs, () => this.timer(h)));
    if (this.k.sample > 0) this.resample();
    this.s.entries.forEach((_, c) => this.ev.add(this.r(), () => this.send(c)));
    const end = this.s.simMs ?? LOOP.simMs;
    while (this.ev.size > 0 && this.ev.peek() < end) {
      this.now = this.ev.peek();
      this.ev.pop()();
    }
    return this.result((end - LOOP.warmupMs) / 1000);
  }

  private result(seconds: number): Result {
    const t = this.tally;
    // A typed array sorts numbers natively, several times faster than a comparator.
    const sorted = Float64Array.from(t.latencies).sort();
    const served = this.hosts.map((h) => h.served);
    const total = served.reduce((a, b) => a + b, 0);
    return {
      rps: total / seconds,
      p50Ms: sorted[Math.floor(sorted.length * 0.5)]!,
      p99Ms: sorted[Math.floor(sorted.length * 0.99)]!,
      busiestShare: Math.max(...served) / total,
      forwardedShare: t.forwarded / Math.max(1, t.placed),
      reportsPerHostPerSecond: t.reports / this.n / seconds,
      reportsInPerHostPerSecond: t.delivered / this.n / seconds,
      tokensPerHostPerSecond: t.tokens / this.n / seconds,
    };
  }

  private measuring(): boolean {
    return this.now >= LOOP.warmupMs;
  }

  private outstanding(h: number): number {
    return this.hosts[h]!.busy + this.hosts[h]!.queue.length;
  }

  // ---- load reports ------------------------------------------------------

  private report(h: number): void {
    const host = this.hosts[h]!;
    const value = this.outstanding(h);
    host.lastReported = value;
    host.lastReportAt = this.now;
    if (this.measuring()) this.tally.reports++;
    const slow = this.k.sample === 0 || this.now - host.lastSlowAt >= this.k.slowMs;
    if (slow) host.lastSlowAt = this.now;
    this.ev.add(this.now + this.k.reportAgeMs, () => {
      for (let j = 0; j < this.n; j++) {
        if (j === h || !(slow || this.hosts[j]!.sample.includes(h))) continue;
        if (this.measuring()) this.tally.delivered++;
        const e = this.hosts[j]!.estimates[h]!;
        e.reported = value;
        e.sentSince = 0;
        e.closedSince = 0;
        e.flickers = this.r() < this.k.flickerShare;
      }
    });
  }

  /** Reports on change: at most one per minGapMs, the later ones only if the load still differs. */
  private loadChanged(h: number): void {
    const host = this.hosts[h]!;
    if (this.k.reportMode !== 'change' || host.reportPending) return;
    const due = host.lastReportAt + this.k.minGapMs;
    const send = (): void => {
      host.reportPending = false;
      if (this.outstanding(h) !== host.lastReported) this.report(h);
    };
    if (this.now >= due) send();
    else {
      host.reportPending = true;
      this.ev.add(due, send);
    }
  }

  private timer(h: number): void {
    this.report(h);
    this.ev.add(this.now + this.k.reportMs, () => this.timer(h));
  }

  /** Every host draws the peers it hears in full (Knobs.sample), again every SAMPLE_MS. */
  private resample(): void {
    if (this.k.sampling === 'ring') {
      const order = Array.from({ length: this.n }, (_, j) => j);
      for (let i = order.length - 1; i > 0; i--) {
        const j = Math.floor(this.r() * (i + 1));
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
      order.forEach((h, at) => {
        this.hosts[h]!.sample = Array.from({ length: Math.min(this.k.sample, this.n - 1) }, (_, k) => order[(at - 1 - k + this.n) % this.n]!);
      });
      return;
    }
    this.hosts.forEach((host, h) => {
      const others = Array.from({ length: this.n }, (_, j) => j).filter((j) => j !== h);
      for (let i = others.length - 1; i > 0; i--) {
        const j = Math.floor(this.r() * (i + 1));
        [others[i], others[j]] = [others[j]!, others[i]!];
      }
      host.sample = others.slice(0, this.k.sample);
    });
    this.ev.add(this.now + SAMPLE_MS, () => this.resample());
  }

  // ---- what a policy sees ------------------------------------------------

  private view(self: number): View {
    const { n, weights, slots, r, k } = this;
    const host = this.hosts[self]!;
    return {
      self, n, weights, slots, r,
      own: () => this.outstanding(self),
      estimate: (peer) => {
        const e = host.estimates[peer]!;
        if (e.flickers && r() < 0.5) e.sentSince = 0;
        return e.reported + e.sentSince - (k.estimator === 'net' ? e.closedSince : 0);
      },
      maglev: () => weightedPick(weights, r),
      randomPeer: () => {
        if (host.sample.length) return host.sample[Math.floor(r() * host.sample.length)]!;
        const p = Math.floor(r() * (n - 1));
        return p >= self ? p + 1 : p;
      },
      takeToken: () => host.tokens.shift() ?? -1,
      exact: (h) => this.outstanding(h),
    };
  }

  // ---- a request's life ----------------------------------------------------

  private send(client: number): void {
    const entry = this.s.entries[client]!;
    const q: Request = { client, entry, routedTo: entry, sentAt: this.now };
    if (this.k.decisionMs > 0) this.ev.add(this.now + this.k.decisionMs, () => this.place(q));
    else this.place(q);
  }

  private place(q: Request): void {
    const target = this.policy.decide(this.views[q.entry]!);
    q.routedTo = target;
    if (this.measuring()) {
      this.tally.placed++;
      if (target !== q.entry) this.tally.forwarded++;
    }
    if (target === q.entry) this.serve(q.entry, q);
    else {
      this.hosts[q.entry]!.estimates[target]!.sentSince++;
      this.ev.add(this.now + this.k.hopMs, () => this.arrive(target, q, false));
    }
  }

  private arrive(h: number, q: Request, bounced: boolean): void {
    if (!bounced && h !== q.entry && this.policy.bounce) {
      const to = this.policy.bounce(this.views[h]!, q.entry);
      if (to >= 0 && to !== h) {
        this.hosts[h]!.estimates[to]!.sentSince++;
        this.ev.add(this.now + this.k.hopMs, () => this.arrive(to, q, true));
        return;
      }
    }
    this.serve(h, q);
  }

  private serve(h: number, q: Request): void {
    const host = this.hosts[h]!;
    const begin = (): void => {
      host.busy++;
      const ms = (LOOP.serviceMs + Math.floor(specwebBytes(this.work) / 16384)) * this.k.serviceScale;
      this.ev.add(this.now + ms, () => this.complete(h, q));
    };
    if (host.busy < this.slots[h]!) begin();
    else host.queue.push(begin);
    this.loadChanged(h);
  }

  private complete(h: number, q: Request): void {
    const host = this.hosts[h]!;
    host.busy--;
    if (this.measuring()) {
      host.served++;
      this.tally.latencies.push(this.now - q.sentAt);
    }
    // The client's FIN passes the entry host, which sees the flow end.
    if (q.routedTo !== q.entry) this.hosts[q.entry]!.estimates[q.routedTo]!.closedSince++;
    const next = host.queue.shift();
    if (next) next();
    else if (this.policy.tokens && host.busy < this.slots[h]!) this.giveTokens(h);
    this.loadChanged(h);
    this.ev.add(this.now + LOOP.thinkMs, () => this.send(q.client));
  }

  /** Join-Idle-Queue: a slot fell free with nothing queued; tell `tokens` random peers. */
  private giveTokens(h: number): void {
    for (let t = 0; t < this.policy.tokens!; t++) {
      const to = this.views[h]!.randomPeer();
      if (this.measuring()) this.tally.tokens++;
      this.ev.add(this.now + this.k.hopMs, () => this.hosts[to]!.tokens.push(h));
    }
  }
}

function weightedPick(weights: readonly number[], r: Rng): number {
  const total = weights.reduce((a, b) => a + b, 0);
  let x = r() * total;
  for (let i = 0; i < weights.length; i++) {
    x -= weights[i]!;
    if (x < 0) return i;
  }
  return weights.length - 1;
}
