// The shapes every trial shares: what one repetition returns, how a trial
// describes its variants, which extra numbers it shows and which goals it is
// held to. `trials.ts` fills them in; `run.ts` and `report.ts` read them.

export interface TrialOptions {
  /** Smaller runs for a smoke test; numbers are rougher. */
  quick: boolean;
}

/** One repetition's result: `value` is what the table compares. */
export interface Measurement {
  value: number;
  /** A second view of the same run, shown beside it (e.g. wall-clock where `value` is per CPU-second). */
  secondary: number;
  /** How much work the value was measured over (packets, requests, connections). */
  work: number;
  /** Further numbers of the same run, by name; a trial's `columns` and `goals` refer to them. */
  metrics?: Record<string, number>;
  detail: unknown;
}

export interface Variant {
  name: string;
  description: string;
  /**
   * The variant this one is compared with, where it is not the trial's
   * baseline (keep-alive with keep-alive); null: compared with nothing.
   */
  baseline?: string | null;
  /** What this variant's value and secondary count, where the trial's units do not fit. */
  unit?: string;
  secondaryUnit?: string;
}

/** A further number shown in the table: the median of `metric` over the repetitions. */
export interface Column {
  metric: string;
  label: string;
  /** Also show its ratio to the same number of the variant's baseline. */
  ratio?: boolean;
  /** Decimal places (default 0). */
  digits?: number;
}

/**
 * A goal, checked on medians. `metric` is 'value', 'secondary' or a key of
 * Measurement.metrics. `ratio`: the variant's number over `versus`'s;
 * `difference`: the variant's minus `versus`'s; `absolute`: its own number.
 */
export interface Goal {
  /** As a reader should read it: "dpr-load ≥ 0.95x balanced throughput". */
  text: string;
  variant: string;
  metric: string;
  kind: 'ratio' | 'difference' | 'absolute';
  versus?: string;
  atLeast?: number;
  atMost?: number;
  /** Unit of a difference or an absolute number ('µs', 'ms', 'B'); ratios print as 'x'. */
  unit?: string;
}

/** A chart of the results (SVG, written beside the JSON): one panel of bars per number. */
export interface ChartSpec {
  panels: ReadonlyArray<{ metric: string; label: string; better: 'higher' | 'lower' }>;
  /** Bar colour by the start of the variant's name; the first match wins. */
  colours?: ReadonlyArray<readonly [prefix: string, colour: string]>;
  /** Lines instead of bars (svg-lines.ts): each variant a point at its metric `x`, one line per name without its last `-` part. */
  lines?: { x: string; xLabel: string };
}

export interface Trial {
  name: string;
  description: string;
  /** What `value` counts, and what `secondary` counts. */
  unit: string;
  secondaryUnit: string;
  variants: readonly Variant[];
  /** Every variant's ratio is taken to this one unless the variant names another. */
  baseline: string;
  goals?: readonly Goal[];
  columns?: readonly Column[];
  chart?: ChartSpec;
  /** Show each variant's value minus its baseline's (where a difference reads better than a ratio). */
  showDifference?: boolean;
  /**
   * CPUs the repetition's child runs on (a taskset list). Default: the
   * harness CPU, for trials that pin what they measure to the other core;
   * namespace clusters, whose processes inherit it, get every core.
   */
  cpus?: string;
  /** Bound on one repetition (default 60 s). */
  timeoutMs?: number;
  /** What a reader needs to judge the numbers: rules, sizes, pinning. */
  setup(options: TrialOptions): string[];
  /** Runs once in the parent before any repetition (compiles helpers, checks tools). */
  prepare?(): void;
  /** One repetition of one variant; runs in a fresh child process. */
  run(variant: string, options: TrialOptions): Promise<Measurement>;
}
