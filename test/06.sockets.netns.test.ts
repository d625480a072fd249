import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Testbed } from './support/netns';
import { waitForLine } from './support/lines';

const SCRIPT = `
const net = require('net');
const { countEstablished } = require(${JSON.stringify(path.resolve(__dirname, '..', 'lib', 'native.js'))});
const { activeConnections } = require(${JSON.stringify(path.resolve(__dirname, '..', 'lib', 'host.js'))});
const server = net.createServer((s) => s.on('data', () => {})).listen(80, '0.0.0.0', async () => {
  const open = [];
  for (let i = 0; i < 25; i++) open.push(await new Promise((r) => { const c = net.connect(80, '198.18.0.1', () => r(c)); }));
  // 5 closed ones leave TIME_WAIT sockets behind, which must not count.
  for (const c of open.splice(0, 5)) c.destroy();
  await new Promise((r) => setTimeout(r, 200));
  console.log(JSON.stringify({ native: countEstablished([80]), proc: activeConnections([80]), other: countEstablished([81]) }));
  process.exit(0);
});`;

test('06.sockets: the sock_diag count of established connections agrees with /proc/net/tcp', async () => {
  const bed = Testbed.create([{ name: 'a', addrs: ['198.18.0.1/24'] }], 'so');
  try {
    const child = bed.spawn('a', [process.execPath, '-e', SCRIPT]);
    const line = await waitForLine(child, (l) => l.startsWith('{'), 10000, 'socket counter');
    const r = JSON.parse(line) as { native: number; proc: number; other: number };
    // 20 connections open, each seen from the server side on port 80.
    assert.equal(r.native, 20);
    assert.equal(r.proc, 20);
    assert.equal(r.other, 0);
  } finally {
    await bed.destroy();
  }
});
