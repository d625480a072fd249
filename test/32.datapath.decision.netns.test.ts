// The load policy's decisions in the data path, end to end: the entry
// queue decides each new connection in its own thread from this host's load
// and its peers' (no JavaScript, no deadline), and the connection is served
// where it decided. No daemon: the test sets the entry host's load itself
// (runner `ownLoad`; the peer sends no report, so it counts as idle), with the
// product's rules from install.sh.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Testbed } from './support/netns';
import { curl, startServer } from './support/http';
import { startQueueRunner, type QueueRunner } from './support/queue-runner';
import { clusterConfig, writeConfig } from './support/configs';
import { repoRoot } from './support/repo';

const CLIENT = '198.18.0.100';
const HOSTS = [{ name: 'a', addr: '198.18.0.1' }, { name: 'b', addr: '198.18.0.2' }] as const;
const INSTALL = path.join(repoRoot(), 'iptables', 'install.sh');
const configFiles = HOSTS.map((_, self) => writeConfig(clusterConfig(self, { hosts: 2 }, {
  policy: 'load', flows: { stateFile: '' },
})));

describe('32.datapath.decision: the load policy decides in the entry queue', () => {
  const bed = Testbed.create([{ name: 'client', addrs: [`${CLIENT}/24`] }, ...HOSTS.map((h) => ({ name: h.name, addrs: [`${h.addr}/24`] }))], 'dd');
  let entry: QueueRunner | undefined;
  let serve: QueueRunner | undefined;
  const startEntry = async (ownLoad: number): Promise<QueueRunner> => {
    await entry?.stop();
    entry = await startQueueRunner(bed, 'a', { config: configFiles[0]!, role: 'entry', lookupTable: [0, 1], ownLoad });
    return entry;
  };
  after(async () => {
    await entry?.stop();
    await serve?.stop();
    await bed.destroy();
  });

  it('setup: rules, servers and B\'s serve queue', async () => {
    HOSTS.forEach((h, id) => bed.exec(h.name, ['bash', INSTALL, configFiles[id]!]));
    await Promise.all(HOSTS.map((h) => startServer(bed, h.name, h.name)));
    serve = await startQueueRunner(bed, 'b', { config: configFiles[1]!, role: 'serve' });
  });

  it('a busy entry host sends new connections to its idle peer, which answers them', async () => {
    const q = await startEntry(50);
    for (let i = 0; i < 5; i++) {
      const r = curl(bed, 'client', `http://${HOSTS[0].addr}/`);
      assert.match(r.body, /^served-by=b /);
      assert.equal(r.remoteIp, HOSTS[0].addr, 'the client sees the address it connected to');
    }
    const s = await q.stats();
    assert.equal(s.newFlows.forwarded, 5);
    assert.equal(s.newFlows.local, 0);
  });

  it('an idle entry host keeps them', async () => {
    const q = await startEntry(0);
    for (let i = 0; i < 3; i++) assert.match(curl(bed, 'client', `http://${HOSTS[0].addr}/`).body, /^served-by=a /);
    const s = await q.stats();
    assert.equal(s.newFlows.local, 3);
    assert.equal(s.newFlows.forwarded, 0);
  });
});
