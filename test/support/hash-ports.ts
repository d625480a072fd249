// Client ports whose connections a test cluster's hash policy sends to a given
// host: the Maglev table the daemons build, and the Maglev key they derive
// from the cluster's peers key, asked through the addon's own Engine.
import { CLIENT_ADDRESS, CLUSTER_KEY, hostAddress } from '../../tools/cluster';
import { parseIpv4 } from '../../lib/ipv4';
import { buildMaglevTable } from '../../lib/maglev';
import { Engine } from '../../lib/native';
import { loadKey } from '../../lib/keys';
import { maglevKey } from '../../lib/plan';

/** `count` client ports in [first, last] that the table of `hosts` (ids 0..hosts-1, all live) gives `target`. */
export function portsServedBy(target: number, count: number, o: { hosts?: number; client?: string; first?: number; last?: number } = {}): number[] {
  const hosts = o.hosts ?? 2;
  const addrs = Uint32Array.from({ length: hosts }, (_, id) => parseIpv4(hostAddress(id)));
  const engine = new Engine({
    role: 'entry', policy: 'hash', self: 0, serviceAddrs: addrs, clusterAddrs: addrs,
    servicePorts: Uint16Array.of(80), peerPortBase: 20000, forwardMark: 0x100, serveMark: 0x200,
    maxFlows: 16, maxEmbryonic: 16, timeouts: { synMs: 1000, establishedMs: 1000, closingMs: 1000 },
    hashKey: maglevKey(loadKey({ key: CLUSTER_KEY })),
  });
  engine.setLookupTable(buildMaglevTable(Array.from({ length: hosts }, (_, id) => id)));
  const client = parseIpv4(o.client ?? CLIENT_ADDRESS);
  const ports: number[] = [];
  for (let p = o.first ?? 10_000; p <= (o.last ?? 65_000) && ports.length < count; p++) {
    if (engine.hashTarget(client, p) === target) ports.push(p);
  }
  if (ports.length < count) throw new Error(`only ${ports.length} client ports map to h${target}, want ${count}`);
  return ports;
}
