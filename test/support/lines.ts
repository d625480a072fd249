// Line-wise reading of a child's stdout, for helpers that talk to a child by
// printing lines ("ready", a JSON snapshot, ...).
import type { ChildProcess } from 'node:child_process';

const readers = new WeakMap<ChildProcess, LineReader>();

/** Lines kept per child for its log (scripts/test.sh keeps the logs of a failed run). */
const TRANSCRIPT_LINES = 2000;

class LineReader {
  private partial = '';
  private readonly waiters: Array<(line: string) => boolean> = [];
  readonly stderr: string[] = [];
  /** The child's last lines, stdout and stderr interleaved as they came. */
  readonly transcript: string[] = [];
  closed = false;

  constructor(child: ChildProcess) {
    // 'close', not 'exit': a child's last lines may still be in the pipe when it exits.
    child.once('close', () => (this.closed = true));
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      const parts = (this.partial + chunk).split('\n');
      this.partial = parts.pop() ?? '';
      for (const line of parts) {
        this.keep(line);
        this.offer(line);
      }
    });
    // Kept for error messages: a child that dies says why on stderr.
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      this.stderr.push(chunk);
      for (const line of chunk.split('\n')) if (line) this.keep(`stderr: ${line}`);
    });
  }

  private keep(line: string): void {
    this.transcript.push(`${new Date().toISOString()} ${line}`);
    if (this.transcript.length > TRANSCRIPT_LINES) this.transcript.splice(0, this.transcript.length - TRANSCRIPT_LINES);
  }

  // The first waiter that accepts a line consumes it (and removes itself).
  private offer(line: string): void {
    for (const w of [...this.waiters]) if (w(line)) return;
  }

  /** Registers a waiter that consumes the first later line it accepts; returns its removal. */
  add(waiter: (line: string) => boolean): () => void {
    this.waiters.push(waiter);
    return () => {
      const i = this.waiters.indexOf(waiter);
      if (i >= 0) this.waiters.splice(i, 1);
    };
  }
}

/** Starts reading a child's output now, so its transcript misses nothing. */
export function watch(child: ChildProcess): void {
  reader(child);
}

/** What the child printed so far (last lines), one entry per line. */
export function transcript(child: ChildProcess): readonly string[] {
  return reader(child).transcript;
}

function reader(child: ChildProcess): LineReader {
  let r = readers.get(child);
  if (!r) {
    r = new LineReader(child);
    readers.set(child, r);
  }
  return r;
}

/**
 * Resolves with the next line of `child`'s stdout that `match` accepts; rejects
 * when the child exits first or `timeoutMs` passes, quoting its stderr.
 */
export function waitForLine(
  child: ChildProcess,
  match: (line: string) => boolean,
  timeoutMs: number,
  what: string,
): Promise<string> {
  const r = reader(child);
  return new Promise((resolve, reject) => {
    const fail = (why: string): void => {
      cleanup();
      reject(new Error(`${what}: ${why}${r.stderr.length ? `; stderr: ${r.stderr.join('').trim()}` : ''}`));
    };
    const onClose = (): void => fail(`exited (code ${child.exitCode}, signal ${child.signalCode})`);
    const timer = setTimeout(() => fail(`no matching line within ${timeoutMs} ms`), timeoutMs);
    const remove = r.add((line) => {
      if (!match(line)) return false;
      cleanup();
      resolve(line);
      return true;
    });
    const cleanup = (): void => {
      clearTimeout(timer);
      remove();
      child.off('close', onClose);
    };
    if (r.closed) return fail('had exited already');
    child.once('close', onClose);
  });
}
