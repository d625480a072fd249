// This host as a cluster member (lib/membership/member.ts) without root or
// etcd: a source the test drives and a daemon that records its reloads.
// What it holds: the daemon starts only with a first membership, a stop
// while waiting for it ends the wait, every later list becomes one reload
// (in order, stale ones skipped), a refused list is tried again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import winston from 'winston';
import { loadConfig, type DprConfig, type HostEntry } from '../lib/config';
import type { Daemon, ReloadResult } from '../lib/daemon';
import { ClusterMember, StoppedBeforeStart } from '../lib/membership';
import type { Membership, MembershipEvents, MembershipSource, MembershipStatus } from '../lib/membership';
import { writeConfig } from './support/configs';
import { waitFor } from './support/wait';

const quiet = winston.createLogger({ silent: true });
const host = (id: number): HostEntry => ({ id, service: `198.18.0.${id + 1}`, cluster: `198.18.0.${id + 1}`, weight: 1 });

const file = loadConfig({
  file: writeConfig({
    clusterCidr: '198.18.0.0/24', peers: { key: '00112233445566778899aabbccddeeff' },
    membership: { source: 'etcd', service: '198.18.0.1', cluster: '198.18.0.1', etcd: { endpoints: ['http://198.18.0.250:2379'] } },
  }),
  env: {}, ephemeralRange: [32768, 60999],
});

class FakeSource extends EventEmitter<MembershipEvents> implements MembershipSource {
  stopped = false;
  private resolve: ((m: Membership) => void) | null = null;
  start(): Promise<Membership> {
    return new Promise((resolve) => (this.resolve = resolve));
  }
  register(m: Membership): void {
    this.resolve!(m);
  }
  async stop(): Promise<void> {
    this.stopped = true;
  }
  status(): MembershipStatus {
    return { source: 'etcd', state: 'registered', since: 0, self: 0, hosts: 1, lastError: null, retries: 0, changes: 1, failures: 0, ignoredRecords: 0, lease: '1' };
  }
}

/** A daemon that applies (or refuses) whatever its next() gives it, and keeps the lists. */
function fakeDaemon(refuse: () => boolean) {
  const lists: number[][] = [];
  const started: Array<Readonly<DprConfig>> = [];
  let next: () => Readonly<DprConfig> = () => { throw new Error('no daemon'); };
  const make = (config: Readonly<DprConfig>, n: () => Readonly<DprConfig>): Daemon => {
    started.push(config);
    next = n;
    return {
      start: async () => undefined,
      stop: async () => undefined,
      status: () => ({ self: 0 }),
      reload: async (): Promise<ReloadResult> => {
        const c = next();
        // A reload takes a while (rules, health checks): lists that come meanwhile must wait.
        await new Promise((r) => setTimeout(r, 20));
        if (refuse()) return { ok: false, key: 'hosts', reason: 'iptables-restore: resource busy' };
        lists.push(c.hosts.map((h) => h.id));
        return { ok: true, changed: ['hosts'] };
      },
    } as unknown as Daemon;
  };
  return { lists, started, make };
}

function member(source: FakeSource, d: ReturnType<typeof fakeDaemon>, rules: Array<Readonly<DprConfig>> = []): ClusterMember {
  return new ClusterMember(file, source, { makeDaemon: d.make, readFile: () => file, applyRules: (c) => rules.push(c), log: quiet, retryFirstMs: 30 });
}

test('29.member: the daemon starts with the first membership, its rules installed first', async () => {
  const source = new FakeSource();
  const d = fakeDaemon(() => false);
  const rules: Array<Readonly<DprConfig>> = [];
  const m = member(source, d, rules);
  const started = m.start();
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(d.started.length, 0, 'no daemon before the first membership');
  source.register({ self: 0, hosts: [host(0), host(1)] });
  await started;
  assert.deepEqual(d.started[0]!.hosts.map((h) => h.id), [0, 1]);
  assert.equal(d.started[0]!.self, 0);
  assert.deepEqual(rules.map((c) => c.hosts.length), [2]);
  await m.stop();
  assert.ok(source.stopped, 'stopping leaves the cluster');
});

test('29.member: a stop asked for while it waits for the first membership ends the wait; nothing started', async () => {
  const source = new FakeSource();
  const d = fakeDaemon(() => false);
  const m = member(source, d);
  const abort = new AbortController();
  m.stopWaitingOn(abort.signal);
  const started = m.start();
  abort.abort();
  await assert.rejects(started, StoppedBeforeStart);
  assert.ok(source.stopped);
  assert.equal(d.started.length, 0);
});

test('29.member: each new list is one reload, in order; lists that came while one was applied are skipped but the last', async () => {
  const source = new FakeSource();
  const d = fakeDaemon(() => false);
  const m = member(source, d);
  const started = m.start();
  source.register({ self: 0, hosts: [host(0)] });
  await started;
  source.emit('hosts', [host(0), host(1)]);
  // While that one is applied (a reload takes 20 ms here), two more come: only the newer matters.
  await new Promise((r) => setTimeout(r, 5));
  source.emit('hosts', [host(0), host(1), host(2)]);
  source.emit('hosts', [host(0), host(2)]);
  await waitFor('the last list applied', () => d.lists.at(-1)?.join() === '0,2', 2000);
  assert.deepEqual(d.lists, [[0, 1], [0, 2]]);
  assert.equal(m.status().membership.refused, 0);
  await m.stop();
});

test('29.member: a list the daemon refuses is tried again until it applies, and counted', async () => {
  const source = new FakeSource();
  let refusals = 2;
  const d = fakeDaemon(() => refusals-- > 0);
  const m = member(source, d);
  const started = m.start();
  source.register({ self: 0, hosts: [host(0)] });
  await started;
  source.emit('hosts', [host(0), host(3)]);
  await waitFor('the list applied after two refusals', () => d.lists.length === 1, 3000);
  assert.deepEqual(d.lists, [[0, 3]]);
  assert.equal(m.status().membership.refused, 2);
  await m.stop();
});
