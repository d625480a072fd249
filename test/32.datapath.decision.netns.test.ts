// The load policy's decision deadline (load.decisionTimeoutMs), end to end:
// a new connection whose decision does not come in time is served by the
// entry host itself, and one whose decision comes is routed as decided. No
// daemon: the test answers the entry queue's decisions itself (runner
// `decide`), with the product's rules from install.sh.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Testbed } from './support/netns';
import { curl, startServer } from './support/http';
import { startQueueRunner, type QueueRunner, type RunnerSpec } from './support/queue-runner';
import { clusterConfig, writeConfig } from './support/configs';
import { repoRoot } from './support/repo';

const CLIENT = '198.18.0.100';
const HOSTS = [{ name: 'a', addr: '198.18.0.1' }, { name: 'b', addr: '198.18.0.2' }] as const;
const TIMEOUT_MS = 300;
const INSTALL = path.join(repoRoot(), 'iptables', 'install.sh');
const configFiles = HOSTS.map((_, self) => writeConfig(clusterConfig(self, { hosts: 2 }, {
  policy: 'load', load: { decisionTimeoutMs: TIMEOUT_MS }, flows: { stateFile: '' },
})));

describe('32.datapath.decision: the load policy\'s deadline', () => {
  const bed = Testbed.create([{ name: 'client', addrs: [`${CLIENT}/24`] }, ...HOSTS.map((h) => ({ name: h.name, addrs: [`${h.addr}/24`] }))], 'dd');
  let entry: QueueRunner | undefined;
  let serve: QueueRunner | undefined;
  const startEntry = async (decide: RunnerSpec['decide']): Promise<QueueRunner> => {
    await entry?.stop();
    entry = await startQueueRunner(bed, 'a', { config: configFiles[0]!, role: 'entry', lookupTable: [0, 1], decide });
    return entry;
  };
  after(async () => {
    await bed.destroy();
  });

  it('setup: rules, servers and B\'s serve queue', async () => {
    HOSTS.forEach((h, id) => bed.exec(h.name, ['bash', INSTALL, configFiles[id]!]));
    await Promise.all(HOSTS.map((h) => startServer(bed, h.name, h.name)));
    serve = await startQueueRunner(bed, 'b', { config: configFiles[1]!, role: 'serve' });
  });

  it('a decision that comes in time routes the connection as decided (to B)', async () => {
    const q = await startEntry({ target: 1 });
    for (let i = 0; i < 5; i++) assert.match(curl(bed, 'client', `http://${HOSTS[0].addr}/`).body, /^served-by=b /);
    const s = await q.stats();
    assert.equal(s.queue.decisions.timedOut, 0);
    assert.equal(s.queue.decisions.answered, 5);
  });

  it(`a decision that never comes is served locally after load.decisionTimeoutMs (${TIMEOUT_MS} ms), and counted`, async () => {
    const q = await startEntry('never');
    for (let i = 0; i < 3; i++) {
      const started = Date.now();
      const r = curl(bed, 'client', `http://${HOSTS[0].addr}/`);
      const took = Date.now() - started;
      assert.match(r.body, /^served-by=a /, 'served by the entry host itself');
      assert.equal(r.remoteIp, HOSTS[0].addr);
      // The SYN waited for the deadline (and no longer than a SYN retransmission, 1 s, would take).
      assert.ok(took >= TIMEOUT_MS * 0.9, `answered after ${took} ms, before the deadline`);
    }
    const s = await q.stats();
    assert.equal(s.queue.decisions.requested, 3);
    assert.equal(s.queue.decisions.timedOut, 3);
    assert.equal(s.newFlows.local, 3);
    void serve;
  });
});
