// From the checked configuration to what the addon takes: the engine and queue
// options of this host's two queues.
import { createHmac } from 'node:crypto';
import type { DprConfig } from './config';
import type { EngineOptions, QueueOptions, Role } from './native';
import { hasIpv6 } from './config';
import { parseIpv4 } from './ipv4';
import { ipv6Words, parseIpv6 } from './ipv6';
import { SET_PREFIX, SET_PREFIX6 } from './kernel-path';

/**
 * The Maglev hash key: the same on every host (they must agree on a client's
 * slot), secret to outsiders (or a client could pick its serving host), so
 * derived from the shared peers key: HMAC-SHA256(key, label), first 16 bytes.
 */
export function maglevKey(peersKey: Buffer): Uint8Array {
  return new Uint8Array(createHmac('sha256', peersKey).update('dpr maglev hash key').digest().subarray(0, 16));
}

/** The hosts' addresses as the addon takes them (EngineOptions, NativeQueue.setHosts), indexed by id. */
export function hostAddresses(c: Pick<DprConfig, 'hosts'>): Pick<EngineOptions, 'serviceAddrs' | 'clusterAddrs' | 'serviceAddrs6' | 'clusterAddrs6'> {
  const size = Math.max(...c.hosts.map((h) => h.id)) + 1;
  const serviceAddrs = new Uint32Array(size);
  const clusterAddrs = new Uint32Array(size);
  // Zero: no such host, or (IPv6-only hosts) no IPv4 address.
  for (const h of c.hosts) {
    if (h.service === undefined || h.cluster === undefined) continue;
    serviceAddrs[h.id] = parseIpv4(h.service);
    clusterAddrs[h.id] = parseIpv4(h.cluster);
  }
  if (!hasIpv6(c)) return { serviceAddrs, clusterAddrs };
  // Four big-endian words per id; all zero: no such host.
  const serviceAddrs6 = new Uint32Array(size * 4);
  const clusterAddrs6 = new Uint32Array(size * 4);
  for (const h of c.hosts) {
    serviceAddrs6.set(ipv6Words(parseIpv6(h.service6!)), h.id * 4);
    clusterAddrs6.set(ipv6Words(parseIpv6(h.cluster6!)), h.id * 4);
  }
  return { serviceAddrs, clusterAddrs, serviceAddrs6, clusterAddrs6 };
}

/** `peersKey`: the shared key, from which the entry engine's Maglev key is derived. */
export function engineOptions(c: DprConfig, role: Role, peersKey?: Buffer): EngineOptions {
  return {
    role,
    policy: c.policy,
    self: c.self,
    ...hostAddresses(c),
    servicePorts: Uint16Array.from(c.servicePorts),
    peerPortBase: c.peerPortBase,
    forwardMark: c.marks.forward,
    serveMark: c.marks.serve,
    maxFlows: c.flows.max,
    maxEmbryonic: c.flows.maxEmbryonic,
    timeouts: {
      synMs: c.flows.synTimeoutMs,
      probationMs: c.flows.probationTimeoutMs,
      establishedMs: c.flows.establishedTimeoutMs,
      closingMs: c.flows.closingTimeoutMs,
      resetMs: c.flows.resetTimeoutMs,
    },
    // One L2 segment between the peers: TTL 255 can be forged there, a
    // source MAC the switch has seen on another port hardly. (The entry
    // engine restores peers' ICMP errors when service and cluster address
    // are one, so it checks too.)
    ...(c.peers.routersBetween === 0 ? { checkPeerMacs: true } : {}),
    routersBetween: c.peers.routersBetween,
    ...(c.mode !== 'rewrite' ? { kernelForward: true, peerMarkMask: c.marks.peerMask } : {}),
    loadThreshold: c.load.threshold,
    ...(peersKey ? { hashKey: maglevKey(peersKey) } : {}),
  };
}

export function queueOptions(c: DprConfig, role: Role): QueueOptions {
  return {
    queueNum: role === 'entry' ? c.queues.entry : c.queues.serve,
    ...(role === 'entry' ? { flowsQueueNum: c.queues.flows } : {}),
    maxLen: c.queues.maxLen,
    rcvBufBytes: c.queues.rcvBufBytes,
    sndBufBytes: c.queues.sndBufBytes,
    batchSize: c.queues.batchSize,
    ...(role === 'entry' && c.mode !== 'rewrite' ? { ipsetPrefix: SET_PREFIX, ...(hasIpv6(c) ? { ipsetPrefix6: SET_PREFIX6 } : {}) } : {}),
  };
}
