// The configuration reference in README.md is generated from the convict
// schema (scripts/config-docs.ts): this test fails when the two drift apart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { BEGIN, END, leaves, readSection, renderReference, replaceSection } from '../scripts/config-docs';
import { schema } from '../lib/config-schema';

const ROOT = path.resolve(__dirname, '..', '..');
const README = path.join(ROOT, 'README.md');
const SCRIPT = path.join(ROOT, 'dist', 'scripts', 'config-docs.js');

test('70.config-docs: README.md holds the configuration reference generated from the schema', (t) => {
  if (!fs.existsSync(README)) {
    t.skip('README.md does not exist yet; once it does, with the config markers, this test compares its section');
    return;
  }
  const section = readSection(fs.readFileSync(README, 'utf8'));
  assert.ok(section !== null, `README.md lacks ${BEGIN} ... ${END}`);
  assert.equal(section.trim(), renderReference().trim(), 'README.md is out of date: run `npm run docs:config`');
});

test('70.config-docs: every schema key has a row with its default and environment variable', () => {
  const table = renderReference();
  const rows = leaves(schema);
  assert.ok(rows.length > 30, `only ${rows.length} keys found`);
  for (const { key, leaf } of rows) {
    const row = table.split('\n').find((l) => l.startsWith(`| \`${key}\` |`));
    assert.ok(row, `no row for ${key}`);
    if (leaf.env) assert.ok(row.includes(`\`${leaf.env}\``), `${key}: no ${leaf.env}`);
  }
  assert.match(table, /^\| `marks\.forward` \| `0x1000000` \| `DPR_MARK_FORWARD` \| mark \|/m);
  assert.match(table, /^\| `self` \| \*required\* \|/m);
  assert.match(table, /^\| `policy` \| `hash` \| `DPR_POLICY` \| `hash` \\\| `load` \|/m);
});

test('70.config-docs: --write replaces only the marked section, and refuses a file without the markers', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpr-docs-'));
  try {
    const file = path.join(dir, 'README.md');
    fs.writeFileSync(file, `# Title\n\nbefore\n${BEGIN}\nstale\n${END}\nafter\n`);
    const ok = spawnSync(process.execPath, [SCRIPT, '--write', '--readme', file], { encoding: 'utf8' });
    assert.equal(ok.status, 0, ok.stderr);
    const text = fs.readFileSync(file, 'utf8');
    assert.ok(text.startsWith(`# Title\n\nbefore\n${BEGIN}\n`) && text.endsWith(`${END}\nafter\n`));
    assert.equal(readSection(text)!.trim(), renderReference().trim());
    // Writing twice changes nothing.
    assert.equal(replaceSection(text, renderReference()), text);

    fs.writeFileSync(file, '# no markers here\n');
    const bad = spawnSync(process.execPath, [SCRIPT, '--write', '--readme', file], { encoding: 'utf8' });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /markers <!-- config:begin --> and <!-- config:end --> are missing/);
    assert.equal(fs.readFileSync(file, 'utf8'), '# no markers here\n');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
