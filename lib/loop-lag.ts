// How late the event loop runs, from a timer that runs anyway (the daemon's
// 1-s load report), instead of a timer of its own: prom-client's default
// event-loop monitor wakes the process every 10 ms, which cost an idle daemon
// about 7 ms of CPU per second (measured). Lag delays `load`-policy
// decisions and health checks (heartbeats run in their own native thread).

/** The largest lateness seen over the last `windowMs`, in windows of a tenth of it. */
export class LoopLag {
  private readonly buckets: number[];
  private readonly bucketMs: number;
  private current = 0;
  private currentStart = 0;

  constructor(windowMs = 10_000, private readonly now: () => number = () => performance.now()) {
    this.bucketMs = windowMs / 10;
    this.buckets = new Array<number>(10).fill(0);
  }

  /** A timer that should have run at `dueAt` ran now. */
  sample(lateMs: number): void {
    this.roll();
    this.buckets[this.current] = Math.max(this.buckets[this.current]!, Math.max(0, lateMs));
  }

  maxMs(): number {
    this.roll();
    return Math.max(...this.buckets);
  }

  private roll(): void {
    const t = this.now();
    while (t - this.currentStart >= this.bucketMs) {
      this.currentStart = this.currentStart === 0 ? t : this.currentStart + this.bucketMs;
      this.current = (this.current + 1) % this.buckets.length;
      this.buckets[this.current] = 0;
      if (t - this.currentStart > this.bucketMs * this.buckets.length) {
        // Nothing sampled for a whole window: start afresh.
        this.buckets.fill(0);
        this.currentStart = t;
      }
    }
  }
}
