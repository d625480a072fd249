// The reliability trial (issue 5): the fault cases of test/64-68 with the
// full counts, as measurements: how soon a dead peer stops getting new
// connections (p50/p99), a 100k SYN flood, a large malformed-packet run, a
// daemon crash and restart under long-lived connections, and a queue overflow. Each repetition of a variant builds its own namespace
// cluster (tools/cluster.ts) in a fresh process and removes it.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Cluster, hostAddress } from '../tools/cluster';
import { failedOpen, type QueueSample } from '../lib/kernel-queue';
import {
  buildC, checkPasses, daemonPid, entryQueueSample, flowCount, peerDeath, reviveHost, rssKb, runMalformed, sleep, synFlood,
} from '../test/support/faults';
import type { Measurement, Trial, TrialOptions, Variant } from './types';
import { schema } from '../lib/config-schema';

const ROOT = path.resolve(__dirname, '..', '..');

function sizes(o: TrialOptions) {
  return o.quick
    ? { deaths: 3, flood: 30_000, floodBursts: 6, copies: 40, loadRequests: 1000 }
    : { deaths: 8, flood: 100_000, floodBursts: 10, copies: 200, loadRequests: 3000 };
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]! : NaN;
}

async function withCluster<T>(o: Parameters<typeof Cluster.create>[0], body: (c: Cluster) => Promise<T>): Promise<T> {
  const cluster = await Cluster.create(o);
  try {
    return await body(cluster);
  } finally {
    await cluster.destroy();
  }
}

/** The product's own defaults for heartbeats, not the test bed's (tools/cluster.ts uses 100/500). */
const PRODUCT_PEERS = { heartbeatMs: schema.peers.heartbeatMs.default, deadAfterMs: schema.peers.deadAfterMs.default };

/**
 * A host dies (daemon and web server), or only its web server (the daemon
 * keeps heartbeating: health checks must take it out), `deaths` times.
 */
async function runPeerDeath(o: TrialOptions, what: 'host' | 'webserver', policy: 'hash' | 'load'): Promise<Measurement> {
  // 50 ms per request and a low threshold keep h0 forwarding under the load
  // policy (a dead server looks like the idlest peer).
  const shape = policy === 'load' ? { serviceMs: 50, slots: 64, config: { peers: PRODUCT_PEERS, load: { threshold: 2 } } } : { config: { peers: PRODUCT_PEERS } };
  return withCluster({ hosts: policy === 'load' ? 4 : 3, policy, tag: 'rpd', ...shape }, async (cluster) => {
    const peers = cluster.configFor(0).peers as { heartbeatMs: number; deadAfterMs: number };
    const settleMs = peers.deadAfterMs + peers.heartbeatMs + 1000;
    const deaths = [];
    for (let i = 0; i < sizes(o).deaths; i++) {
      deaths.push(await peerDeath(cluster, { entry: 0, victim: 2, intervalMs: 10, beforeMs: 600, afterMs: settleMs, timeoutMs: 2000, settleMs, webServerOnly: what === 'webserver' }));
      if (what === 'webserver') {
        await cluster.startWebServer(2);
        await waitUntil(() => cluster.status(0).liveHosts.includes(2), 10_000);
      } else {
        await reviveHost(cluster, 2);
      }
    }
    // A death where no new connection went to the dead host at all counts as 0 ms.
    const avoid = deaths.map((d) => d.lastToDeadMs ?? 0);
    const detected = deaths.map((d) => d.detectedMs ?? settleMs); // not seen within the window: capped
    return {
      value: percentile(avoid, 99), secondary: percentile(avoid, 50), work: deaths.length,
      metrics: {
        detectedP50: percentile(detected, 50), detectedP99: percentile(detected, 99),
        lostPerDeath: deaths.reduce((s, d) => s + d.inFlight + d.sentToDead, 0) / deaths.length,
        lateErrors: deaths.reduce((s, d) => s + d.lateErrors + d.lateToDead, 0),
      },
      detail: { deadAfterMs: peers.deadAfterMs, heartbeatMs: peers.heartbeatMs, deaths },
    };
  });
}

async function waitUntil(cond: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`reliability: condition not met within ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** CPU of every idle daemon of a 4-host cluster with the product defaults, after a warm-up, all threads (`ipv6`: dual-stack, health checks over both families). */
async function runIdle(o: TrialOptions, ipv6 = false): Promise<Measurement> {
  return withCluster({ hosts: 4, tag: 'rid', ipv6, config: { peers: PRODUCT_PEERS, flows: { snapshotMs: schema.flows.snapshotMs.default } } }, async (cluster) => {
    const warmMs = o.quick ? 10_000 : 30_000;
    const spanMs = o.quick ? 20_000 : 60_000;
    await sleep(warmMs);
    const pids = [0, 1, 2, 3].map((id) => daemonPid(cluster, id));
    const before = pids.map(cpuMs);
    const started = Date.now();
    await sleep(spanMs);
    const after = pids.map(cpuMs);
    const perSecond = after.map((a, i) => (a - before[i]!) / ((Date.now() - started) / 1000));
    const sorted = [...perSecond].sort((a, b) => a - b);
    return {
      value: sorted[Math.floor(sorted.length / 2)]!, secondary: Math.max(...perSecond), work: pids.length,
      metrics: { idleMsPerSecond: sorted[Math.floor(sorted.length / 2)]! },
      detail: { perDaemonMsPerSecond: perSecond, warmMs, spanMs },
    };
  });
}

/** CPU time of a process so far, every thread, user and system (ms). */
function cpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
}

async function runSynFlood(o: TrialOptions): Promise<Measurement> {
  const flooder = buildC('bench/c/syn_flood.c');
  try {
    return await withCluster({ hosts: 3, tag: 'rsf' }, async (cluster) => {
      const { flood: count, floodBursts: bursts } = sizes(o);
      const pid = daemonPid(cluster, 0);
      const held = cluster.hold({ address: hostAddress(0), connections: 24, intervalMs: 200, durationMs: 16000 });
      await sleep(1500);
      const sample = (): QueueSample => entryQueueSample(cluster);
      const rssBefore = rssKb(pid);
      const before = cluster.status(0).entry!;
      const q0 = sample();
      const load = cluster.load({ targets: [{ address: hostAddress(0) }], requests: 1200, concurrency: 6, timeoutMs: 15000, maxDurationMs: 40000 });
      let peakFlows = 0;
      let peakEmbryonic = 0;
      const watch = setInterval(() => {
        try {
          const e = cluster.status(0).entry!;
          peakFlows = Math.max(peakFlows, flowCount(e));
          peakEmbryonic = Math.max(peakEmbryonic, e.flows.syn + e.flows.pending);
        } catch {
          // a slow answer under the flood: the next sample counts
        }
      }, 250);
      const flood = await synFlood(cluster, flooder.bin, { dst: hostAddress(0), count, bursts, gapMs: 500 });
      const q1 = sample();
      const s = await load;
      clearInterval(watch);
      const conns = await held;
      const e = cluster.status(0).entry!;
      const forwarded = conns.filter((c) => c.servedBy !== '0');
      return {
        value: (100 * s.ok) / s.requests,
        secondary: (rssKb(pid) - rssBefore) / 1024,
        work: flood.sent,
        metrics: {
          heldBroken: conns.filter((c) => c.error !== null).length,
          heldForwarded: forwarded.length,
          peakFlows, peakEmbryonic,
          tableFull: e.notes.table_full - before.notes.table_full,
          failedOpen: failedOpen(q0, q1),
          floodPps: flood.seconds > 0 ? flood.sent / flood.seconds : 0,
          p99Ms: s.p99Ms,
        },
        detail: { flood, load: s, held: conns, daemonSame: daemonPid(cluster, 0) === pid },
      };
    });
  } finally {
    rmSync(flooder.dir, { recursive: true, force: true });
  }
}

async function runMalformedVariant(o: TrialOptions): Promise<Measurement> {
  const sender = buildC('tools/c/packet_send.c');
  try {
    return await withCluster({ hosts: 3, tag: 'rmf' }, async (cluster) => {
      cluster.bed.sysctl('sw', 'net.bridge.bridge-nf-call-iptables', 0); // a plain switch (see test/65)
      const { copies, loadRequests } = sizes(o);
      const load = { targets: [0, 1, 2].map((id) => ({ address: hostAddress(id) })), requests: loadRequests, concurrency: 8, maxDurationMs: 60000 };
      const r = await runMalformed(cluster, sender.bin, copies, load, 200);
      // Whatever still circulates once the load is over is bad packets bouncing between hosts.
      const f0 = cluster.status(0).entry!.actions.forward;
      await sleep(1000);
      const bouncing = cluster.status(0).entry!.actions.forward - f0;
      return {
        value: r.sent.sent,
        secondary: r.load.errors,
        work: r.sent.sent,
        metrics: {
          countersMissed: r.checks.filter((c) => !checkPasses(c)).length,
          daemonRestarted: r.daemonRestarted ? 1 : 0,
          forwardsPerSecondAfter: bouncing,
          loadRequests: r.load.requests,
        },
        detail: r,
      };
    });
  } finally {
    rmSync(sender.dir, { recursive: true, force: true });
  }
}

async function runOverflow(): Promise<Measurement> {
  return withCluster({ hosts: 2, tag: 'rof', config: { queues: { maxLen: 8 } } }, async (cluster) => {
    const held = cluster.hold({ address: hostAddress(0), connections: 16, intervalMs: 100, durationMs: 5000 });
    await sleep(1000);
    const sample = (): QueueSample => entryQueueSample(cluster);
    const pid = daemonPid(cluster, 0);
    const before = sample();
    process.kill(pid, 'SIGSTOP');
    let s;
    try {
      const load = cluster.load({ targets: [{ address: hostAddress(0) }], requests: 300, concurrency: 16, timeoutMs: 10000 });
      await sleep(1500);
      process.kill(pid, 'SIGCONT');
      s = await load;
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    const conns = await held;
    await sleep(300);
    const forwarded = conns.filter((c) => c.servedBy !== '0');
    return {
      value: failedOpen(before, sample()),
      secondary: s.errors,
      work: s.requests,
      metrics: { heldForwarded: forwarded.length, heldForwardedBroken: forwarded.filter((c) => c.error !== null).length, p99Ms: s.p99Ms },
      detail: { load: s, held: conns },
    };
  });
}

/** test/63's sequence: two waves of long-lived connections at h0, its daemon SIGKILLed and started again. */
async function runRestart(policy: 'hash' | 'load'): Promise<Measurement> {
  return withCluster({ hosts: 3, policy, tag: 'rrs', config: { load: { threshold: 1 } } }, async (cluster) => {
    const first = cluster.hold({ address: hostAddress(0), connections: 12, intervalMs: 200, durationMs: 7000 });
    await sleep(600);
    const second = cluster.hold({ address: hostAddress(0), connections: 12, intervalMs: 200, durationMs: 6400 });
    await sleep(2000); // past one snapshot (snapshotMs 1000)
    const killedAt = Date.now();
    await cluster.signalDaemon(0, 'SIGKILL');
    await cluster.startDaemon(0);
    const downMs = Date.now() - killedAt;
    const conns = [...(await first), ...(await second)];
    return {
      value: Math.max(...conns.map((c) => c.maxWaitMs)),
      secondary: conns.filter((c) => c.error !== null || c.moved).length,
      work: conns.length,
      metrics: { forwarded: conns.filter((c) => c.servedBy !== '0').length, downMs },
      detail: { held: conns },
    };
  });
}

type Kind = 'peer-death' | 'webserver-death-hash' | 'webserver-death-load' | 'idle' | 'idle-ipv6' | 'syn-flood' | 'malformed' | 'overflow' | 'restart-hash' | 'restart-load';
const variants: ReadonlyArray<Variant & { kind: Kind }> = [
  { name: 'peer-death', kind: 'peer-death', baseline: null, unit: 'ms p99 until no new connection goes to a dead host', secondaryUnit: 'ms p50',
    description: '3 hosts, hash policy, the product\'s heartbeat defaults; a new connection to h0 every 10 ms; h2 dies (daemon and web server SIGKILLed): time from the kill to the start of the last new connection that still went to h2; h2 revived between deaths' },
  { name: 'webserver-death-hash', kind: 'webserver-death-hash', baseline: null, unit: 'ms p99 until no new connection goes to a dead web server', secondaryUnit: 'ms p50',
    description: 'the same, but only h2\'s web server is killed (its daemon runs on): its health checks must take it out; the server restarted between deaths' },
  { name: 'webserver-death-load', kind: 'webserver-death-load', baseline: null, unit: 'ms p99 until no new connection goes to a dead web server', secondaryUnit: 'ms p50',
    description: 'the same with the load policy, 4 hosts, 50 ms per request, load.threshold 2 (h0 forwards; a dead server looks idlest)' },
  { name: 'idle', kind: 'idle', baseline: null, unit: 'ms of CPU per second, median idle daemon', secondaryUnit: 'ms/s, busiest idle daemon',
    description: '4 hosts, the product defaults (heartbeats 100 ms, health checks on), no traffic; every thread of each daemon (/proc/PID/stat), after a warm-up' },
  { name: 'idle-ipv6', kind: 'idle-ipv6', baseline: 'idle', unit: 'ms of CPU per second, median idle daemon', secondaryUnit: 'ms/s, busiest idle daemon',
    description: 'the same on a dual-stack cluster (issue 15): IPv6 addresses on every host, health checks over IPv4 and IPv6' },
  { name: 'syn-flood', kind: 'syn-flood', baseline: null, unit: '% of new connections that succeeded', secondaryUnit: 'MiB daemon RSS growth',
    description: 'spoofed SYNs (bench/c/syn_flood) at h0 from addresses no host has, every one a new 4-tuple, in bursts 500 ms apart, while 24 long-lived connections run and a load opens new ones (6 at a time, 15 s client timeout)' },
  { name: 'malformed', kind: 'malformed', baseline: null, unit: 'bad packets sent', secondaryUnit: 'errors of the normal load',
    description: 'every kind of test/support/faults malformedSet at h0\'s service address and peer ports (tools/c/packet_send at L2, 200 µs apart) while a normal load runs on all three hosts; each kind\'s counter checked' },
  { name: 'restart-hash', kind: 'restart-hash', baseline: null, unit: 'ms longest wait for an answer', secondaryUnit: 'connections broken or moved',
    description: 'test/63\'s sequence, hash policy: 24 long-lived connections at h0 of 3 hosts (a request every 200 ms), h0\'s daemon SIGKILLed and started again' },
  { name: 'restart-load', kind: 'restart-load', baseline: null, unit: 'ms longest wait for an answer', secondaryUnit: 'connections broken or moved',
    description: 'the same with the load policy (threshold 1, so the second wave is forwarded)' },
  { name: 'overflow', kind: 'overflow', baseline: null, unit: 'packets let through a full queue (fail-open)', secondaryUnit: 'errors of new connections',
    description: '2 hosts, queues.maxLen 8; h0\'s daemon paused (SIGSTOP) 1.5 s while 16 long-lived connections run and 300 new ones arrive (16 at a time)' },
];

export const reliability: Trial = {
  name: 'reliability',
  description: 'Faults, bad input and attacks (issue 5) at full counts: a peer dies, a SYN flood, malformed packets, a queue overflow',
  unit: 'value',
  secondaryUnit: 'second value',
  variants,
  baseline: 'peer-death',
  goals: [
    { text: 'p99 until a dead peer gets no new connections (default settings)', variant: 'peer-death', metric: 'value', kind: 'absolute', atMost: 500, unit: 'ms' },
    { text: 'p99 until a dead web server gets no new connections, hash (default settings)', variant: 'webserver-death-hash', metric: 'value', kind: 'absolute', atMost: 1000, unit: 'ms' },
    { text: 'p99 until a dead web server gets no new connections, load (default settings)', variant: 'webserver-death-load', metric: 'value', kind: 'absolute', atMost: 1000, unit: 'ms' },
    { text: 'no connection fails once the dead web server is out (load)', variant: 'webserver-death-load', metric: 'lateErrors', kind: 'absolute', atMost: 0 },
    { text: 'CPU of an idle daemon', variant: 'idle', metric: 'value', kind: 'absolute', atMost: 1, unit: 'ms/s' },
    { text: 'no connection fails once deadAfterMs + heartbeat + 1 s have passed', variant: 'peer-death', metric: 'lateErrors', kind: 'absolute', atMost: 0 },
    { text: 'new connections that succeed during the SYN flood', variant: 'syn-flood', metric: 'value', kind: 'absolute', atLeast: 90, unit: '%' },
    { text: 'held connections broken by the SYN flood', variant: 'syn-flood', metric: 'heldBroken', kind: 'absolute', atMost: 0 },
    { text: 'daemon RSS growth during the SYN flood', variant: 'syn-flood', metric: 'secondary', kind: 'absolute', atMost: 64, unit: 'MiB' },
    { text: 'normal-load errors during the malformed run', variant: 'malformed', metric: 'secondary', kind: 'absolute', atMost: 0 },
    { text: 'counters that did not show their kind', variant: 'malformed', metric: 'countersMissed', kind: 'absolute', atMost: 0 },
    { text: 'bad packets still bouncing between hosts after the run (forwards/s)', variant: 'malformed', metric: 'forwardsPerSecondAfter', kind: 'absolute', atMost: 0 },
    { text: 'long-lived connections broken by a daemon crash and restart (hash)', variant: 'restart-hash', metric: 'secondary', kind: 'absolute', atMost: 0 },
    { text: 'long-lived connections broken by a daemon crash and restart (load)', variant: 'restart-load', metric: 'secondary', kind: 'absolute', atMost: 0 },
    { text: 'new connections that fail while the queue overflows', variant: 'overflow', metric: 'secondary', kind: 'absolute', atMost: 0 },
    { text: 'forwarded long-lived connections reset while the queue overflows', variant: 'overflow', metric: 'heldForwardedBroken', kind: 'absolute', atMost: 0 },
  ],
  columns: [
    { metric: 'detectedP99', label: 'h0 table drops it, ms p99' },
    { metric: 'lostPerDeath', label: 'connections lost per death', digits: 1 },
    { metric: 'heldBroken', label: 'held broken' },
    { metric: 'heldForwardedBroken', label: 'held forwarded broken' },
    { metric: 'peakEmbryonic', label: 'peak embryonic flows' },
    { metric: 'tableFull', label: 'SYNs not remembered (budget full)' },
    { metric: 'failedOpen', label: 'failed open' },
    { metric: 'countersMissed', label: 'counters missed' },
    { metric: 'forwarded', label: 'held forwarded (restart)' },
    { metric: 'downMs', label: 'daemon down, ms' },
    { metric: 'forwardsPerSecondAfter', label: 'bouncing forwards/s after' },
  ],
  cpus: `0-${os.cpus().length - 1}`,
  timeoutMs: 240_000,
  setup(o) {
    const z = sizes(o);
    return [
      `Hosts: tools/cluster.ts (namespaces on one bridge, the real daemon as \`dpr start\`, rules from iptables/install.sh), hash policy, heartbeats every 100 ms, peers dead after 500 ms (peer-death, webserver-death-* and idle: the product defaults, ${PRODUCT_PEERS.heartbeatMs} and ${PRODUCT_PEERS.deadAfterMs} ms), health checks at their defaults, flows.max 65,536 and flows.maxEmbryonic 16,384.`,
      `peer-death: ${z.deaths} deaths per repetition. Value: p99 (secondary p50) over the deaths of the time from the kill to the start of the last new connection that went to the dead host (10 ms resolution); a connection counts as sent there when it failed (its SYN was held back by the dead host's rules). "h0 table drops it": /status polled every 20 ms. Lost: connections that failed per death (in flight at the kill or sent there before h0 noticed).`,
      `syn-flood: ${z.flood.toLocaleString('en-US')} SYNs in ${z.floodBursts} bursts from 198.18.0.100-${100 + z.floodBursts - 1}. Failed open: entry-queue packets the kernel let past the full queue (lib/kernel-queue failedOpen: NFQUEUE rule hits less what the daemon received).`,
      `malformed: ${z.copies} copies of each kind (distinct source ports and IP ids), ${z.loadRequests} requests of normal load over three hosts; the switch namespace's bridge does not run iptables (bridge-nf-call-iptables 0), so IP-level garbage reaches the host. Forwards/s after: forwards on h0 in the second after the load ended.`,
      'restart-*: as test/63 (flows.snapshotMs 1000, flow table read back at start); value: the longest any request waited for its answer (TCP retransmits while no daemon runs); daemon down: from SIGKILL until the new daemon printed its start line.',
      'overflow: failed open counted as in test/64; held forwarded broken: long-lived connections served by h1 (through h0) that broke.',
    ];
  },
  prepare() {
    for (const f of ['build/Release/dpr.node', 'dist/lib/cli.js', 'dist/tools/web-server.js', 'dist/test/support/probe.js']) {
      if (!existsSync(path.join(ROOT, f))) throw new Error(`reliability: ${f} is missing (run: npm run setup)`);
    }
    for (const tool of ['cc', 'curl', 'nstat', 'iptables-save']) {
      try {
        execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
      } catch {
        throw new Error(`reliability: '${tool}' is missing (run: npm run setup)`);
      }
    }
  },
  async run(variant, o) {
    const v = variants.find((x) => x.name === variant);
    if (v === undefined) throw new Error(`reliability: no variant '${variant}'`);
    if (v.kind === 'peer-death') return runPeerDeath(o, 'host', 'hash');
    if (v.kind === 'webserver-death-hash') return runPeerDeath(o, 'webserver', 'hash');
    if (v.kind === 'webserver-death-load') return runPeerDeath(o, 'webserver', 'load');
    if (v.kind === 'idle') return runIdle(o);
    if (v.kind === 'idle-ipv6') return runIdle(o, true);
    if (v.kind === 'syn-flood') return runSynFlood(o);
    if (v.kind === 'malformed') return runMalformedVariant(o);
    if (v.kind === 'restart-hash') return runRestart('hash');
    if (v.kind === 'restart-load') return runRestart('load');
    return runOverflow();
  },
};
