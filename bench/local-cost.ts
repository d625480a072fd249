// One repetition of the local-traffic trial: what having dpr installed costs a
// host whose connections all stay local. wrk in the client namespace drives
// one host's web server, on keep-alive connections (the rules see every
// packet; after each SYN, `-m socket` keeps them in the kernel) or with a new
// connection per request (every SYN crosses the entry queue and the daemon).
//
// "Everything decided local": a Cluster of one host (tools/cluster.ts), its
// rules installed and its daemon running with the hash policy, whose only
// live host is itself; the path per SYN is the one a host of a bigger cluster
// takes for a connection its table keeps (lookup, flow insert, accept).
// Without dpr: the same namespace, server and load, no rules, no daemon.
import { Cluster, hostAddress } from '../tools/cluster';
import { cpuSeconds, cpuTicks } from './ns-cpu';
import { runWrk, summarizeWrk, WRK_SCRIPTS, type WrkSummary } from './wrk';

export interface LocalVariant {
  dpr: boolean;
  keepAlive: boolean;
}

export interface LocalSize {
  seconds: number;
  warmupSeconds: number;
}

export interface LocalSample extends WrkSummary {
  /** The entry queue's counters over the measured run (dpr only): what crossed the daemon. */
  entry: { packets: number; newLocal: number; newForwarded: number } | null;
  /** CPU seconds per process kind over the measured run (dpr daemon, web server, wrk). */
  cpuSeconds: Record<string, number>;
}

// The daemon as installed: the schema's default heartbeat (200 ms), which
// also sets how often it measures its load (tools/cluster.ts uses 100 ms for
// quick membership in tests). One host needs no peer key.
const DAEMON_CONFIG = { peers: { heartbeatMs: 200, deadAfterMs: 1000 } };

// Enough connections that the server's CPU, not the request round trip,
// limits the rate (the server answers after a 0 ms timer: ~1 ms at least).
const CONNECTIONS = 64;

function entryCounters(cluster: Cluster): { packets: number; newLocal: number; newForwarded: number } {
  const e = cluster.status(0).entry;
  if (e === null) throw new Error('local: the daemon has no entry queue');
  return { packets: e.packets, newLocal: e.newFlows.local, newForwarded: e.newFlows.forwarded };
}

async function load(cluster: Cluster, v: LocalVariant, seconds: number): Promise<WrkSummary> {
  const r = await runWrk(cluster.bed, 'client', {
    address: hostAddress(0),
    connections: CONNECTIONS,
    seconds,
    script: WRK_SCRIPTS.plain,
    headers: v.keepAlive ? [] : ['Connection: close'],
  });
  return summarizeWrk([r]);
}

export async function runLocal(v: LocalVariant, size: LocalSize): Promise<LocalSample> {
  const cluster = await Cluster.create({ hosts: 1, policy: 'hash', dpr: v.dpr, slots: 4096, serviceMs: 0, tag: 'bl', config: DAEMON_CONFIG });
  try {
    // New connections at thousands per second would run through the
    // client's default 28k ephemeral ports within a run.
    cluster.bed.sysctl('client', 'net.ipv4.ip_local_port_range', '1024 65535');
    await load(cluster, v, size.warmupSeconds);
    const before = v.dpr ? entryCounters(cluster) : null;
    const cpuBefore = cpuTicks(cluster.bed);
    const s = await load(cluster, v, size.seconds);
    const cpu = cpuSeconds(cpuBefore, cpuTicks(cluster.bed));
    const after = v.dpr ? entryCounters(cluster) : null;
    const entry = before && after
      ? { packets: after.packets - before.packets, newLocal: after.newLocal - before.newLocal, newForwarded: after.newForwarded - before.newForwarded }
      : null;
    return { ...s, entry, cpuSeconds: cpu };
  } finally {
    await cluster.destroy();
  }
}
