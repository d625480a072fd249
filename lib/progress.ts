// A one-line progress display for the `dpr` command, for the waits that take a
// second or more (peers coming up, a rate sample, a drain). On a terminal it
// redraws one line on stderr; anywhere else it prints nothing, so logs and
// pipes stay clean (callers log one line with the outcome instead).
import type { Writable } from 'node:stream';

type WriteFn = typeof process.stdout.write;

export interface ProgressOptions {
  /** Where the line goes (default: stderr). */
  stream?: Writable & { isTTY?: boolean };
  /** Force on or off; default: on when `stream` is a terminal. */
  enabled?: boolean;
}

const CLEAR = '\r\x1b[2K';

export class Progress {
  private text = '';
  private readonly stream: Writable & { isTTY?: boolean };
  readonly enabled: boolean;
  private restore: (() => void) | null = null;
  /** The real write() of each stream we intercept, while the line shows. */
  private readonly originals = new Map<Writable, WriteFn>();

  constructor(options: ProgressOptions = {}) {
    this.stream = options.stream ?? process.stderr;
    this.enabled = options.enabled ?? Boolean(this.stream.isTTY);
  }

  /** Shows (or replaces) the line. */
  update(text: string): void {
    if (!this.enabled || (this.restore && text === this.text)) return;
    if (!this.restore) this.restore = this.interceptOutput();
    this.text = text;
    this.draw();
  }

  /** Removes the line; what else was printed stays. */
  done(): void {
    if (!this.enabled || !this.restore) return;
    this.erase();
    this.restore();
    this.restore = null;
    this.text = '';
  }

  private draw(): void {
    this.write(`${CLEAR}${this.text}`);
  }

  private erase(): void {
    this.write(CLEAR);
  }

  private write(s: string): void {
    // Straight to the stream, past our own interception.
    const write = (this.originals.get(this.stream) ?? this.stream.write) as (chunk: string) => boolean;
    write.call(this.stream, s);
  }

  /**
   * A log line written while the progress line shows would land after it on
   * the same row. So, for every stream that shares the terminal, erase the
   * line before other output and draw it again after, as terminal progress
   * libraries do. A redirected stream does not share the row: left alone.
   */
  private interceptOutput(): () => void {
    const streams = [process.stdout, process.stderr].filter((s) => s === this.stream || s.isTTY);
    for (const s of streams) {
      const original = s.write;
      this.originals.set(s, original);
      s.write = ((...args: unknown[]) => {
        this.erase();
        const ok = (original as (...a: unknown[]) => boolean).apply(s, args);
        if (this.text) this.draw();
        return ok;
      }) as WriteFn;
    }
    return () => {
      for (const s of streams) s.write = this.originals.get(s)!;
      this.originals.clear();
    };
  }
}

/** Waits `ms`, redrawing `label` with a countdown on a terminal. */
export async function waitWithProgress(ms: number, label: string, progress = new Progress()): Promise<void> {
  const end = Date.now() + ms;
  try {
    for (let left = ms; left > 0; left = end - Date.now()) {
      progress.update(`${label} (${(left / 1000).toFixed(1)} s)`);
      await sleep(Math.min(100, left));
    }
  } finally {
    progress.done();
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
