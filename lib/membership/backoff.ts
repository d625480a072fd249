// Retry delays: doubling from `minMs` to `maxMs`, each drawn from the upper
// half of its step ("equal jitter"), so that hosts that lost etcd at the same
// moment do not all come back at the same moment, and none waits less than
// half a step.
export class Backoff {
  private step = 0;

  constructor(private readonly minMs: number, private readonly maxMs: number, private readonly random: () => number = Math.random) {
    if (!(minMs > 0 && maxMs >= minMs)) throw new RangeError(`backoff: need 0 < minMs <= maxMs, got ${minMs}, ${maxMs}`);
  }

  /** The delay before the next attempt. */
  next(): number {
    const full = Math.min(this.maxMs, this.minMs * 2 ** this.step);
    if (full < this.maxMs) this.step++;
    return Math.round(full / 2 + (full / 2) * this.random());
  }

  reset(): void {
    this.step = 0;
  }
}
