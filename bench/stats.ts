// Percentiles of samples and of histograms (wrk reports its latencies as
// value -> count; several wrk processes are merged by adding counts).

/** The value below which p% of the sorted samples lie (nearest rank). */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export type Histogram = Array<[value: number, count: number]>;

export function mergeHistograms(hs: readonly Histogram[]): Histogram {
  const counts = new Map<number, number>();
  for (const h of hs) for (const [v, c] of h) counts.set(v, (counts.get(v) ?? 0) + c);
  return [...counts.entries()].sort((a, b) => a[0] - b[0]);
}

/** Nearest-rank percentile of a histogram sorted by value. */
export function histogramPercentile(h: Histogram, p: number): number {
  const total = h.reduce((n, [, c]) => n + c, 0);
  if (total === 0) return NaN;
  const rank = Math.max(1, Math.ceil((p / 100) * total));
  let seen = 0;
  for (const [v, c] of h) {
    seen += c;
    if (seen >= rank) return v;
  }
  return h[h.length - 1]![0];
}

export function mean(xs: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i]!;
  return xs.length ? s / xs.length : NaN;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}
