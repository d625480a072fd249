// docs/dpr.service: systemd accepts it as written (systemd-analyze verify,
// with the paths pointed at this checkout), it restarts nothing that needs a
// person (the exit codes of lib/exit-codes.ts), and the daemon keeps the
// Type=notify promise: READY=1 once it routes, STOPPING=1 when it stops.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { EXIT } from '../lib/exit-codes';
import { Testbed } from './support/netns';
import { waitForLine } from './support/lines';
import { clusterConfig, writeConfig } from './support/configs';

const ROOT = path.resolve(__dirname, '..', '..');
const UNIT = path.join(ROOT, 'docs', 'dpr.service');
const CLI = path.join(ROOT, 'dist', 'lib', 'cli.js');

const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

/** `Key=value` lines of the [Service] section. */
function service(text: string): Map<string, string> {
  const body = text.split(/^\[Service\]$/m)[1]!.split(/^\[/m)[0]!;
  return new Map([...body.matchAll(/^(\w+)=(.*)$/gm)].map((m) => [m[1]!, m[2]!]));
}

test('70.systemd: systemd-analyze verify accepts docs/dpr.service without a word', (t) => {
  if (!has('systemd-analyze')) return t.skip('systemd-analyze is not installed (Debian: systemd)');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpr-unit-'));
  try {
    const unit = path.join(dir, 'dpr.service');
    fs.writeFileSync(unit, fs.readFileSync(UNIT, 'utf8').replaceAll('/opt/dpr', ROOT).replaceAll('/usr/bin/node', process.execPath));
    const r = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8', timeout: 60000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(`${r.stdout}${r.stderr}`.trim(), '', 'systemd-analyze had something to say');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('70.systemd: the unit does not restart exit 2 or 3, reloads with SIGHUP, is Type=notify and sandboxed', () => {
  const s = service(fs.readFileSync(UNIT, 'utf8'));
  assert.equal(s.get('RestartPreventExitStatus'), `${EXIT.config} ${EXIT.checks}`);
  assert.equal(s.get('Restart'), 'on-failure');
  assert.equal(s.get('Type'), 'notify');
  assert.equal(s.get('NotifyAccess'), 'main');
  assert.equal(s.get('ExecReload'), '/bin/kill -HUP $MAINPID');
  assert.equal(s.get('CapabilityBoundingSet'), 'CAP_NET_ADMIN CAP_NET_RAW');
  for (const [k, v] of [['NoNewPrivileges', 'yes'], ['ProtectSystem', 'strict'], ['ProtectHome', 'yes'], ['PrivateTmp', 'yes'], ['StateDirectory', 'dpr']]) {
    assert.equal(s.get(k), v, k);
  }
  assert.ok(!s.has('ProtectKernelTunables'), 'install.sh writes net sysctls');
  // drain.timeoutMs defaults to 30 s: systemd must not kill a drain halfway.
  assert.ok(Number(s.get('TimeoutStopSec')) > 30, `TimeoutStopSec=${s.get('TimeoutStopSec')}`);
});

test('70.systemd: dpr start tells NOTIFY_SOCKET READY=1 once it routes, STOPPING=1 on SIGTERM', async (t) => {
  if (!has('python3')) return t.skip('python3 is not installed: it stands in for systemd as the receiver');
  const bed = Testbed.create([{ name: 'a', addrs: ['198.18.0.1/24'] }], 'sd');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpr-notify-'));
  try {
    const sock = path.join(dir, 'notify');
    // A datagram socket as systemd's: prints each message on a line of its own.
    const receiver = bed.spawn('a', ['python3', '-u', '-c', [
      'import socket, sys',
      's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
      `s.bind(${JSON.stringify(sock)})`,
      'print("listening", flush=True)',
      'while True: print(s.recv(4096).decode().replace("\\n", " "), flush=True)',
    ].join('\n')]);
    const lines: string[] = [];
    await waitForLine(receiver, (l) => l === 'listening', 10000, 'notify receiver');
    receiver.stdout!.on('data', (c: Buffer) => lines.push(...c.toString().split('\n').filter(Boolean)));
    const config = writeConfig(clusterConfig(0, { hosts: 1 }, { flows: { stateFile: '' } }));
    bed.exec('a', ['bash', path.join(ROOT, 'iptables', 'install.sh'), config]);
    const daemon = bed.spawn('a', [process.execPath, CLI, 'start', '--config', config], { env: { ...process.env, NOTIFY_SOCKET: sock, DPR_LOG_LEVEL: 'warn' } });
    await waitForLine(daemon, (l) => l.startsWith('dpr: host 0 routing'), 15000, 'dpr daemon');
    for (let i = 0; !lines.includes('READY=1'); i++) {
      assert.ok(i < 50, `no READY=1; got ${JSON.stringify(lines)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const exited = new Promise<number | null>((resolve) => daemon.once('exit', resolve));
    daemon.kill('SIGTERM');
    assert.equal(await exited, 0);
    for (let i = 0; !lines.includes('STOPPING=1'); i++) {
      assert.ok(i < 50, `no STOPPING=1; got ${JSON.stringify(lines)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await bed.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
