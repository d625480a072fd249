// `dpr start` checks the local web server before it routes anything: a
// listener bound to the service address itself would take forwarded flows
// (the entry rule's `-m socket` matches it), so dpr refuses to start (exit 3,
// naming the address); a listener on the wildcard address is what it needs.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { Testbed } from './support/netns';
import { clusterConfig, writeConfig } from './support/configs';
import { repoRoot } from './support/repo';
import { transcript, waitForLine } from './support/lines';

const CLI = path.join(repoRoot(), 'dist', 'lib', 'cli.js');
const INSTALL = path.join(repoRoot(), 'iptables', 'install.sh');
const SERVICE = '198.18.0.1';
const config = writeConfig(clusterConfig(0, { hosts: 2 }, { flows: { stateFile: '' }, metrics: { port: 0 } }));

describe('53.start.listener', () => {
  const bed = Testbed.create([{ name: 'a', addrs: [`${SERVICE}/24`] }], 'ls');
  bed.exec('a', ['bash', INSTALL, config]);
  after(() => bed.destroy());

  /** A web server in the namespace listening on `host`:80 (node's net, as any server would). */
  async function listen(host: string, ipv6Only = false): Promise<() => void> {
    const child = bed.spawn('a', [process.execPath, '-e',
      `require('net').createServer(()=>{}).listen({port:80,host:${JSON.stringify(host)},ipv6Only:${ipv6Only}},()=>console.log('listening'))`]);
    await waitForLine(child, (l) => l === 'listening', 5000, `listener on ${host}`);
    return () => child.kill('SIGKILL');
  }

  function start(): { code: number | null; out: string } {
    const r = spawnSync('ip', ['netns', 'exec', bed.ns('a'), process.execPath, CLI, 'start', '--config', config], { encoding: 'utf8', timeout: 8000 });
    return { code: r.status, out: `${r.stdout}${r.stderr}` };
  }

  test('a web server bound to the service address: dpr start exits 3 and names it', async () => {
    const stop = await listen(SERVICE);
    try {
      const r = start();
      assert.equal(r.code, 3, r.out);
      assert.match(r.out, new RegExp(`listens on ${SERVICE.replace(/\./g, '\\.')}:80; dpr needs it on the wildcard address`));
      assert.match(r.out, /start-up check\(s\) failed; nothing was changed/);
    } finally {
      stop();
    }
  });

  test('a dual-stack listener bound to the service address (::ffff:S_A) is refused too', async () => {
    const stop = await listen(`::ffff:${SERVICE}`);
    try {
      const r = start();
      assert.equal(r.code, 3, r.out);
      assert.match(r.out, /dpr needs it on the wildcard address/);
    } finally {
      stop();
    }
  });

  for (const [what, host, v6only] of [['0.0.0.0', '0.0.0.0', false], ['[::] taking IPv4 too (dual-stack)', '::', false]] as const) {
    test(`a web server on ${what} passes the check: dpr starts routing`, async () => {
      const stop = await listen(host, v6only);
      const daemon = bed.spawn('a', [process.execPath, CLI, 'start', '--config', config]);
      try {
        await waitForLine(daemon, (l) => l.startsWith('dpr: host 0 routing'), 10000, 'dpr start');
      } finally {
        daemon.kill('SIGKILL');
        stop();
      }
    });
  }

  test('an IPv6-only [::] listener starts, with a warning that IPv4 connections will be refused', async () => {
    const stop = await listen('::', true);
    const daemon = bed.spawn('a', [process.execPath, CLI, 'start', '--config', config]);
    try {
      await waitForLine(daemon, (l) => l.startsWith('dpr: host 0 routing'), 10000, 'dpr start');
      const warned = transcript(daemon).some((l) => /\[::\]:80 is IPv6-only and nothing listens on 0\.0\.0\.0:80/.test(l));
      assert.ok(warned, `no warning in:\n${transcript(daemon).join('\n')}`);
    } finally {
      daemon.kill('SIGKILL');
      stop();
    }
  });
});
