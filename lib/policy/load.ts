// The load policy (the paper's stateful variant): serve a new connection here
// unless this host carries more than `threshold` connections above the
// least-loaded eligible peer; then send it there. A host whose own service is
// unhealthy sends every new connection to the least-loaded healthy peer.
//
// Peers' loads arrive with heartbeats, so between two reports of a peer we add
// what we ourselves sent it (a burst would otherwise all go to the same peer
// before it can say it is busy); a new report (the peer's heartbeat sequence,
// not a clock) already counts those, and the correction starts over. Our own
// load is measured at decision time (lib/load-meter.ts: at most a few ms old,
// plus the connections kept since); counting kept connections over a whole
// report interval instead made every host look busier than its peers and
// pushed balanced traffic around (measured: 72% local instead of 99% in
// 61.cluster.load).
//
// The decisions for a batch of new flows cross into JavaScript once (the
// entry queue holds their SYNs meanwhile, at most load.decisionTimeoutMs).
import type { DprConfig } from '../config';
import type { Eligibility } from '../eligibility';
import type { LoadMeter } from '../load-meter';
import type { Logger } from '../log';
import { DECISION_FIELDS, type DecisionBatch, type NativeQueue } from '../native';
import type { PeerView } from '../peers';
import type { DecisionCounts, RoutingPolicy } from './policy';
import { pushTable } from './table';

/** A peer as the decision sees it: eligible, with its last report. */
export interface PeerLoad {
  id: number;
  load: number;
  /** Which report `load` is (PeerView.report); a new one resets our correction. */
  report: string | null;
}

/** The decision rule alone, with no I/O: unit-tested as it is. */
export class LoadChoice {
  private readonly sentSinceReport = new Map<number, number>();
  private readonly lastReport = new Map<number, string | null>();

  constructor(private readonly self: number, private readonly threshold: number) {}

  /**
   * @param ownLoad this host's load now
   * @param peers the eligible peers (up, healthy, not draining)
   * @param mustForward this host is not eligible itself: pick a peer whatever the loads
   */
  decide(ownLoad: number, peers: readonly PeerLoad[], mustForward = false): number {
    let best: PeerLoad | undefined;
    let bestLoad = Infinity;
    for (const p of peers) {
      if (p.id === this.self) continue;
      if (this.lastReport.get(p.id) !== p.report) {
        this.lastReport.set(p.id, p.report);
        this.sentSinceReport.delete(p.id);
      }
      const load = p.load + (this.sentSinceReport.get(p.id) ?? 0);
      if (load < bestLoad) {
        best = p;
        bestLoad = load;
      }
    }
    if (best && (mustForward || ownLoad - bestLoad > this.threshold)) {
      this.sentSinceReport.set(best.id, (this.sentSinceReport.get(best.id) ?? 0) + 1);
      return best.id;
    }
    return this.self;
  }
}

export interface LoadPolicyDeps {
  self: number;
  threshold: number;
  meter: LoadMeter;
  peers: () => readonly PeerView[];
  draining: () => boolean;
  log: Logger;
}

export class LoadPolicy implements RoutingPolicy {
  readonly name = 'load' as const;
  readonly onDecide = (batch: DecisionBatch): void => this.decide(batch);
  private entry: NativeQueue | null = null;
  private eligible: Eligibility | null = null;
  private choice: LoadChoice;
  private readonly counts: DecisionCounts = { local: 0, forwarded: 0, byPeer: {} };

  constructor(private d: LoadPolicyDeps) {
    this.choice = new LoadChoice(d.self, d.threshold);
  }

  attach(entry: NativeQueue): void {
    this.entry = entry;
  }

  setEligible(e: Eligibility): void {
    this.eligible = e;
    pushTable(this.entry, e);
  }

  decisions(): DecisionCounts {
    return { ...this.counts, byPeer: { ...this.counts.byPeer } };
  }

  reconfigure(c: Readonly<DprConfig>): void {
    // The corrections since the last reports start over: harmless, reports come every period.
    if (c.load.threshold !== this.d.threshold) this.choice = new LoadChoice(this.d.self, c.load.threshold);
    this.d = { ...this.d, threshold: c.load.threshold };
  }

  private decide(batch: DecisionBatch): void {
    const n = batch.length / DECISION_FIELDS;
    const tokens = new Uint32Array(n);
    const targets = new Uint16Array(n);
    const e = this.eligible;
    const allowed = new Set(e?.hosts ?? []);
    const candidates: PeerLoad[] = this.d.peers()
      .filter((p) => allowed.has(p.id))
      .map((p) => ({ id: p.id, load: p.load, report: p.report }));
    const draining = this.d.draining();
    const mustForward = e !== null && !e.selfEligible;
    for (let i = 0; i < n; i++) {
      tokens[i] = batch[i * DECISION_FIELDS]!;
      const target = draining ? this.d.self : this.choice.decide(this.d.meter.forDecision(), candidates, mustForward);
      targets[i] = target;
      if (target === this.d.self) {
        this.d.meter.noteKept();
        this.counts.local++;
      } else {
        this.counts.forwarded++;
        this.counts.byPeer[target] = (this.counts.byPeer[target] ?? 0) + 1;
      }
    }
    this.entry?.decide(tokens, targets);
  }
}
