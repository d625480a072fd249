// Membership from a real etcd (Debian's etcd-server, started here in a
// namespace of its own): hosts that register, watch, claim ids, leave, die,
// restart, and an etcd that stops and comes back. Each host runs only its
// membership source (tools/membership-agent.ts) in a namespace of its own,
// as the daemon will; each test has a key prefix of its own on one etcd.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Testbed } from './support/netns';
import { ETCD_BINARY, EtcdServer } from './support/etcd';
import { Agent, etcdConfig, stateDir } from './support/membership';
import { sleep, waitFor } from './support/wait';

const ETCD_ADDRESS = '198.18.0.250';
const TLS_ADDRESS = '198.18.0.251';
const HOSTS = 5;
const address = (i: number): string => `198.18.0.${i + 1}`;
const TTL_S = 2;

const skip = !fs.existsSync(ETCD_BINARY) ? `${ETCD_BINARY} is missing (Debian's etcd-server; npm run setup installs it)` : process.getuid?.() !== 0 ? 'needs root (network namespaces)' : false;

describe('27.membership.etcd', { skip, concurrency: 1 }, () => {
  let bed: Testbed;
  let etcd: EtcdServer;
  const claims = stateDir();
  const agents: Agent[] = [];
  let prefixes = 0;

  before(async () => {
    bed = Testbed.create([
      { name: 'etcd', addrs: [`${ETCD_ADDRESS}/24`] },
      { name: 'etcdtls', addrs: [`${TLS_ADDRESS}/24`] },
      ...Array.from({ length: HOSTS }, (_, i) => ({ name: `h${i}`, addrs: [`${address(i)}/24`] })),
    ], 'etcd');
    etcd = new EtcdServer(bed, 'etcd', ETCD_ADDRESS);
    await etcd.start();
  });

  after(async () => {
    for (const a of agents) await a.kill();
    await etcd?.destroy();
    await bed?.destroy();
  });

  /** A fresh prefix per test: the tests share one etcd but not their records. */
  const newPrefix = (): string => `/t${++prefixes}/`;

  function agent(i: number, prefix: string, opts: { etcd?: Record<string, unknown>; extra?: Record<string, unknown>; claimFile?: string } = {}): Agent {
    const file = opts.claimFile ?? path.join(claims, `${prefix.replaceAll('/', '')}-h${i}.json`);
    const a = new Agent(bed, `h${i}`, etcdConfig(address(i), etcd.endpoint, prefix, file, opts.etcd, opts.extra));
    agents.push(a);
    return a;
  }

  /** Hosts that join one after the other, so host i claims id i (the lowest free one). */
  async function join(prefix: string, hosts: number[], opts: Parameters<typeof agent>[2] = {}): Promise<Agent[]> {
    const list: Agent[] = [];
    for (const i of hosts) {
      const a = agent(i, prefix, opts);
      await a.started();
      list.push(a);
    }
    return list;
  }

  const claimFile = (prefix: string, i: number): string => path.join(claims, `${prefix.replaceAll('/', '')}-h${i}.json`);

  /** Every agent's last list has exactly these ids, each with its host's address. */
  async function allSee(list: Agent[], ids: Record<number, number>, timeoutMs = 10000): Promise<void> {
    const want = Object.entries(ids).map(([id, host]) => ({ id: Number(id), service: address(host), cluster: address(host), weight: 1 })).sort((a, b) => a.id - b.id);
    await waitFor(`every host to see ${JSON.stringify(ids)}`, () => list.every((a) => JSON.stringify(a.hosts()) === JSON.stringify(want)), timeoutMs);
  }

  /** Puts a key through etcd's JSON gateway (what any client with write access could write). */
  function rawPut(key: string, value: string, ttlS = 0): void {
    const b64 = (s: string): string => Buffer.from(s).toString('base64');
    let lease: string | undefined;
    if (ttlS > 0) lease = JSON.parse(bed.exec('etcd', ['curl', '-sS', '-X', 'POST', `${etcd.endpoint}/v3/lease/grant`, '-d', JSON.stringify({ TTL: ttlS })])).ID as string;
    const out = bed.exec('etcd', ['curl', '-sS', '-X', 'POST', `${etcd.endpoint}/v3/kv/put`, '-d', JSON.stringify({ key: b64(key), value: b64(value), ...(lease ? { lease } : {}) })]);
    assert.ok(!/error/i.test(out), `put ${key}: ${out}`);
  }

  test('three hosts that start at once claim three different ids, the lowest ones, and all see the same list', async () => {
    const prefix = newPrefix();
    const list = [0, 1, 2].map((i) => agent(i, prefix));
    const started = await Promise.all(list.map((a) => a.started()));
    const ids = started.map((s) => s.self);
    assert.deepEqual([...ids].sort(), [0, 1, 2], `ids claimed: ${ids.join(', ')}`);
    await allSee(list, Object.fromEntries(ids.map((id, host) => [id, host])));
    for (const a of list) assert.equal((await a.status()).state, 'registered');
    for (const a of list) await a.stop();
  });

  test('a host that joins is in every list; one that leaves (lease revoked) is out at once; one that dies is out once its lease expires', async () => {
    const prefix = newPrefix();
    const [a, b, c] = await join(prefix, [0, 1, 2]);
    await allSee([a!, b!, c!], { 0: 0, 1: 1, 2: 2 });

    const d = agent(3, prefix);
    assert.equal((await d.started()).self, 3);
    await allSee([a!, b!, c!, d], { 0: 0, 1: 1, 2: 2, 3: 3 });

    let t = Date.now();
    await c!.stop();
    await allSee([a!, b!, d], { 0: 0, 1: 1, 3: 3 });
    const leftMs = Date.now() - t;
    assert.ok(leftMs < TTL_S * 1000, `a host that left was out only after ${leftMs} ms: it should not wait for its lease to expire`);

    t = Date.now();
    await d.kill();
    await allSee([a!, b!], { 0: 0, 1: 1 }, TTL_S * 1000 + 10000);
    const diedMs = Date.now() - t;
    // Renewed every TTL/3, so at least 2/3 of the TTL was left when it died.
    assert.ok(diedMs >= (TTL_S * 1000 * 2) / 3 - 200, `a dead host was out after ${diedMs} ms: before its lease (TTL ${TTL_S} s) could have expired`);
    for (const x of [a!, b!]) await x.stop();
  });

  test('a host that crashes and comes back within the TTL keeps its id and its lease, and its peers see no change', async () => {
    const prefix = newPrefix();
    // A TTL the restart surely fits in: with 2 s, a restart beside a CPU hog
    // came after the lease (renewed every TTL/3) had expired.
    const ttl = { leaseTtlS: 6 };
    const [a, b] = await join(prefix, [0, 1], { etcd: ttl });
    await allSee([a!, b!], { 0: 0, 1: 1 });
    const lease = (await b!.status()).lease;
    const changesBefore = a!.changes();

    await b!.kill();
    const again = agent(1, prefix, { etcd: ttl });
    assert.equal((await again.started()).self, 1);
    assert.equal((await again.status()).lease, lease, 'the restarted host should go on with the lease of its claim file');
    // Longer than the TTL: had the restart taken a new lease, the old record would have gone by now.
    await sleep(ttl.leaseTtlS * 1000 + 1000);
    assert.equal(a!.changes(), changesBefore, `the peer saw the membership change: ${JSON.stringify(a!.events.slice(-3))}`);
    assert.deepEqual(a!.ids(), [0, 1]);
    for (const x of [a!, again]) await x.stop();
  });

  test('a host that left and comes back asks for its old id first; a new host takes the lowest free one', async () => {
    const prefix = newPrefix();
    const [a, b, c] = await join(prefix, [0, 1, 2]);
    await allSee([a!, b!, c!], { 0: 0, 1: 1, 2: 2 });
    await a!.stop();
    await c!.stop();
    await allSee([b!], { 1: 1 });
    // Ids 0 and 2 are free: h2's claim file says 2.
    const c2 = agent(2, prefix);
    assert.equal((await c2.started()).self, 2);
    const fresh = agent(3, prefix);
    assert.equal((await fresh.started()).self, 0);
    await allSee([b!, c2, fresh], { 0: 3, 1: 1, 2: 2 });
    for (const x of [b!, c2, fresh]) await x.stop();
  });

  test('a host configured with an id another holds waits, says so, and takes the id once it is free', async () => {
    const prefix = newPrefix();
    const a = agent(0, prefix);
    assert.equal((await a.started()).self, 0);
    const b = agent(1, prefix, { extra: { self: 0 } });
    await waitFor('the second host to wait', async () => (await b.status()).state === 'waiting', 10000, 200);
    const s = await b.status();
    assert.match(s.lastError ?? '', /id 0 \(self.*\) is held by the host at 198\.18\.0\.1/);
    assert.equal(s.self, null);
    assert.ok(!b.isStarted(), 'a host that cannot hold its id must not start');
    assert.deepEqual(a.ids(), [0], 'the waiting host must not appear in the list');
    await a.stop();
    assert.equal((await b.started()).self, 0);
    await b.stop();
  });

  test("a host whose address is still registered under another live lease (its last run's, without a claim file) waits until that lease expires", async () => {
    const prefix = newPrefix();
    // A TTL long enough that the restart surely comes before the old lease expires.
    const ttl = { leaseTtlS: 6 };
    const [a, b] = await join(prefix, [0, 1], { etcd: ttl });
    await b!.kill();
    const killed = Date.now();
    fs.rmSync(claimFile(prefix, 1));
    const again = agent(1, prefix, { etcd: ttl });
    await waitFor('the restarted host to wait', async () => (await again.status()).state === 'waiting', 10000, 100);
    assert.match((await again.status()).lastError ?? '', /service address 198\.18\.0\.2 is registered as host 1 under another lease/);
    assert.deepEqual(a!.ids(), [0, 1]);
    const { self } = await again.started(6000 + 10000);
    // Renewed every TTL/3: at least 4 of its 6 s were left when it was killed.
    assert.ok(Date.now() - killed >= 3500, `it registered ${Date.now() - killed} ms after the kill: before the old lease could have expired`);
    assert.equal(self, 1, 'the lowest free id, the one it had');
    await allSee([a!, again], { 0: 0, 1: 1 });
    for (const x of [a!, again]) await x.stop();
  });

  test('records that are not hosts are ignored and counted; a second record with a registered address too', async () => {
    const prefix = newPrefix();
    const a = agent(0, prefix);
    await a.started();
    rawPut(`${prefix}hosts/7`, 'not json', 60);
    rawPut(`${prefix}hosts/8`, JSON.stringify({ service: '198.18.0.9', cluster: '198.18.0.9' }));
    rawPut(`${prefix}hosts/9`, JSON.stringify({ service: address(0), cluster: '198.18.0.77' }), 60);
    rawPut(`${prefix}hosts/200`, JSON.stringify({ service: '198.18.0.90', cluster: '198.18.0.90' }), 60);
    rawPut(`${prefix}hosts/10`, JSON.stringify({ service: '198.18.0.91', cluster: '198.18.9.91' }), 60);
    rawPut(`${prefix}hosts/11`, JSON.stringify({ service: '198.18.0.92', cluster: '198.18.0.92' }), 60);
    await waitFor('the good record to join', () => a.ids().includes(11), 5000);
    const s = await a.status();
    assert.deepEqual(a.ids(), [0, 11]);
    // not JSON; no lease; h0's service address; id past maxHosts (64); cluster address outside clusterCidr.
    assert.equal(s.ignoredRecords, 5);
    assert.equal(s.state, 'registered');
    await a.stop();
  });

  test('etcd stopped and started again: every host keeps its list, says it is unreachable, and comes back to the same id and lease with no change', async () => {
    const prefix = newPrefix();
    const list = await join(prefix, [0, 1, 2]);
    await allSee(list, { 0: 0, 1: 1, 2: 2 });
    const leases = await Promise.all(list.map(async (x) => (await x.status()).lease));
    const changes = list.map((x) => x.changes());

    await etcd.stop('SIGKILL');
    for (const x of list) await waitFor(`${x.host} to see etcd gone`, async () => (await x.status()).state === 'unreachable', 10000, 200);
    // Twice the TTL: leases would have run out had etcd been up and deaf.
    await sleep(2 * TTL_S * 1000);
    for (const x of list) {
      const s = await x.status();
      assert.equal(s.state, 'unreachable');
      assert.equal(s.hosts, 3, 'the last list is kept');
      assert.ok(s.retries >= 2, `retried ${s.retries} times in ${2 * TTL_S} s`);
      assert.ok(s.lastError, 'the reason is told');
    }
    assert.deepEqual(list.map((x) => x.changes()), changes, 'no list changed while etcd was away');

    await etcd.start();
    for (const x of list) await waitFor(`${x.host} to register again`, async () => (await x.status()).state === 'registered', 15000, 200);
    assert.deepEqual(await Promise.all(list.map(async (x) => (await x.status()).lease)), leases, 'the same leases (etcd keeps them across a restart)');
    assert.deepEqual(list.map((x) => x.changes()), changes, 'no list changed when etcd came back');
    // The watch works again: a host that joins now is seen by all.
    const d = agent(3, prefix);
    assert.equal((await d.started()).self, 3);
    await allSee([...list, d], { 0: 0, 1: 1, 2: 2, 3: 3 });
    for (const x of [...list, d]) await x.stop();
  });

  test('over TLS with client certificates, as a user with a password: hosts register and see each other; a wrong password is named, and the host waits', async () => {
    const secure = new EtcdServer(bed, 'etcdtls', TLS_ADDRESS, { tls: true });
    try {
      await secure.start();
      const prefix = newPrefix();
      const b64 = (v: string): string => Buffer.from(v).toString('base64');
      const end = prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
      // etcd wants a root user before auth goes on; dpr's user may use its prefix and nothing else.
      for (const [route, body] of [
        ['/v3/auth/user/add', { name: 'root', password: 'rootpw' }],
        ['/v3/auth/role/add', { name: 'root' }],
        ['/v3/auth/user/grant', { user: 'root', role: 'root' }],
        ['/v3/auth/user/add', { name: 'dpr', password: 's3cret' }],
        ['/v3/auth/role/add', { name: 'dpr' }],
        ['/v3/auth/role/grant', { name: 'dpr', perm: { permType: 'READWRITE', key: b64(prefix), range_end: b64(end) } }],
        ['/v3/auth/user/grant', { user: 'dpr', role: 'dpr' }],
        ['/v3/auth/enable', {}],
      ] as const) {
        const r = secure.api(route, body);
        assert.ok(!('error' in r), `${route}: ${JSON.stringify(r)}`);
      }
      const certs = secure.certs!;
      const password = path.join(claims, 'etcd.password');
      fs.writeFileSync(password, 's3cret\n');
      const settings = (file: string) => ({ etcd: { endpoints: [secure.endpoint], tls: { ca: certs.ca, cert: certs.clientCert, key: certs.clientKey }, username: 'dpr', passwordFile: file } });
      const [a, b] = await join(prefix, [0, 1], settings(password));
      await allSee([a!, b!], { 0: 0, 1: 1 });

      const wrong = path.join(claims, 'wrong.password');
      fs.writeFileSync(wrong, 'not it\n');
      const c = agent(2, prefix, settings(wrong));
      await waitFor('the host with a wrong password to say why it cannot register', async () => /authentication failed/i.test((await c.status()).lastError ?? ''), 10000, 200);
      assert.equal((await c.status()).state, 'unreachable');
      assert.ok(!c.isStarted());
      assert.deepEqual(a!.ids(), [0, 1]);
      await c.kill();
      for (const x of [a!, b!]) await x.stop();
    } finally {
      await secure.destroy();
    }
  });
});
