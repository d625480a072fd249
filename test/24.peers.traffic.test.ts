// docs/peers.md states the heartbeat traffic per host; the numbers must be
// those of the code: the datagram's length, the default interval, all-to-all.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { HEARTBEAT_LENGTH } from '../lib/heartbeat';
import { schema } from '../lib/config-schema';
import { repoRoot } from './support/repo';

const ON_THE_WIRE = HEARTBEAT_LENGTH + 8 + 20 + 14; // UDP, IPv4, Ethernet header

test('24.peers: docs/peers.md\'s traffic table is what the defaults send', () => {
  const doc = fs.readFileSync(path.join(repoRoot(), 'docs', 'peers.md'), 'utf8');
  assert.match(doc, new RegExp(`One heartbeat is ${ON_THE_WIRE} bytes on an Ethernet link`));
  const perSecond = 1000 / schema.peers.heartbeatMs.default;
  const rows = [...doc.matchAll(/^\| (\d+)\s+\| (\d+)\s+\| ([\d.]+) KB\/s\s+\|$/gm)];
  assert.ok(rows.length >= 3, 'the table has no rows');
  for (const [, hosts, datagrams, kb] of rows) {
    const n = Number(hosts) - 1;
    assert.equal(Number(datagrams), n * perSecond, `${hosts} hosts: datagrams/s`);
    assert.equal(Number(kb), Number((n * perSecond * ON_THE_WIRE / 1000).toFixed(1)), `${hosts} hosts: KB/s`);
  }
});
