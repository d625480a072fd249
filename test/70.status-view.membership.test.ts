// `dpr status`'s membership line (issue 16): where the host list comes from,
// and, with etcd, whether it can be reached; what docs/operations.md quotes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DaemonStatus } from '../lib/daemon';
import type { MemberStatus } from '../lib/membership';
import { buildView, renderText } from '../lib/status-view';

const AT = 2_000_000;

function sample(membership: Partial<MemberStatus> | undefined, at: number): { status: DaemonStatus; at: number } {
  const status = {
    self: 0, policy: 'hash', draining: false, startedAt: 1_000_000, load: 0, liveHosts: [0, 1], failOpen: false,
    health: { type: 'none', healthy: true, since: 0, ports: [] },
    peers: [{ id: 1, address: '198.18.0.2', up: true, load: 0, draining: false, healthy: true, report: null, lastHeardMs: 10, epoch: 1 }],
    entry: null, serve: null, heartbeats: null,
    restored: { flows: 0, forwarded: 0 }, eventLoopLagMaxMs: 0,
    membership: membership && {
      source: 'etcd', state: 'registered', since: AT - 60_000, self: 0, hosts: 4, lastError: null, retries: 0,
      changes: 3, failures: 0, ignoredRecords: 0, lease: '160ca233e31ac006', refused: 0, ...membership,
    },
  } as unknown as DaemonStatus;
  return { status, at };
}

const line = (m: Partial<MemberStatus> | undefined): string | undefined => {
  const v = buildView(sample(m, AT - 1000), sample(m, AT), new Map());
  return renderText(v).split('\n').find((l) => l.startsWith('membership'));
};

test('70.status-view.membership: a registered etcd host shows its id, lease and hosts', () => {
  assert.match(line({}) ?? '', /^membership\s+etcd: registered as id 0, lease 160ca233e31ac006, 4 hosts$/);
});

test('70.status-view.membership: etcd away: how long, why, and that the last list is kept', () => {
  assert.match(line({ state: 'unreachable', since: AT - 12_000, lastError: '14 UNAVAILABLE: connect ECONNREFUSED', retries: 5 }) ?? '',
    /^membership\s+etcd UNREACHABLE for 12s \(14 UNAVAILABLE: connect ECONNREFUSED\): keeping the last 4 hosts, 5 retries$/);
});

test('70.status-view.membership: waiting for an id, refused lists and ignored records are said', () => {
  assert.match(line({ state: 'waiting', since: AT - 3000, lastError: 'id 0 (self) is held by the host at 198.18.0.9/198.18.0.9' }) ?? '', /WAITING for 3s to hold an id \(id 0 \(self\) is held/);
  assert.match(line({ refused: 2, ignoredRecords: 1 }) ?? '', /2 host list\(s\) REFUSED \(see the log\); 1 record\(s\) in etcd ignored/);
  assert.match(line({ source: 'static', state: 'static', hosts: 3 }) ?? '', /^membership\s+static \(3 hosts in the configuration\)$/);
});

test('70.status-view.membership: a daemon that does not say (older) has no line', () => {
  assert.equal(line(undefined), undefined);
});
