// The parts of membership that need no etcd: which id a host claims, which
// records make members, retry delays, the claim file, the static source.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Backoff } from '../lib/membership/backoff';
import { planClaim, type ClaimInput } from '../lib/membership/claim';
import { readClaim, writeClaim } from '../lib/membership/claim-file';
import { encodeRecord, membersOf, type RawKv } from '../lib/membership/records';
import { sameHosts } from '../lib/membership/source';
import { StaticSource } from '../lib/membership/static';

const P = '/dpr/';
let revision = 10;
function kv(id: number | string, value: object | string, lease = '7', createRevision = String(revision++)): RawKv {
  return { key: `${P}hosts/${id}`, value: typeof value === 'string' ? value : JSON.stringify(value), lease, createRevision };
}
const host = (n: number): { service: string; cluster: string } => ({ service: `198.18.0.${n}`, cluster: `198.18.1.${n}` });
const claim = (over: Partial<ClaimInput>): ReturnType<typeof planClaim> =>
  planClaim({ prefix: P, kvs: [], lease: '100', me: host(9), held: null, fixed: null, saved: null, maxHosts: 4, ...over });
const ok = (): null => null;

test('26.membership.unit: a fresh host tries the free ids, lowest first', () => {
  assert.deepEqual(claim({ kvs: [kv(0, host(1), '1'), kv(2, host(3), '3')] }), { kind: 'try', ids: [1, 3] });
});

test("26.membership.unit: a host asks for its claim file's id before the lowest free one", () => {
  assert.deepEqual(claim({ kvs: [kv(1, host(2), '2')], saved: 3 }), { kind: 'try', ids: [3, 0, 2] });
  // Taken meanwhile: the lowest free ones only.
  assert.deepEqual(claim({ kvs: [kv(3, host(4), '4')], saved: 3 }), { kind: 'try', ids: [0, 1, 2] });
});

test('26.membership.unit: a record on its own lease is its claim already', () => {
  assert.deepEqual(claim({ kvs: [kv(0, host(1), '1'), kv(2, host(9), '100')] }), { kind: 'mine', id: 2 });
});

test('26.membership.unit: a configured self is the only id tried; held by another, the host waits, naming the holder', () => {
  assert.deepEqual(claim({ fixed: 2 }), { kind: 'try', ids: [2] });
  const p = claim({ fixed: 2, kvs: [kv(2, host(3), '3')] });
  assert.equal(p.kind, 'wait');
  assert.match((p as { reason: string }).reason, /id 2 \(self, the id the configuration sets\) is held by the host at 198\.18\.0\.3\/198\.18\.1\.3 \(lease 3\)/);
});

test('26.membership.unit: a running host never changes its id: it waits for the one it holds', () => {
  assert.deepEqual(claim({ held: 1 }), { kind: 'try', ids: [1] });
  const p = claim({ held: 1, kvs: [kv(1, host(2), '2')] });
  assert.equal(p.kind, 'wait');
  assert.match((p as { reason: string }).reason, /id 1 \(the id this host runs with\) is held by/);
});

test("26.membership.unit: this host's address under another live lease makes it wait", () => {
  const p = claim({ kvs: [kv(0, { service: '198.18.0.9', cluster: '198.18.1.200' }, '5')] });
  assert.equal(p.kind, 'wait');
  assert.match((p as { reason: string }).reason, /service address 198\.18\.0\.9 is registered as host 0 under another lease \(5\)/);
  assert.equal(claim({ kvs: [kv(0, { service: '198.18.0.200', cluster: '198.18.1.9' }, '5')] }).kind, 'wait');
});

test('26.membership.unit: no free id below maxHosts: wait', () => {
  const kvs = [0, 1, 2, 3].map((id) => kv(id, host(id + 1), String(id + 1)));
  assert.match((claim({ kvs }) as { reason: string }).reason, /no free id: all 4 ids/);
});

test('26.membership.unit: a key that holds garbage still occupies its id', () => {
  assert.deepEqual(claim({ kvs: [kv(0, 'garbage', '1')] }), { kind: 'try', ids: [1, 2, 3] });
});

test('26.membership.unit: members are the good records; the rest is ignored with the reason', () => {
  const m = membersOf(P, [
    kv(0, host(1)),
    kv(1, 'not json'),
    kv(2, { service: '198.18.0.300', cluster: '198.18.1.3' }),
    kv(3, host(4), '0'),
    kv('x', host(5)),
    kv(4, host(6)),
  ], (h) => (h.id === 4 ? 'id 4 is not below membership.etcd.maxHosts (4)' : null));
  assert.deepEqual(m.hosts, [{ id: 0, service: '198.18.0.1', cluster: '198.18.1.1', weight: 1 }]);
  assert.deepEqual([...m.ignored.keys()].sort(), ['/dpr/hosts/1', '/dpr/hosts/2', '/dpr/hosts/3', '/dpr/hosts/4', '/dpr/hosts/x']);
  assert.match(m.ignored.get('/dpr/hosts/1')!, /not JSON/);
  assert.match(m.ignored.get('/dpr/hosts/3')!, /not attached to a lease/);
  assert.match(m.ignored.get('/dpr/hosts/4')!, /maxHosts/);
});

test('26.membership.unit: of two records with one address the older claim stays, whatever the ids', () => {
  const m = membersOf(P, [kv(0, host(1), '1', '50'), kv(5, { service: '198.18.0.1', cluster: '198.18.1.7' }, '2', '20')], ok);
  assert.deepEqual(m.hosts.map((h) => h.id), [5]);
  assert.match(m.ignored.get('/dpr/hosts/0')!, /service 198\.18\.0\.1 is registered by host 5 already/);
});

test('26.membership.unit: a dual-stack record carries service6 and cluster6 (canonical); a half or unusable pair is ignored with the reason', () => {
  const me = { service: '198.18.0.1', cluster: '198.18.1.1', service6: '2001:2::1', cluster6: '2001:2:0:1::1', weight: 2 };
  const encoded = JSON.parse(encodeRecord(me, 'web1', new Date(0))) as Record<string, unknown>;
  assert.equal(encoded.service6, '2001:2::1');
  assert.equal(encoded.cluster6, '2001:2:0:1::1');
  assert.equal(JSON.parse(encodeRecord({ service: '198.18.0.1', cluster: '198.18.1.1', weight: 1 }, 'web1', new Date(0))).service6, undefined);
  const m = membersOf(P, [
    kv(0, encoded),
    kv(1, { ...host(2), service6: '2001:0002:0000:0000::2', cluster6: '2001:2:0:1:0:0:0:2' }),
    kv(2, { ...host(3), service6: '2001:2::3' }),
    kv(3, { ...host(4), service6: 'nope', cluster6: '2001:2:0:1::4' }),
    kv(4, { ...host(5), service6: '::1', cluster6: '2001:2:0:1::5' }),
    kv(5, { ...host(6), service6: '2001:2::1', cluster6: '2001:2:0:1::6' }),
  ], ok);
  assert.deepEqual(m.hosts, [
    { id: 0, service: '198.18.0.1', cluster: '198.18.1.1', service6: '2001:2::1', cluster6: '2001:2:0:1::1', weight: 2 },
    { id: 1, service: '198.18.0.2', cluster: '198.18.1.2', service6: '2001:2::2', cluster6: '2001:2:0:1::2', weight: 1 },
  ]);
  assert.match(m.ignored.get('/dpr/hosts/2')!, /has service6 but no cluster6/);
  assert.match(m.ignored.get('/dpr/hosts/3')!, /service6 'nope' is not an IPv6 address/);
  assert.match(m.ignored.get('/dpr/hosts/4')!, /service6 ::1 is the loopback address/);
  assert.match(m.ignored.get('/dpr/hosts/5')!, /its service6 2001:2::1 is registered by host 0 already/);
});

test('26.membership.unit: an IPv6-only record has no IPv4 addresses; a record of neither family is ignored; a shared IPv6 address makes a claim wait', () => {
  const me = { service6: '2001:2::1', cluster6: '2001:2:0:1::1', weight: 1 };
  const encoded = JSON.parse(encodeRecord(me, 'web1', new Date(0))) as Record<string, unknown>;
  assert.deepEqual([encoded.service, encoded.cluster, encoded.service6], [undefined, undefined, '2001:2::1']);
  const m = membersOf(P, [
    kv(0, encoded),
    kv(1, { service6: '2001:2::2', cluster6: '2001:2:0:1::2' }),
    kv(2, { weight: 1 }),
    kv(3, { service: '198.18.0.4', service6: '2001:2::4', cluster6: '2001:2:0:1::4' }),
    kv(4, { service6: '2001:2::5', cluster6: '2001:2:0:1::2' }),
  ], ok);
  assert.deepEqual(m.hosts, [
    { id: 0, service6: '2001:2::1', cluster6: '2001:2:0:1::1', weight: 1 },
    { id: 1, service6: '2001:2::2', cluster6: '2001:2:0:1::2', weight: 1 },
  ]);
  assert.match(m.ignored.get('/dpr/hosts/2')!, /service is not an IPv4 address/);
  assert.match(m.ignored.get('/dpr/hosts/3')!, /cluster is not an IPv4 address/);
  assert.match(m.ignored.get('/dpr/hosts/4')!, /its cluster6 2001:2:0:1::2 is registered by host 1 already/);
  const p = claim({ me, kvs: [kv(0, { service6: '2001:2::9', cluster6: '2001:2:0:1::1' }, '5')] });
  assert.equal(p.kind, 'wait');
  assert.match((p as { reason: string }).reason, /this host's cluster6 address 2001:2:0:1::1 is registered as host 0 under another lease \(5\)/);
  // Nothing in common with an IPv4-only record.
  assert.deepEqual(claim({ me, kvs: [kv(0, host(1), '5')] }), { kind: 'try', ids: [1, 2, 3] });
});

test('26.membership.unit: retry delays double from min to max, never below half a step', () => {
  const low = new Backoff(100, 1000, () => 0);
  assert.deepEqual(Array.from({ length: 6 }, () => low.next()), [50, 100, 200, 400, 500, 500]);
  const high = new Backoff(100, 1000, () => 1);
  assert.deepEqual(Array.from({ length: 6 }, () => high.next()), [100, 200, 400, 800, 1000, 1000]);
  high.reset();
  assert.equal(high.next(), 100);
  assert.throws(() => new Backoff(0, 10), RangeError);
});

test('26.membership.unit: the claim file keeps id and lease, only for its own prefix', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpr-claim-'));
  try {
    const file = path.join(dir, 'sub', 'membership.json');
    assert.equal(readClaim(file, P), null);
    const hosts = [{ id: 3, service: '198.18.0.4', cluster: '198.18.0.4', weight: 1 }];
    writeClaim(file, { prefix: P, id: 3, lease: '7587890', hosts });
    assert.deepEqual(readClaim(file, P), { prefix: P, id: 3, lease: '7587890', hosts });
    assert.equal(readClaim(file, '/other/'), null);
    writeClaim(file, { prefix: P, id: 3, lease: null, hosts });
    assert.deepEqual(readClaim(file, P), { prefix: P, id: 3, lease: null, hosts });
    fs.writeFileSync(file, '{"prefix":"/dpr/","id":"x"}');
    assert.equal(readClaim(file, P), null, 'a damaged file is a fresh start');
    assert.equal(readClaim('', P), null);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('26.membership.unit: the static source hands out the config list, sorted, and never changes', async () => {
  const s = new StaticSource(1, [{ id: 1, service: '198.18.0.2', cluster: '198.18.0.2', weight: 1 }, { id: 0, service: '198.18.0.1', cluster: '198.18.0.1', weight: 1 }]);
  const m = await s.start();
  assert.equal(m.self, 1);
  assert.deepEqual(m.hosts.map((h) => h.id), [0, 1]);
  assert.equal(s.status().state, 'static');
  await s.stop();
});

test('26.membership.unit: sameHosts compares every field, in any order', () => {
  const a = { id: 0, service: '198.18.0.1', cluster: '198.18.0.1', weight: 1 };
  const b = { id: 1, service: '198.18.0.2', cluster: '198.18.0.2', weight: 1 };
  assert.ok(sameHosts([a, b], [b, a]));
  assert.ok(!sameHosts([a, b], [a, { ...b, cluster: '198.18.0.3' }]));
  assert.ok(!sameHosts([a], [a, b]));
});
