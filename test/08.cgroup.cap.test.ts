// bench/cgroup.ts caps an emulated host's CPU (the scale-out trial): a busy
// process moved into a 10% cap gets at most about that, the cap counts what
// it used and when it ran out, and remove() leaves no group behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { CpuCap, leftoverCaps } from '../bench/cgroup';

const skip = CpuCap.available() ? false : 'the cgroup v1 cpu and cpuacct controllers are not mounted at /sys/fs/cgroup';

test('08.cgroup: a busy loop in a 10% cap uses at most ~10% of a core, and the groups go away', { skip }, async () => {
  const cap = CpuCap.create('tc', 'h0', { quotaUs: 2000, periodUs: 20_000 });
  const busy = spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' });
  try {
    cap.adopt(busy.pid!);
    const u0 = cap.usageSeconds();
    const t0 = cap.throttled();
    const w0 = performance.now();
    await new Promise((r) => setTimeout(r, 1000));
    const cores = (cap.usageSeconds() - u0) / ((performance.now() - w0) / 1000);
    const t1 = cap.throttled();
    // A cap is a ceiling: a busy machine can only lower what the loop gets.
    assert.ok(cores > 0.005 && cores < 0.13, `the capped loop used ${cores.toFixed(3)} cores`);
    assert.ok(t1.throttledPeriods - t0.throttledPeriods > 10, `throttled in ${t1.throttledPeriods - t0.throttledPeriods} periods`);
  } finally {
    busy.kill('SIGKILL');
    cap.remove();
  }
  assert.deepEqual(leftoverCaps(cap.name), []);
  assert.equal(fs.existsSync(`/sys/fs/cgroup/cpu/${cap.name}`), false);
});
