// The named engine set-ups a fixture picks with its "engine" field, built on
// the cluster of ./cluster.ts.
import { parseIpv4 } from '../../lib/ipv4';
import { Engine, type EngineOptions, type NativeEngine } from '../../lib/native';
import {
  CLUSTER, CLUSTER6, FORWARD_MARK, PEER_MACS, PEER_PORT_BASE, SERVE_MARK, SERVICE, SERVICE6, SERVICE_PORTS, type EngineName,
} from './cluster';
import { ipv6Bytes } from './packet-builder';

/** A MAC address as 6 bytes. */
export function macBytes(mac: string): Uint8Array {
  return Uint8Array.from(mac.split(':'), (b) => parseInt(b, 16));
}

function addrs(list: readonly (string | null)[]): Uint32Array {
  return Uint32Array.from(list, (a) => (a === null ? 0 : parseIpv4(a)));
}

/** IPv6 addresses as EngineOptions wants them: 4 big-endian words per host id, zeros for none. */
export function addrs6(list: readonly (string | null)[]): Uint32Array {
  const out = new Uint32Array(list.length * 4);
  list.forEach((a, id) => {
    if (a === null) return;
    const b = ipv6Bytes(a);
    const view = new DataView(b.buffer);
    for (let w = 0; w < 4; w += 1) out[id * 4 + w] = view.getUint32(w * 4);
  });
  return out;
}

/**
 * Options shared by every set-up; callers override what their case needs. A
 * caller that brings its own IPv4 host list and no IPv6 one gets none.
 */
export function baseOptions(over: Partial<EngineOptions> = {}): EngineOptions {
  const ipv6 = over.serviceAddrs === undefined || over.serviceAddrs6 !== undefined;
  return {
    role: 'entry',
    policy: 'hash',
    self: 0,
    serviceAddrs: addrs(SERVICE),
    clusterAddrs: addrs(CLUSTER),
    ...(ipv6 ? { serviceAddrs6: addrs6(SERVICE6), clusterAddrs6: addrs6(CLUSTER6) } : {}),
    servicePorts: Uint16Array.from(SERVICE_PORTS),
    peerPortBase: PEER_PORT_BASE,
    forwardMark: FORWARD_MARK,
    serveMark: SERVE_MARK,
    maxFlows: 1024,
    maxEmbryonic: 256,
    timeouts: { synMs: 10000, establishedMs: 900000, closingMs: 120000 },
    ...over,
  };
}

/** A Maglev-sized table (prime length) that names one host everywhere. */
export function uniformTable(host: number, size = 251): Uint16Array {
  return new Uint16Array(size).fill(host);
}

/**
 * For the load policy: `host` everywhere but one slot that names this host
 * (0), which the table must name to be eligible for new connections itself.
 */
export function loadTable(host: number, size = 251): Uint16Array {
  const t = uniformTable(host, size);
  t[0] = 0;
  return t;
}

export function makeEngine(name: EngineName): NativeEngine {
  switch (name) {
    case 'entry-hash-to-peer':
    case 'entry-draining': {
      const e = new Engine(baseOptions());
      e.setLookupTable(uniformTable(1));
      if (name === 'entry-draining') e.setDraining(true);
      return e;
    }
    case 'entry-hash-local': {
      const e = new Engine(baseOptions());
      e.setLookupTable(uniformTable(0));
      return e;
    }
    case 'entry-load-busy':
    case 'entry-load-idle': {
      const e = new Engine(baseOptions({ policy: 'load' }));
      e.setLookupTable(loadTable(1));
      // As the load meter and a heartbeat would say it (no sockets-in-use count: the value stands).
      e.calibrateLoad(name === 'entry-load-busy' ? 50 : 0, -1);
      e.publishPeerLoad(1, 0);
      return e;
    }
    case 'entry-ipv4-only': {
      const e = new Engine(baseOptions({ serviceAddrs6: undefined, clusterAddrs6: undefined }));
      e.setLookupTable(uniformTable(1));
      return e;
    }
    case 'serve':
      return new Engine(baseOptions({ role: 'serve', self: 1 }));
    case 'serve-macs': {
      const e = new Engine(baseOptions({ role: 'serve', self: 1, checkPeerMacs: true }));
      const macs = new Uint8Array(SERVICE.length * 6);
      PEER_MACS.forEach((m, id) => m && macs.set(macBytes(m), id * 6));
      e.setPeerMacs(macs);
      return e;
    }
  }
}
