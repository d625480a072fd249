// The `dpr` command's refusals: a bad configuration is named and nothing on
// the host changes; `dpr check` validates without touching anything.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { Testbed } from './support/netns';
import { clusterConfig, writeConfig } from './support/configs';

const CLI = path.resolve(__dirname, '..', 'lib', 'cli.js');

function dpr(args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 20000 });
}

/** `dpr ARGS` inside a namespace of the bed: what `dpr start` may change, it changes there. */
function inNamespace(bed: Testbed, host: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync('ip', ['netns', 'exec', bed.ns(host), process.execPath, CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 20000 });
}

test('62.cli: dpr check accepts a good config and prints the rules it would install', () => {
  const r = dpr(['check', '--config', writeConfig(clusterConfig(1, { hosts: 3 }))]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /config ok: host 1 of 3/);
  assert.match(r.stdout, /-A DPR_ENTRY .*SYN .*-j NFQUEUE --queue-num 0 --queue-bypass/);
});

test('62.cli: dpr check names the key of a bad config and exits non-zero', () => {
  const r = dpr(['check', '--config', writeConfig({ ...clusterConfig(0, { hosts: 2 }), servicePorts: [80, 20001] })]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /peerPortBase: peer ports 20000-20003 include service port 20001/);
});

test('62.cli: an unknown option or command is refused with usage, exit 2 (systemd does not restart it)', () => {
  const r = dpr(['start', '--confg', 'x.json']);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /unknown option '--confg'/);
  const r2 = dpr(['strat']);
  assert.equal(r2.status, 2, r2.stderr);
  assert.match(r2.stderr, /unknown command 'strat'/);
});

// Every configuration error exits 2 with the key and the reason, from check
// and start alike; the unit's RestartPreventExitStatus=2 3 relies on it.
const noConfig = Object.fromEntries(Object.keys(process.env).filter((k) => k.startsWith('DPR_')).map((k) => [k, undefined]));
const configErrors: Array<[string, string[], NodeJS.ProcessEnv, RegExp]> = [
  ['a short peers.key', ['--config', writeConfig(clusterConfig(0, { hosts: 2 }))], { DPR_PEERS_KEY: '0011223344' }, /^dpr: config: peers\.key: key is 5 bytes, at least 16 are needed$/m],
  ['an unreadable peers.keyFile', ['--config', writeConfig({ ...clusterConfig(0, { hosts: 2 }), peers: { keyFile: '/nonexistent/dpr.key' } })], {}, /^dpr: config: peers\.keyFile: cannot read \/nonexistent\/dpr\.key: ENOENT/m],
  ["DPR_HOSTS='not json'", ['--config', writeConfig(clusterConfig(0, { hosts: 2 }))], { DPR_HOSTS: 'not json' }, /^dpr: config: hosts: must be a JSON list .*not JSON/m],
  ['DPR_SELF=1x', ['--config', writeConfig(clusterConfig(0, { hosts: 2 }))], { DPR_SELF: '1x' }, /^dpr: config: self: must be an integer ≥ 0/m],
  ['no configuration at all', [], { ...noConfig }, /^dpr: config: --config: no configuration: give --config FILE or set DPR_CONFIG/m],
];
for (const [name, args, env, message] of configErrors) {
  test(`62.cli: dpr check with ${name} exits 2 naming the key`, () => {
    const r = dpr(['check', ...args], env);
    assert.equal(r.status, 2, `${r.stdout}${r.stderr}`);
    assert.match(r.stderr, message);
    assert.doesNotMatch(r.stdout, /config ok/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'a stack trace');
  });
}

test('62.cli: dpr check | head -1 ends quietly (no EPIPE stack trace)', async () => {
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, [CLI, 'check', '--config', writeConfig(clusterConfig(0, { hosts: 3 }))], { stdio: ['ignore', 'pipe', 'pipe'] });
  // The reader goes away before the first write, as `head -1` does after one line.
  child.stdout.destroy();
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  assert.equal(stderr, '');
  assert.equal(code, 0);
});

test('62.cli: dpr --version and dpr version print the package version', () => {
  const { version } = JSON.parse(fs.readFileSync(path.resolve(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string };
  for (const args of [['--version'], ['version']]) {
    const r = dpr(args);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `${version}\n`);
  }
});

test('62.cli: dpr start with a bad config exits non-zero before it changes the host', async () => {
  const bed = Testbed.create([{ name: 'a', addrs: ['198.18.0.1/24'] }], 'cli');
  try {
    // iptables-save's comments carry the time, and a new link's state and IPv6
    // address change by themselves: compare rules and IPv4 addresses.
    const state = (): string => bed.exec('a', ['iptables-save']).replace(/^#.*$/gm, '') + bed.exec('a', ['ip', '-4', '-o', 'addr']);
    const before = state();
    const bad = writeConfig({ ...clusterConfig(0, { hosts: 2 }), clusterCidr: '198.19.0.0/24' });
    const r = inNamespace(bed, 'a', ['start', '--config', bad]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /hosts\[0\]\.cluster: 198\.18\.0\.1 is outside clusterCidr/);
    assert.equal(state(), before);
    assert.doesNotMatch(bed.exec('a', ['cat', '/proc/net/netfilter/nfnetlink_queue']), /\S/, 'a queue was bound');
  } finally {
    await bed.destroy();
  }
});

test('62.cli: dpr start refuses to run when the rules are not installed, and says how to fix it', async () => {
  const bed = Testbed.create([{ name: 'a', addrs: ['198.18.0.1/24'] }], 'cli');
  try {
    const r = inNamespace(bed, 'a', ['start', '--config', writeConfig(clusterConfig(0, { hosts: 2 }))]);
    assert.equal(r.status, 3, r.stderr);
    assert.match(r.stderr, /rules are not installed: run iptables\/install\.sh/);
    assert.match(r.stderr, /ip_forward is not 1/);
  } finally {
    await bed.destroy();
  }
});

test('62.cli: dpr start with a short key exits 2 before it binds a queue, where the rules are installed', async () => {
  const bed = Testbed.create([{ name: 'a', addrs: ['198.18.0.1/24'] }], 'cli');
  try {
    const config = writeConfig(clusterConfig(0, { hosts: 2 }));
    bed.exec('a', ['bash', path.resolve(__dirname, '..', '..', 'iptables', 'install.sh'), config]);
    const r = inNamespace(bed, 'a', ['start', '--config', config], { DPR_PEERS_KEY: '00112233' });
    assert.equal(r.status, 2, `${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /^dpr: config: peers\.key: key is 4 bytes, at least 16 are needed$/m);
    assert.doesNotMatch(bed.exec('a', ['cat', '/proc/net/netfilter/nfnetlink_queue']), /\S/, 'a queue was bound');
  } finally {
    await bed.destroy();
  }
});

test('62.cli: a SIGTERM while dpr start is starting stops it cleanly once started (exit 0, queues released)', async () => {
  const bed = Testbed.create([{ name: 'a', addrs: ['198.18.0.1/24'] }], 'cli');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpr-cli-'));
  try {
    // The flow table file is a FIFO: start-up waits in it, after the queues
    // are bound, until the test opens the other end. That is the moment.
    const fifo = path.join(dir, 'flows.bin');
    execFileSync('mkfifo', [fifo]);
    const config = writeConfig(clusterConfig(0, { hosts: 2 }, { flows: { stateFile: fifo } }));
    bed.exec('a', ['bash', path.resolve(__dirname, '..', '..', 'iptables', 'install.sh'), config]);
    const child = bed.spawn('a', [process.execPath, CLI, 'start', '--config', config], { env: { ...process.env, DPR_LOG_LEVEL: 'info' } });
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (out += c));
    const exited = new Promise<[number | null, string | null]>((resolve) => child.once('close', (code, signal) => resolve([code, signal])));
    const queues = () => bed.exec('a', ['cat', '/proc/net/netfilter/nfnetlink_queue']);
    for (let i = 0; !/^\s*1 /m.test(queues()); i++) {
      assert.ok(i < 200, `the serve queue was never bound:\n${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 200));
    try {
      // Non-blocking: with no reader left (a daemon the signal killed) this fails at once.
      fs.closeSync(fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK));
    } catch {
      // nobody reads: the daemon is gone already
    }
    const [code, signal] = await exited;
    assert.deepEqual([code, signal], [0, null], `the daemon ended by ${signal ?? `exit ${code}`}:\n${out}`);
    assert.match(out, /"message":"stopped"/);
    assert.doesNotMatch(queues(), /\S/, 'a queue is still bound');
  } finally {
    await bed.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
