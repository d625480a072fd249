// Running a bench helper (wrk, the connect probe) inside one of a test bed's
// namespaces and collecting what it prints, bounded in time, without blocking
// the harness: several load generators run at once.
import type { Testbed } from '../test/support/netns';

export interface RunOptions {
  /** Written to the helper's stdin, which is then closed. */
  input?: string;
  timeoutMs: number;
}

export function runIn(bed: Testbed, host: string, argv: string[], o: RunOptions): Promise<string> {
  const child = bed.spawn(host, argv, { stdio: [o.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (err += d));
  if (o.input !== undefined) child.stdin?.end(o.input);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`[${host}] ${argv[0]} still running after ${o.timeoutMs} ms`));
    }, o.timeoutMs);
    // 'close', not 'exit': the last of stdout may still be in the pipe at exit.
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`[${host}] ${argv.join(' ')} exited ${code ?? signal}: ${err.trim().slice(0, 400)}`));
    });
  });
}
