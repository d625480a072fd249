// The rewrite-mode data path end to end (DESIGN §4), with no daemon: the test
// drives the addon's Queue directly, one runner process per host namespace,
// configured from a dpr configuration by the daemon's own code, with the
// product's rules and sysctls installed by iptables/install.sh. A client
// connects to A's service address; A's entry queue forwards every new flow to
// B (a one-slot lookup table naming B); B's serve queue restores the
// destination and B answers the client directly with A's address.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { QueueStats } from '../lib/native';
import { loadConfig, restoreAddress } from '../lib/config';
import { Testbed } from './support/netns';
import { curl, curlArgv, parseCurl, startServer } from './support/http';
import { startQueueRunner, type QueueRunner } from './support/queue-runner';
import { clusterConfig, writeConfig } from './support/configs';
import { repoRoot } from './support/repo';
import { ruleTotals } from './support/rules';

const CLIENT = '198.18.0.100';
const HOSTS = [
  { name: 'a', addr: '198.18.0.1' },
  { name: 'b', addr: '198.18.0.2' },
] as const;
const [A, B] = HOSTS;
const SERVICE_PORT = 80;
const A_URL = `http://${A.addr}:${SERVICE_PORT}/`;
const REQUESTS = 20;
const INSTALL = path.join(repoRoot(), 'iptables', 'install.sh');

// One address per host here (service = cluster); 60.cluster.hash runs split networks.
const configFiles = HOSTS.map((_, self) => writeConfig(clusterConfig(self, { hosts: HOSTS.length }, { flows: { stateFile: '' } })));
const config = loadConfig({ file: configFiles[0] });
const peerPort = (origin: number): number => config.peerPortBase + origin * config.servicePorts.length;

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
    HOSTS.forEach((h, id) => bed.exec(h.name, ['bash', INSTALL, configFiles[id]!]));
    await Promise.all(HOSTS.map((h) => startServer(bed, h.name, h.name)));
    // A one-slot table naming host 1: every new flow entering at A goes to B.
    entry = await startQueueRunner(bed, 'a', { config: configFiles[0]!, role: 'entry', lookupTable: [1] });
    serve = await startQueueRunner(bed, 'b', { config: configFiles[1]!, role: 'serve' });
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
    assert.equal(atB.replySrc, restoreAddress(config, 0), "and DNATs it to its local address for A's connections");
    // Any port: without the notrack rule A would hold the rewritten side of
    // the flow (client -> C_B:P(A,0)), not client -> S_A:80.
    assert.deepEqual(conntrack(bed, 'a').filter((c) => c.origSrc === CLIENT), [], 'A tracks none of the client\'s connections');
    const { code, out, err } = await done;
    assert.equal(code, 0, `curl failed: ${err.trim()}`);
    assert.match(parseCurl(out).body, /^served-by=b /);
  });

  it('30.datapath: a client sending to B\'s peer port itself is dropped, not served as A', async () => {
    const dropped = (): number => ruleTotals(bed, 'b', 'raw', 'DPR_SERVE', /-j DROP$/);
    const [before, b0] = [dropped(), await serve.stats()];
    assert.throws(() => curl(bed, 'client', `http://${B.addr}:${peerPort(0)}/`, { timeoutS: 2 }), /timed out|Timeout|28/);
    // The SYN and its retransmission within the 2 s, dropped by the rule; the serve queue never saw them.
    assert.ok(dropped() - before >= 2, `DPR_SERVE dropped ${dropped() - before} packets`);
    assert.equal((await serve.stats()).packets - b0.packets, 0, 'the serve queue saw the client\'s packets');
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
