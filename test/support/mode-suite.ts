// The kernel modes (`direct`, `tunnel`) in a 4-host namespace cluster: the
// same properties dpr holds in `rewrite` mode, and the point of these modes,
// that only the SYN of a forwarded connection reaches a queue (on the entry
// host) and nothing of it on the serving host. Shared by
// test/62.mode.direct, test/62.mode.tunnel and their .ipv6 variants.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { Cluster, hostAddress, hostAddress6 } from '../../tools/cluster';
import type { DaemonStatus } from '../../lib/daemon';
import { portsServedBy } from './hash-ports';
import { moved, whyUndecided } from './undecided';
import { assertHeld, sleep, waitFor } from './wait';
import { nstat } from './faults';
import { assertReusedTuplesStayAcrossRestart } from './reused-ports';

const HOSTS = 4;
export type Check = 'spread' | 'conntrack' | 'bulk' | 'failopen' | 'drain' | 'membership' | 'health';

export interface ModeSuite {
  mode: 'direct' | 'tunnel';
  policy: 'hash' | 'load';
  networks: 'split' | 'routed';
  tag: string;
  checks: Check[];
  /** A dual-stack cluster, every check with an IPv6 client (issue 15). */
  ipv6?: boolean;
  /** false (with `ipv6`): IPv6-only hosts, no IPv4 address anywhere. */
  ipv4?: boolean;
}

/** Queued packets of a host's two queues so far, and what its entry engine decided. */
function queued(s: DaemonStatus): { entry: number; serve: number; flows: number; decided: number; forwarded: number } {
  const e = s.entry!;
  return {
    entry: e.queue.batchPackets,
    serve: s.serve!.queue.batchPackets,
    flows: e.queue.flowsPackets ?? 0,
    decided: e.newFlows.local + e.newFlows.forwarded,
    forwarded: e.newFlows.forwarded,
  };
}

/** ESTABLISHED conntrack entries in host `h` of connections to `address`:80. */
function tracked(cluster: Cluster, h: number, address: string): number {
  const family = address.includes(':') ? 'ipv6' : 'ipv4';
  const out = cluster.bed.exec(`h${h}`, ['sh', '-c', `conntrack -L -f ${family} -p tcp --orig-dst ${address} --orig-port-dst 80 --state ESTABLISHED 2>/dev/null | wc -l`]);
  return Number(out.trim());
}

/**
 * Fail-open and drain make h0 serve connections it would otherwise forward;
 * a client that reuses one of those 4-tuples while h0 holds its TIME_WAIT
 * must be served by h0 (docs/design-notes.md, "TIME_WAIT: a reused 4-tuple
 * stays where its socket is"): the fail-open case checks it.
 */
export function modeSuite(o: ModeSuite): void {
  describe(`62.mode.${o.mode}.${o.policy}${o.ipv6 ? (o.ipv4 === false ? '.ipv6only' : '.ipv6') : ''}`, () => {
    let cluster: Cluster;
    // What the client dials: h0's service address of the suite's family.
    const dial = o.ipv6 ? hostAddress6(0) : hostAddress(0);
    const url = o.ipv6 ? `http://[${dial}]/` : `http://${dial}/`;
    const iptables = o.ipv6 ? 'ip6tables' : 'iptables';
    const has = (c: Check): boolean => o.checks.includes(c);
    before(async () => {
      cluster = await Cluster.create({
        hosts: HOSTS, policy: o.policy, tag: o.tag, networks: o.networks, ...(o.ipv6 ? { ipv6: true } : {}), ...(o.ipv4 === false ? { ipv4: false } : {}),
        // load: balance at any load, so an idle test cluster forwards too.
        config: {
          mode: o.mode,
          ...(o.policy === 'load' ? { load: { threshold: 0 } } : {}),
          ...(has('health') ? { health: { type: 'http', intervalMs: 200, fastIntervalMs: 100, fall: 2, rise: 2, http: { path: '/health' } } } : {}),
        },
      });
    });
    after(async () => {
      await cluster?.destroy();
    });

    async function ensureRunning(id: number): Promise<void> {
      if (!cluster.daemonRunning(id)) await cluster.startDaemon(id);
      await cluster.waitForMembership();
    }

    test('every host serves, the client sees the address it dialled, the entry host queues about one packet per connection and the serving hosts none', { skip: !has('spread') }, async () => {
      const first = cluster.status(0);
      const before = [first, ...[1, 2, 3].map((id) => cluster.status(id))].map(queued);
      const s = await cluster.load({ targets: [{ address: dial }], requests: 800, concurrency: 12 });
      assert.equal(s.errors, 0, `errors: ${JSON.stringify(s.errorKinds)}`);
      assert.equal(s.addressMismatch, 0);
      for (let id = 0; id < HOSTS; id++) assert.ok((s.servedBy[String(id)] ?? 0) > 0.05 * s.ok, `host ${id} served ${s.servedBy[String(id)] ?? 0} of ${s.ok}`);
      // The daemon serves a reading of the kernel's counters for up to 250 ms.
      await sleep(300);
      const status = [0, 1, 2, 3].map((id) => cluster.status(id));
      const after = status.map(queued);
      const d = (id: number, k: keyof ReturnType<typeof queued>): number => after[id]![k] - before[id]![k];
      // A SYN that followed a flow h0 still remembered (a reused client port:
      // syn_on_flow, 79 of 800 in one run) is a connection queued once too.
      const followed = status[0]!.entry!.notes.syn_on_flow - first.entry!.notes.syn_on_flow;
      const perConnection = d(0, 'entry') / (d(0, 'decided') + followed);
      const kernel = status[0]!.kernel!;
      console.log(`${o.mode}/${o.policy}: ${d(0, 'decided')} connections at h0 (${d(0, 'forwarded')} forwarded): ${d(0, 'entry')} packets queued on h0 (${d(0, 'flows')} from the flows queue), ${perConnection.toFixed(3)} per connection (${followed} followed a remembered flow); serving hosts queued ${[1, 2, 3].map((id) => d(id, 'serve') + d(id, 'entry')).join(', ')}; the kernel routed ${kernel.packets} packets by ${kernel.entries} entries`);
      // Why not, if not: SYNs past queues.synLimit or let by a full queue (support/undecided).
      if (d(0, 'decided') + followed < s.requests) assert.fail(`every connection was decided at h0 or followed an earlier flow: ${d(0, 'decided')} + ${followed} of ${s.requests}; ${whyUndecided(cluster, 0, first, status[0]!, iptables)}`);
      // Enough forwarded for the per-connection figure to be about forwarding. The hash policy
      // forwards about 3 in 4; the load policy what h0's load calls for: 234-313 of 800 in
      // the fresh-clone runs of 2026-12-04 (0.3 failed once at 234).
      const minForwarded = o.policy === 'hash' ? 0.3 : 0.15;
      assert.ok(d(0, 'forwarded') > minForwarded * s.requests, `only ${d(0, 'forwarded')} of ${s.requests} forwarded (${o.policy} policy)`);
      // The SYN, and rarely the client's first ACK when it beats the ipset add.
      assert.ok(perConnection < 1.1, `${perConnection} packets queued per connection`);
      for (const id of [1, 2, 3]) assert.equal(d(id, 'serve') + d(id, 'entry'), 0, `h${id} queued packets of connections h0 forwarded`);
      // At least the handshake's ACK and the request of each forwarded connection went by the kernel's entries.
      assert.ok(kernel.packets >= 2 * d(0, 'forwarded'), `${kernel.packets} kernel-routed packets for ${d(0, 'forwarded')} forwarded connections`);
      assert.match(cluster.metrics(0), /^dpr_kernel_packets_total\{peer="1"\} [1-9]/m);
      const text = cluster.cli(0, ['status']);
      assert.equal(text.code, 0, text.stderr);
      assert.match(text.stdout, new RegExp(`${o.mode} mode`));
      assert.match(text.stdout, /in the kernel\s+\d+ forwarded flows \(1: \d+, 2: \d+, 3: \d+\), [1-9]\d* packets routed without a queue/);
    });

    test('the entry host keeps no conntrack entry for forwarded connections; the serving host has them', { skip: !has('conntrack') }, async () => {
      // Conntrack runs in a namespace only once a rule needs it (a host
      // firewall's -m conntrack does): without, there would be nothing to see.
      const ctRule = ['INPUT', '-m', 'conntrack', '--ctstate', 'NEW,ESTABLISHED', '-m', 'comment', '--comment', 'test: conntrack on'];
      for (let id = 0; id < HOSTS; id++) cluster.bed.exec(`h${id}`, [iptables, '-I', ...ctRule]);
      const open = cluster.holdOpen({ address: dial, connections: 24, intervalMs: 200 });
      let stopped = false;
      try {
        await sleep(1500);
        const local = tracked(cluster, 0, dial);
        const remote = [1, 2, 3].map((id) => tracked(cluster, id, dial));
        stopped = true;
        const conns = await open.stop();
        const servedHere = conns.filter((c) => c.servedBy === '0').length;
        console.log(`conntrack ESTABLISHED to ${dial}:80: h0 ${local} (it serves ${servedHere} of ${conns.length}), peers ${remote.join(', ')}`);
        assert.ok(conns.length - servedHere >= 6, 'too few connections forwarded to show anything');
        assert.equal(local, servedHere, 'h0 tracks exactly the connections it serves itself');
        assert.equal(remote.reduce((a, b) => a + b, 0), conns.length - servedHere, 'the serving hosts track the forwarded ones');
      } finally {
        if (!stopped) await open.stop().catch(() => undefined);
        for (let id = 0; id < HOSTS; id++) cluster.bed.exec(`h${id}`, [iptables, '-D', ...ctRule]);
      }
    });

    test('large uploads and downloads through a forwarded connection arrive intact', { skip: !has('bulk') }, () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpr-mode-'));
      try {
        const body = path.join(dir, 'body');
        const data = Buffer.alloc(8 << 20);
        for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24;
        fs.writeFileSync(body, data);
        const curl = (port: number, extra: string[], u: string): string =>
          cluster.bed.exec('client', ['curl', '-sS', '-g', '--max-time', '40', '--local-port', String(port), ...extra, u]);
        const file = path.join(dir, 'down');
        const tooBig = (): number => nstat(cluster, 'h0').Icmp6OutPktTooBigs ?? 0;
        const tooBigBefore = tooBig();
        let up = '';
        let down = '';
        if (o.ipv6) {
          // portsServedBy knows IPv4 clients only: up to 8 client ports, until a peer served one
          // (below the ephemeral range, where no earlier connection left a TIME_WAIT).
          for (let port = 12000; port < 12008 && !/^host=[123]\n/.test(up); port++) up = curl(port, ['--data-binary', `@${body}`], url);
          for (let port = 13000; port < 13008 && !/^host=[123]\n/.test(down); port++) {
            curl(port, ['-o', file], `${url}?size=${4 << 20}`);
            down = fs.readFileSync(file, 'latin1');
          }
        } else {
          const [upPort, downPort] = portsServedBy(1, 2, { hosts: HOSTS });
          up = curl(upPort!, ['--data-binary', `@${body}`], url);
          curl(downPort!, ['-o', file], `${url}?size=${4 << 20}`);
          down = fs.readFileSync(file, 'latin1');
        }
        const upHost = /^host=([123])\n/.exec(up)?.[1];
        assert.ok(upHost, `no upload was forwarded: ${up.slice(0, 40)}`);
        if (!o.ipv6) assert.equal(upHost, '1');
        assert.match(up, new RegExp(`bytes=${data.length}\nsha256=${createHash('sha256').update(data).digest('hex')}`));
        assert.equal(down.length, 4 << 20);
        assert.match(down, o.ipv6 ? /^host=[123]\nx+$/ : /^host=1\nx+$/);
        if (o.mode === 'tunnel') {
          // The client's segments fitted into the tunnel: the entry host, which
          // would have answered a segment too big for it with ICMPv6 packet too
          // big, sent none (path MTU discovery rescues the upload, at a cost,
          // where a path lets that message through)...
          if (o.ipv6) assert.equal(tooBig() - tooBigBefore, 0, 'h0 sent ICMPv6 packet too big to the client');
          // ...since the serving host told the client so (tunnel.mtu - 90 for IPv4, - 110 for IPv6).
          const post = cluster.bed.exec(`h${upHost}`, [iptables, '-w', '-t', 'mangle', '-L', 'DPR_POST', '-v', '-x', '-n']);
          const clamped = post.split('\n').filter((l) => l.includes('TCPMSS') && l.includes(dial)).map((l) => Number(l.trim().split(/\s+/)[0]));
          assert.ok((clamped[0] ?? 0) >= (o.ipv6 ? 1 : 2), `h${upHost} clamped the MSS of ${clamped[0] ?? 0} SYN-ACKs for h0's connections`);
        }
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    test('membership: connections served by a peer whose daemon dies go on; the peer gets no new ones until it is back', { skip: !has('membership') }, async () => {
      try {
        const held = cluster.hold({ address: dial, connections: 24, intervalMs: 150, durationMs: 5000 });
        await sleep(1000);
        await cluster.signalDaemon(3, 'SIGKILL');
        await waitFor('h0 drops host 3', () => !cluster.status(0).liveHosts.includes(3), 5000);
        const was = cluster.status(0).entry!;
        const s = await cluster.load({ targets: [{ address: dial }], requests: 200, concurrency: 8 });
        const now = cluster.status(0).entry!;
        const why = `h0 decided ${now.newFlows.byHost.map((v, i) => v - (was.newFlows.byHost[i] ?? 0)).join('/')} by host; notes ${moved(was.notes, now.notes)}; flows queue +${(now.queue.flowsPackets ?? 0) - (was.queue.flowsPackets ?? 0)}, ipset ${JSON.stringify(now.queue.ipset)}`;
        assert.equal(s.errors, 0, `errors: ${JSON.stringify(s.errorKinds)}, served ${JSON.stringify(s.servedBy)}; ${why}`);
        assert.equal(s.servedBy['3'] ?? 0, 0, `served by 3 after h0 dropped it: ${why}`);
        await cluster.startDaemon(3);
        await cluster.waitForMembership();
        const conns = await held;
        // Host 3's web server never stopped, and the kernel kept routing to it.
        assert.ok(conns.some((c) => c.servedBy === '3'), 'no held connection was served by host 3');
        assertHeld(conns, { minOk: 20, atLeast: 24 });
      } finally {
        await ensureRunning(3);
      }
    });

    test('health: a host whose web service fails its checks gets no new connections, and gets them again once it passes', { skip: !has('health') }, async () => {
      try {
        cluster.signalWebServer(2, 'SIGUSR1');
        await waitFor('h0 takes host 2 out', () => !cluster.status(0).liveHosts.includes(2), 5000);
        const s = await cluster.load({ targets: [{ address: dial }], requests: 200, concurrency: 8 });
        assert.equal(s.errors, 0, `errors: ${JSON.stringify(s.errorKinds)}, served by ${JSON.stringify(s.servedBy)}`);
        assert.equal(s.servedBy['2'] ?? 0, 0);
        cluster.signalWebServer(2, 'SIGUSR2');
        await waitFor('h0 takes host 2 back', () => cluster.status(0).liveHosts.includes(2), 5000);
        const again = await cluster.load({ targets: [{ address: dial }], requests: 200, concurrency: 8 });
        assert.ok((again.servedBy['2'] ?? 0) > 0);
      } finally {
        cluster.signalWebServer(2, 'SIGUSR2');
      }
    });
    test('fail-open and restart: with the entry daemon killed its forwarded connections go on in the kernel and new ones are served here; after a restart they are forwarded again', { skip: !has('failopen') }, async () => {
      try {
        const held = cluster.hold({ address: dial, connections: 24, intervalMs: 150, durationMs: 6000 });
        await sleep(1000);
        await cluster.signalDaemon(0, 'SIGKILL');
        const dead = await cluster.load({ targets: [{ address: dial }], requests: 100, concurrency: 4 });
        assert.equal(dead.errors, 0, `errors: ${JSON.stringify(dead.errorKinds)}`);
        assert.equal(dead.servedBy['0'], 100, `with no daemon, new connections went to ${JSON.stringify(dead.servedBy)}`);
        await assertReusedTuplesStayAcrossRestart(cluster, 0, url);
        const back = await cluster.load({ targets: [{ address: dial }], requests: 200, concurrency: 8 });
        assert.equal(back.errors, 0, `after the restart: errors ${JSON.stringify(back.errorKinds)}, served by ${JSON.stringify(back.servedBy)}`);
        assert.ok(Object.keys(back.servedBy).length >= 3, `after the restart: ${JSON.stringify(back.servedBy)}`);
        const conns = await held;
        assertHeld(conns, { only: (c) => c.servedBy !== '0', minOk: 25, atLeast: 6 });
        assertHeld(conns, { minOk: 25, atLeast: 24 });
      } finally {
        await ensureRunning(0);
      }
    });

    test('SIGTERM drains: new connections stay local, forwarded ones finish, then the daemon exits 0', { skip: !has('drain') }, async () => {
      try {
        const held = cluster.hold({ address: dial, connections: 16, intervalMs: 150, durationMs: 3000 });
        await sleep(800);
        const exit = cluster.signalDaemon(0, 'SIGTERM');
        await waitFor('h0 draining', () => cluster.status(0).draining, 3000, 20);
        // Fresh 4-tuples: from ports no earlier test used. A SYN that reuses a
        // port whose forwarded flow h0 still remembers follows that flow (the
        // engine never sees a kernel-mode flow's FIN); seen: 2 of 100.
        cluster.bed.sysctl('client', 'net.ipv4.ip_local_port_range', '61000 61999');
        const during = await cluster.load({ targets: [{ address: dial }], requests: 100, concurrency: 4 })
          .finally(() => cluster.bed.sysctl('client', 'net.ipv4.ip_local_port_range', '32768 60999'));
        const conns = await held;
        assert.equal(await exit, 0);
        assert.equal(during.errors, 0, `errors: ${JSON.stringify(during.errorKinds)}, served by ${JSON.stringify(during.servedBy)}`);
        assert.equal(during.servedBy['0'], 100, `new connections while draining went to ${JSON.stringify(during.servedBy)}`);
        assertHeld(conns, { only: (c) => c.servedBy !== '0', minOk: 12, atLeast: 1 });
      } finally {
        await ensureRunning(0);
      }
    });

  });
}
