// The package as an operator gets it: `npm pack` on a fresh clone (here: the
// tracked files of this checkout, copied), then `npm install -g` of the
// tarball into a temporary prefix, which builds the addon on install. The
// installed `dpr` runs, and the package holds only what runs.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';

const ROOT = path.resolve(__dirname, '..', '..');
const { version } = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };

let tmp = '';
let clone = '';
let prefix = '';
let packed: string[] = [];
let unreachable = '';

function sh(cmd: string, args: string[], cwd: string, timeoutMs: number, env: NodeJS.ProcessEnv = {}): string {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: timeoutMs, env: { ...process.env, ...env } });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} (in ${cwd}): ${r.error?.message ?? `exit ${r.status}`}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dpr-pack-'));
  if (spawnSync('npm', ['ping'], { encoding: 'utf8', timeout: 30000 }).status !== 0) {
    unreachable = 'npm cannot reach its registry (npm ping failed)';
    return;
  }
  // A fresh clone: only what git tracks, nothing built (no dist/, build/, node_modules/).
  clone = path.join(tmp, 'clone');
  fs.mkdirSync(clone);
  const files = execFileSync('git', ['ls-files', '-z'], { cwd: ROOT }).toString().split('\0').filter((f) => f && fs.existsSync(path.join(ROOT, f)));
  execFileSync('sh', ['-c', `cd "${ROOT}" && tr '\\n' '\\0' | tar -cf - --null -T - | tar -xf - -C "${clone}"`], { input: files.join('\n') });
  // npm pack's prepack compiles the TypeScript: it needs the dev dependencies,
  // which are this checkout's (setup.sh installed them from the same lock with
  // npm ci), not a second install of them.
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(clone, 'node_modules'));
  const out = JSON.parse(sh('npm', ['pack', '--json', '--loglevel=error'], clone, 180000)) as Array<{ filename: string; files: Array<{ path: string }> }>;
  packed = out[0]!.files.map((f) => f.path);
  prefix = path.join(tmp, 'prefix');
  sh('nice', ['-n', '10', 'npm', 'install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', '--loglevel=error', path.join(clone, out[0]!.filename)], tmp, 480000);
});

after(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('70.package: the installed dpr runs and prints the version; the addon was built on install', (t) => {
  if (unreachable) return t.skip(unreachable);
  const dpr = path.join(prefix, 'bin', 'dpr');
  assert.equal(sh(dpr, ['--version'], tmp, 20000), `${version}\n`);
  const pkg = path.join(prefix, 'lib', 'node_modules', 'dpr');
  assert.ok(fs.existsSync(path.join(pkg, 'build', 'Release', 'dpr.node')), 'no addon in the installed package');
  // The addon loads: the installed native.js finds it where it was built.
  sh(process.execPath, ['-e', `require(${JSON.stringify(path.join(pkg, 'dist', 'lib', 'native.js'))})`], tmp, 20000);
  const manifest = JSON.parse(fs.readFileSync(path.join(pkg, 'package.json'), 'utf8')) as { main?: string };
  if (manifest.main) assert.ok(fs.existsSync(path.join(pkg, manifest.main)), `main ${manifest.main} does not exist`);
});

test('70.package: the package holds what runs and nothing else', (t) => {
  if (unreachable) return t.skip(unreachable);
  for (const f of ['dist/lib/cli.js', 'dist/lib/native.js', 'binding.gyp', 'native/queue.cc', 'iptables/install.sh', 'iptables/uninstall.sh', 'docs/dpr.service', 'scripts/install-addon.sh']) {
    assert.ok(packed.includes(f), `${f} is missing from the package`);
  }
  const extra = packed.filter((f) => /^(dist\/(test|bench|tools|scripts)|bench|test|tools|native\/fuzz)\/|\.map$|\.ts$|fixtures/.test(f));
  assert.deepEqual(extra, [], `not needed to run: ${extra.join(', ')}`);
});

test('70.package: without the Debian headers the install says which packages to add', (t) => {
  if (unreachable) return t.skip(unreachable);
  const pkg = path.join(prefix, 'lib', 'node_modules', 'dpr');
  // pkg-config looks in an empty directory only: as on a host without libnetfilter-queue-dev.
  const r = spawnSync('sh', [path.join(pkg, 'scripts', 'install-addon.sh')], {
    cwd: pkg, encoding: 'utf8', timeout: 20000, env: { ...process.env, PKG_CONFIG_LIBDIR: tmp, PKG_CONFIG_PATH: '' },
  });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /pkg-config finds no libnetfilter_queue/);
  assert.match(r.stderr, /apt-get install libnetfilter-queue-dev libmnl-dev/);
});
