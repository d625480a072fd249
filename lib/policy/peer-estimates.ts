// A peer's load as an entry host can know it between two of its reports:
// the last report, corrected by what this host did to that peer since. The
// entry host sees the client's side of every connection it forwards (the
// SYN, the FIN), so the data path counts the forwarded flows that are open
// now, by serving host (NativeQueue.forwardState). The correction is how far
// that count moved since the report: connections sent since, minus those of
// ours that ended since ("net" in docs/design-notes.md; a report plus sends
// alone over-counts by the connections that already ended, measured in the
// model: 0.90x for 0.99x on the cluster trial's skew).
//
// Our decisions reach the data path a little after we take them: until then
// a send is counted here (sent by us, not yet received there).
export interface PeerReport {
  id: number;
  /** The load the peer last reported. */
  load: number;
  /** Which report that is (PeerView.report: epoch and heartbeat sequence); null if none yet. */
  report: string | null;
}

/** What the data path counts, per host id (NativeQueue.forwardState's layout). */
export type ForwardState = Float64Array;

export class PeerEstimates {
  private readonly sent: Float64Array;
  private readonly base = new Map<number, { report: string | null; outstanding: number }>();
  private state: ForwardState;

  /** `hosts`: one more than the highest host id. */
  constructor(hosts: number) {
    this.sent = new Float64Array(hosts);
    this.state = new Float64Array(2 * hosts);
  }

  /** The buffer the data path fills before a batch of decisions. */
  get buffer(): ForwardState {
    return this.state;
  }

  /** A reload added hosts: room for their ids (what was counted stays). */
  grow(hosts: number): PeerEstimates {
    if (hosts <= this.sent.length) return this;
    const next = new PeerEstimates(hosts);
    next.sent.set(this.sent);
    next.state.set(this.state);
    for (const [id, b] of this.base) next.base.set(id, b);
    return next;
  }

  /** Our forwarded connections to `id` now: open in the data path, or decided and not applied yet. */
  private outstanding(id: number): number {
    if (id >= this.sent.length) return 0;
    return this.state[2 * id]! + this.sent[id]! - this.state[2 * id + 1]!;
  }

  /** The peer's load now, as well as we know it. A new report starts the correction over. */
  estimate(p: PeerReport): number {
    const now = this.outstanding(p.id);
    let b = this.base.get(p.id);
    if (b === undefined || b.report !== p.report) {
      b = { report: p.report, outstanding: now };
      this.base.set(p.id, b);
    }
    return Math.max(0, p.load + now - b.outstanding);
  }

  /** We just sent `id` a new connection. */
  noteSent(id: number): void {
    if (id < this.sent.length) this.sent[id]!++;
  }
}
