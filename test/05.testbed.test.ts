import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Testbed } from './support/netns';

test('05.testbed: two hosts on the bridge reach each other and the bed leaves nothing behind', async () => {
  const bed = Testbed.create([
    { name: 'a', addrs: ['198.18.0.1/24'] },
    { name: 'b', addrs: ['198.18.0.2/24'] },
  ]);
  const names = bed.hosts.map((h) => bed.ns(h));
  try {
    const out = bed.exec('a', ['ping', '-c', '1', '-W', '2', '198.18.0.2']);
    assert.match(out, /1 received/);
  } finally {
    await bed.destroy();
  }
  const left = (await import('node:child_process')).execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  for (const n of names) assert.ok(!left.includes(n), `namespace ${n} still exists`);
});
