// A second reporter for scripts/test.sh: the wall time of each test file,
// from the runner starting it to its process ending (start-up, hooks and
// teardown included, which the spec reporter's per-test times leave out).
// The suite has a budget (15 minutes on CI); this says where it goes.
import type { TestEvent } from 'node:test/reporters';

/** "/x/dist/test/60.cluster.hash.test.js" -> "60.cluster.hash". */
function shortName(file: string): string {
  return file.replace(/^.*\//, '').replace(/\.test\.js$/, '');
}

async function* timingReporter(source: AsyncIterable<TestEvent>): AsyncGenerator<string> {
  const start = Date.now();
  const started = new Map<string, number>();
  const took = new Map<string, number>();
  for await (const event of source) {
    // The runner reports each file as a test whose name is the file's path:
    // dequeued when its process starts, complete when it has ended.
    if (event.type !== 'test:dequeue' && event.type !== 'test:complete') continue;
    const { file, name } = event.data;
    if (file === undefined || name !== file) continue;
    if (event.type === 'test:dequeue') started.set(file, Date.now());
    else took.set(file, Date.now() - (started.get(file) ?? start));
  }
  const total = (Date.now() - start) / 1000;
  const rows = [...took].sort((a, b) => b[1] - a[1]);
  const sum = rows.reduce((s, [, ms]) => s + ms, 0) / 1000;
  yield `test timing: ${rows.length} files, ${total.toFixed(0)} s (${sum.toFixed(0)} s in the files); the slowest, in seconds:\n`;
  for (const [file, ms] of rows) yield `  ${(ms / 1000).toFixed(1).padStart(6)}  ${shortName(file)}\n`;
}

// node loads a reporter by its default export; CommonJS's is module.exports.
export = timingReporter;
