// The `dpr` command's refusals: a bad configuration is named and nothing on
// the host changes; `dpr check` validates without touching anything.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Testbed } from './support/netns';
import { clusterConfig, writeConfig } from './support/configs';

const CLI = path.resolve(__dirname, '..', 'lib', 'cli.js');

function dpr(args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 20000 });
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

test('62.cli: an unknown option or command is refused with usage', () => {
  const r = dpr(['start', '--confg', 'x.json']);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /unknown option '--confg'/);
  const r2 = dpr(['strat']);
  assert.notEqual(r2.status, 0);
  assert.match(r2.stderr, /unknown command 'strat'/);
});

test('62.cli: dpr start with a bad config exits non-zero before it changes the host', async () => {
  const bed = Testbed.create([{ name: 'a', addrs: ['198.18.0.1/24'] }], 'cli');
  try {
    // iptables-save's comments carry the time, and a new link's state and IPv6
    // address change by themselves: compare rules and IPv4 addresses.
    const state = (): string => bed.exec('a', ['iptables-save']).replace(/^#.*$/gm, '') + bed.exec('a', ['ip', '-4', '-o', 'addr']);
    const before = state();
    const bad = writeConfig({ ...clusterConfig(0, { hosts: 2 }), clusterCidr: '198.19.0.0/24' });
    let failure = '';
    try {
      bed.exec('a', [process.execPath, CLI, 'start', '--config', bad]);
    } catch (err) {
      failure = (err as Error).message;
    }
    assert.match(failure, /hosts\[0\]\.cluster: 198\.18\.0\.1 is outside clusterCidr/);
    assert.equal(state(), before);
    assert.doesNotMatch(bed.exec('a', ['cat', '/proc/net/netfilter/nfnetlink_queue']), /\S/, 'a queue was bound');
  } finally {
    await bed.destroy();
  }
});

test('62.cli: dpr start refuses to run when the rules are not installed, and says how to fix it', async () => {
  const bed = Testbed.create([{ name: 'a', addrs: ['198.18.0.1/24'] }], 'cli');
  try {
    let failure = '';
    try {
      bed.exec('a', [process.execPath, CLI, 'start', '--config', writeConfig(clusterConfig(0, { hosts: 2 }))]);
    } catch (err) {
      failure = (err as Error).message;
    }
    assert.match(failure, /rules are not installed: run iptables\/install\.sh/);
    assert.match(failure, /ip_forward is not 1/);
  } finally {
    await bed.destroy();
  }
});
