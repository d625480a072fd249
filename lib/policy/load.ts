// The load policy: each new connection is served here or sent to a lighter
// peer (the rule: lib/policy/load-choice.ts), on loads per weight that this
// host knows as well as an entry host can: its own measured at decision time
// (lib/load-meter.ts: a few ms old, plus the connections kept since), its
// peers' from their last report corrected by its own forwarded connections
// opened and closed since (lib/policy/peer-estimates.ts). A host that may not
// take new connections itself (unhealthy, weight 0) sends every one to a peer.
//
// The decisions for a batch of new flows cross into JavaScript once (the
// entry queue holds their SYNs meanwhile, at most load.decisionTimeoutMs);
// each carries the host the Maglev table names for it, computed natively.
import type { DprConfig } from '../config';
import type { Eligibility } from '../eligibility';
import type { LoadMeter } from '../load-meter';
import type { Logger } from '../log';
import { DECISION_FIELDS, type DecisionBatch, type NativeQueue } from '../native';
import type { PeerView } from '../peers';
import { chooseHost, type Contender } from './load-choice';
import { PeerEstimates } from './peer-estimates';
import type { DecisionCounts, RoutingPolicy } from './policy';
import { pushTable } from './table';

export interface LoadPolicyDeps {
  self: number;
  threshold: number;
  /** One more than the highest host id. */
  hostIds: number;
  meter: LoadMeter;
  peers: () => readonly PeerView[];
  draining: () => boolean;
  log: Logger;
  /** Uniform in [0, 1) (tests pass their own). */
  random?: () => number;
}

export class LoadPolicy implements RoutingPolicy {
  readonly name = 'load' as const;
  readonly onDecide = (batch: DecisionBatch): void => this.decide(batch);
  private entry: NativeQueue | null = null;
  private eligible: Eligibility | null = null;
  private estimates: PeerEstimates;
  private readonly counts: DecisionCounts = { local: 0, forwarded: 0, byPeer: {} };
  private readonly random: () => number;

  constructor(private d: LoadPolicyDeps) {
    this.estimates = new PeerEstimates(d.hostIds);
    this.random = d.random ?? Math.random;
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
    const hostIds = Math.max(...c.hosts.map((h) => h.id)) + 1;
    this.estimates = this.estimates.grow(hostIds);
    this.d = { ...this.d, threshold: c.load.threshold, hostIds: Math.max(hostIds, this.d.hostIds) };
  }

  private contenders(e: Eligibility): Contender[] {
    const weight = new Map(e.hosts.map((id, i) => [id, e.weights[i]!]));
    const out: Contender[] = [];
    for (const p of this.d.peers()) {
      const w = weight.get(p.id);
      if (p.id === this.d.self || w === undefined || w <= 0) continue;
      out.push({ id: p.id, weight: w, load: this.estimates.estimate(p) });
    }
    return out;
  }

  private decide(batch: DecisionBatch): void {
    const n = batch.length / DECISION_FIELDS;
    const tokens = new Uint32Array(n);
    const targets = new Uint16Array(n).fill(this.d.self);
    for (let i = 0; i < n; i++) tokens[i] = batch[i * DECISION_FIELDS]!;
    const e = this.eligible;
    if (e !== null && !this.d.draining()) {
      this.entry?.forwardState(this.estimates.buffer);
      const peers = this.contenders(e);
      const selfAt = e.hosts.indexOf(this.d.self);
      const ownWeight = selfAt >= 0 ? e.weights[selfAt]! : 0;
      const selfEligible = e.selfEligible && ownWeight > 0;
      for (let i = 0; i < n; i++) {
        targets[i] = chooseHost({
          self: this.d.self,
          ownWeight,
          ownLoad: this.d.meter.forDecision(),
          selfEligible,
          peers,
          hashTarget: batch[i * DECISION_FIELDS + 5]!,
          random: this.random(),
        }, this.d.threshold);
        const sent = peers.find((p) => p.id === targets[i]);
        if (sent !== undefined) {
          sent.load++;
          this.estimates.noteSent(sent.id);
        }
        if (targets[i] === this.d.self) this.d.meter.noteKept();
      }
    } else {
      for (let i = 0; i < n; i++) this.d.meter.noteKept();
    }
    for (const t of targets) {
      if (t === this.d.self) {
        this.counts.local++;
      } else {
        this.counts.forwarded++;
        this.counts.byPeer[t] = (this.counts.byPeer[t] ?? 0) + 1;
      }
    }
    this.entry?.decide(tokens, targets);
  }
}
