// The libFuzzer target (native/fuzz/fuzz_engine.cc) for a short run: parse,
// flow table, rewrite and checksums of IPv4 and IPv6 under ASan and UBSan,
// seeded from the packet fixtures. Longer runs: npm run fuzz -- 600.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from './support/repo';

const SECONDS = 12;
const MIN_EXECUTIONS = 10000;

/** Fixtures whose input is an IPv6 packet (version nibble 6). */
function ipv6Fixtures(dir: string): number {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .filter((f) => (JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as { input: string }).input.startsWith('6')).length;
}

function hasClang(): boolean {
  return spawnSync('clang++', ['--version'], { stdio: 'ignore' }).status === 0;
}

test(
  `40.fuzz: parser and rewrite survive ${SECONDS} s of libFuzzer under ASan and UBSan, seeded with every IPv6 fixture too`,
  // The build alone takes up to a minute on two cores.
  { timeout: 240_000, skip: hasClang() ? false : 'clang++ is not installed (npm run setup installs it)' },
  (t) => {
    const root = repoRoot();
    const run = spawnSync('bash', [path.join(root, 'scripts', 'fuzz.sh'), String(SECONDS)], {
      cwd: root,
      encoding: 'utf8',
      maxBuffer: 16 * 1024 * 1024,
    });
    const output = `${run.stdout}\n${run.stderr}`;
    assert.equal(run.status, 0, `scripts/fuzz.sh failed (status ${run.status}):\n${output.slice(-4000)}`);
    // Each fixture gives a plain seed and one with fixed checksums, at least.
    const seeds = /^fuzz-seeds: \d+ seeds \((\d+) IPv6\)/m.exec(output);
    assert.ok(seeds, `no seed count from scripts/fuzz-seeds.mjs:\n${output.slice(-2000)}`);
    const fixtures6 = ipv6Fixtures(path.join(root, 'test', 'fixtures', 'packets'));
    assert.ok(fixtures6 > 0, 'no IPv6 packet fixtures');
    assert.ok(Number(seeds[1]) >= 2 * fixtures6, `${seeds[1]} IPv6 seeds from ${fixtures6} IPv6 fixtures`);
    const m = /^stat::number_of_executed_units:\s*(\d+)/m.exec(output);
    assert.ok(m, `no final stats from libFuzzer:\n${output.slice(-2000)}`);
    const executions = Number(m[1]);
    t.diagnostic(`${executions} executions in ${SECONDS} s`);
    assert.ok(executions > MIN_EXECUTIONS, `only ${executions} executions in ${SECONDS} s`);
  },
);
