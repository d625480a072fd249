// The rewrite-mode data path end to end (DESIGN §4), with no daemon: the test
// drives the addon's Queue directly, one runner process per host namespace.
// A client connects to A's service address; A's entry queue forwards every new
// flow to B (a one-slot lookup table naming B); B's serve queue restores the
// destination and B answers the client directly with A's address.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import type { QueueOptions, QueueStats } from '../lib/native';
import { Testbed } from './support/netns';
import { curl, curlArgv, parseCurl, startServer } from './support/http';
import { startQueueRunner, type EngineSpec, type QueueRunner } from './support/queue-runner';

const CLIENT = '198.18.0.100';
const HOSTS = [
  { name: 'a', addr: '198.18.0.1' },
  { name: 'b', addr: '198.18.0.2' },
] as const;
const [A, B] = HOSTS;
const SERVICE_PORT = 80;
const PEER_PORT_BASE = 20000;
// P(origin, k) for 2 hosts and 1 service port: 20000..20001.
const PEER_PORTS = `${PEER_PORT_BASE}:${PEER_PORT_BASE + HOSTS.length - 1}`;
const FORWARD_MARK = 0x100;
const SERVE_MARK = 0x200;
const ENTRY_QUEUE = 0;
const SERVE_QUEUE = 1;
const A_URL = `http://${A.addr}:${SERVICE_PORT}/`;
const REQUESTS = 20;

const hex = (n: number): string => `0x${n.toString(16)}`;

const queueOptions = (queueNum: number): QueueOptions => ({
  queueNum,
  maxLen: 4096,
  rcvBufBytes: 8 << 20,
  batchSize: 64,
  decisionTimeoutMs: 50,
});

const engineSpec = (role: 'entry' | 'serve', self: number): EngineSpec => ({
  role,
  policy: 'hash',
  self,
  // Service address = cluster address here: one address per host.
  serviceAddrs: HOSTS.map((h) => h.addr),
  clusterAddrs: HOSTS.map((h) => h.addr),
  servicePorts: [SERVICE_PORT],
  peerPortBase: PEER_PORT_BASE,
  forwardMark: FORWARD_MARK,
  serveMark: SERVE_MARK,
  maxFlows: 65536,
  maxEmbryonic: 16384,
  timeouts: { pendingMs: 1000, synMs: 10000, establishedMs: 900000, closingMs: 120000 },
});

/**
 * Both roles' rules for one host, as iptables-restore input (DESIGN §4). Every
 * host gets both, as in the product; a role with no queue bound falls through
 * thanks to --queue-bypass.
 */
function rules(addr: string): string {
  const fwd = `${hex(FORWARD_MARK)}/${hex(FORWARD_MARK)}`;
  const serve = `${hex(SERVE_MARK)}/${hex(SERVE_MARK)}`;
  return [
    '*raw',
    ':DPR_ENTRY - [0:0]',
    ':DPR_SERVE - [0:0]',
    '-A PREROUTING -j DPR_ENTRY',
    '-A PREROUTING -j DPR_SERVE',
    // A rewritten packet comes back here (NF_REPEAT) with the mark: untrack it
    // so A keeps no one-sided entry, and let it go on to be routed to B.
    `-A DPR_ENTRY -m mark --mark ${fwd} -j CT --notrack`,
    `-A DPR_ENTRY -m mark --mark ${fwd} -j ACCEPT`,
    // After the SYN, flows served here never leave the kernel.
    `-A DPR_ENTRY -p tcp -d ${addr} --dport ${SERVICE_PORT} ! --syn -m socket -j ACCEPT`,
    `-A DPR_ENTRY -p tcp -d ${addr} --dport ${SERVICE_PORT} -j NFQUEUE --queue-num ${ENTRY_QUEUE} --queue-bypass`,
    // Only a packet the entry host sent (TTL 255, set after its forwarding
    // decrement) may use the peer ports: its source is the client's.
    `-A DPR_SERVE -p tcp -d ${addr} --dport ${PEER_PORTS} -m ttl --ttl-gt 254 -j NFQUEUE --queue-num ${SERVE_QUEUE} --queue-bypass`,
    // Anyone else: nobody may make this host answer as another.
    `-A DPR_SERVE -p tcp -d ${addr} --dport ${PEER_PORTS} -j DROP`,
    'COMMIT',
    '*nat',
    `-A PREROUTING -m mark --mark ${serve} -j DNAT --to-destination ${addr}`,
    'COMMIT',
    '*mangle',
    `-A POSTROUTING -m mark --mark ${fwd} -j TTL --ttl-set 255`,
    'COMMIT',
    '',
  ].join('\n');
}

function prepareHost(bed: Testbed, host: string, addr: string): void {
  // Forwarding back out of the interface a packet came in on is the point:
  // no redirects, and no reverse-path check on packets sourced by the client.
  bed.sysctl(host, 'net.ipv4.ip_forward', 1);
  bed.sysctl(host, 'net.ipv4.conf.all.send_redirects', 0);
  bed.sysctl(host, 'net.ipv4.conf.all.rp_filter', 0);
  bed.sysctl(host, 'net.ipv4.conf.eth0.rp_filter', 0);
  bed.exec(host, ['iptables-restore', '--noflush'], rules(addr));
}

interface Conn {
  state: string;
  origSrc: string;
  origDst: string;
  origDport: number;
  replySrc: string;
}

/** The host's conntrack table, TCP entries only, parsed. */
function conntrack(bed: Testbed, host: string): Conn[] {
  return bed
    .exec(host, ['conntrack', '-L', '-p', 'tcp'])
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const src = [...l.matchAll(/ src=(\S+)/g)].map((m) => m[1]!);
      const dst = [...l.matchAll(/ dst=(\S+)/g)].map((m) => m[1]!);
      const dport = / dport=(\d+)/.exec(l)?.[1];
      return {
        state: l.split(/\s+/)[3] ?? '',
        origSrc: src[0] ?? '',
        origDst: dst[0] ?? '',
        origDport: Number(dport),
        replySrc: src[1] ?? '',
      };
    });
}

/** A TCP counter of the host's kernel (/proc/net/snmp is per namespace). */
function tcpCounter(bed: Testbed, host: string, name: string): number {
  const [names, values] = bed
    .exec(host, ['cat', '/proc/net/snmp'])
    .split('\n')
    .filter((l) => l.startsWith('Tcp:'))
    .map((l) => l.split(/\s+/));
  const i = names?.indexOf(name) ?? -1;
  if (i < 0 || values?.[i] === undefined) throw new Error(`no Tcp counter ${name} on ${host}`);
  return Number(values[i]);
}

const fromClientToService = (c: Conn): boolean => c.origSrc === CLIENT && c.origDport === SERVICE_PORT;

function delta(now: QueueStats, then: QueueStats, pick: (s: QueueStats) => number): number {
  return pick(now) - pick(then);
}

/** Resolves with a background process's exit code and output once it ends. */
function finished(child: ChildProcess): Promise<{ code: number | null; out: string; err: string }> {
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (err += s));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, out, err })));
}

async function until<T>(probe: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Why this machine cannot run the test, or undefined; scripts/setup.sh installs the tools. */
function cannotRun(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (namespaces, iptables, NFQUEUE)';
  for (const tool of ['ip', 'iptables-restore', 'conntrack', 'curl']) {
    try {
      execFileSync('which', [tool], { stdio: 'ignore' });
    } catch {
      return `${tool} is not installed (run: npm run setup)`;
    }
  }
  return undefined;
}

const skip = cannotRun();

describe('30.datapath: rewrite mode in namespaces (client, entry host A, serving host B)', { skip }, () => {
  let bed: Testbed;
  let entry: QueueRunner;
  let serve: QueueRunner;

  before(async () => {
    bed = Testbed.create(
      [
        { name: 'client', addrs: [`${CLIENT}/24`] },
        ...HOSTS.map((h) => ({ name: h.name, addrs: [`${h.addr}/24`] })),
      ],
      'dp',
    );
    for (const h of HOSTS) prepareHost(bed, h.name, h.addr);
    await Promise.all(HOSTS.map((h) => startServer(bed, h.name, h.name)));
    // A one-slot table naming host 1: every new flow entering at A goes to B.
    entry = await startQueueRunner(bed, 'a', {
      queue: queueOptions(ENTRY_QUEUE),
      engine: engineSpec('entry', 0),
      lookupTable: [1],
    });
    serve = await startQueueRunner(bed, 'b', { queue: queueOptions(SERVE_QUEUE), engine: engineSpec('serve', 1) });
  });

  after(async () => {
    await bed?.destroy();
  });

  it('30.datapath: a request to A is served by B and the client sees A\'s address', () => {
    for (let i = 0; i < REQUESTS; ++i) {
      const r = curl(bed, 'client', A_URL);
      assert.equal(r.status, 200);
      assert.match(r.body, /^served-by=b /, `request ${i}`);
      assert.equal(r.remoteIp, A.addr, `request ${i}: the client talked to A's address`);
    }
  });

  it('30.datapath: A keeps no conntrack entry for a forwarded connection, B holds it as the client opened it', async () => {
    // A slow answer keeps the connection open while both tables are read.
    const child = bed.spawn('client', curlArgv(`${A_URL}?delayMs=2000`));
    const done = finished(child);
    const atB = await until(
      () => conntrack(bed, 'b').find((c) => fromClientToService(c) && c.state === 'ESTABLISHED'),
      3000,
      'an established conntrack entry on B',
    );
    assert.equal(atB.origDst, A.addr, 'B tracks the connection to S_A, as the client opened it');
    assert.equal(atB.replySrc, B.addr, 'and DNATs it to C_B');
    // Any port: without the notrack rule A would hold the rewritten side of
    // the flow (client -> C_B:P(A,0)), not client -> S_A:80.
    assert.deepEqual(conntrack(bed, 'a').filter((c) => c.origSrc === CLIENT), [], 'A tracks none of the client\'s connections');
    const { code, out, err } = await done;
    assert.equal(code, 0, `curl failed: ${err.trim()}`);
    assert.match(parseCurl(out).body, /^served-by=b /);
  });

  it('30.datapath: a client sending to B\'s peer port itself is dropped, not served as A', () => {
    assert.throws(() => curl(bed, 'client', `http://${B.addr}:20000/`, { timeoutS: 2 }), /timed out|Timeout|28/);
    const drops = bed.exec('b', ['iptables', '-t', 'raw', '-L', 'DPR_SERVE', '-v', '-n', '-x']);
    const dropLine = drops.split('\n').find((l) => /\bDROP\b/.test(l));
    assert.ok(dropLine && Number(dropLine.trim().split(/\s+/)[0]) > 0, `no drop counted:\n${drops}`);
  });

  it('30.datapath: the entry queue counts forwards and new forwarded flows, the serve queue counts restores', async () => {
    const [a0, b0] = await Promise.all([entry.stats(), serve.stats()]);
    for (let i = 0; i < REQUESTS; ++i) assert.match(curl(bed, 'client', A_URL).body, /^served-by=b /);
    const [a1, b1] = await Promise.all([entry.stats(), serve.stats()]);
    assert.ok(delta(a1, a0, (s) => s.actions.forward) > 0, 'A forwarded packets');
    assert.ok(delta(a1, a0, (s) => s.newFlows.forwarded) >= REQUESTS, `A forwarded >= ${REQUESTS} new flows`);
    assert.equal(delta(a1, a0, (s) => s.newFlows.local), 0, 'A served no new flow itself');
    assert.ok(delta(b1, b0, (s) => s.actions.restore) > 0, 'B restored packets');
    for (const s of [a1, b1]) {
      assert.equal(s.queue.sendErrors, 0, `queue ${s.queueNum}: verdicts were sent`);
      assert.equal(s.queue.verdictErrors, 0, `queue ${s.queueNum}: the kernel took every verdict`);
    }
  });

  it('30.datapath: a 200 KB request body and a 600 KB response cross the forward path (GSO, partial checksums)', async () => {
    const [a0, b0] = await Promise.all([entry.stats(), serve.stats()]);
    const csumErrors0 = tcpCounter(bed, 'b', 'InCsumErrors');
    const body = 'y'.repeat(200 * 1024);
    const post = curl(bed, 'client', A_URL, { body });
    assert.equal(post.status, 200);
    assert.equal(post.body, `served-by=b received=${body.length}\n`);
    assert.equal(post.remoteIp, A.addr);
    const size = 600 * 1024;
    const big = curl(bed, 'client', `${A_URL}?size=${size}`);
    assert.equal(big.status, 200);
    assert.equal(big.body.length, size);
    assert.match(big.body, /^served-by=b /);
    const [a1, b1] = await Promise.all([entry.stats(), serve.stats()]);
    // The client's veth hands A its packets with only the pseudo-header sum in
    // the TCP checksum field; the rewrite must recompute it in full.
    assert.ok(delta(a1, a0, (s) => s.checksums.full) > 0, 'A recomputed partial checksums in full');
    // A GSO packet leaves A still partial (the kernel redoes the pseudo-header
    // sum when it transmits one), so B meets partial checksums too.
    assert.ok(delta(b1, b0, (s) => s.checksums.full) > 0, 'B recomputed partial checksums in full');
    // More bytes per packet than an MTU means the queues saw GSO packets whole.
    const perPacket = delta(a1, a0, (s) => s.bytes) / delta(a1, a0, (s) => s.packets);
    assert.ok(perPacket > 1500, `A's queue saw GSO packets (mean ${perPacket.toFixed(0)} bytes per packet)`);
    // The kernel takes a packet handed back with new bytes as CHECKSUM_NONE,
    // so B's TCP verifies every checksum B's queue wrote (and, for packets A
    // sent whole, A's too). A wrong one is counted here: a bad data segment
    // would also stall curl, a bad FIN or pure ACK might go unnoticed.
    assert.equal(tcpCounter(bed, 'b', 'InCsumErrors') - csumErrors0, 0, 'B\'s TCP found no bad checksum');
  });

  it('30.datapath: with the entry queue\'s process killed, A serves requests itself (--queue-bypass)', async () => {
    await entry.kill();
    for (let i = 0; i < 3; ++i) {
      const r = curl(bed, 'client', A_URL);
      assert.match(r.body, /^served-by=a /, `request ${i}`);
      assert.equal(r.remoteIp, A.addr);
    }
    // A's conntrack is live and sees local flows: its empty table for
    // forwarded ones earlier was the notrack rule's doing, not a blind tool.
    assert.ok(
      conntrack(bed, 'a').some((c) => fromClientToService(c) && c.origDst === A.addr),
      'A tracks the connections it served itself',
    );
  });

  it('30.datapath: the serve queue stops cleanly and reports its counters', async () => {
    const last = await serve.stop();
    assert.ok(last.actions.restore > 0);
    assert.equal(last.queue.sendErrors, 0);
  });
});
