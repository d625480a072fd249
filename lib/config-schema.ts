// The configuration schema: every key dpr reads, with its doc, default, format
// and environment override. This file is the public interface; README's
// configuration reference is generated from it (scripts/config-docs.ts).
import convict from 'convict';
import { parseCidr, parseIpv4 } from './ipv4';
import { IPV6_MIN_MTU, parseCidr6, parseIpv6, unusableIpv6 } from './ipv6';
import { MAX_WEIGHT } from './maglev';

export interface HostEntry {
  /** Stable id, 0..255: it names the host in peer ports and heartbeats. */
  id: number;
  /**
   * IPv4 service address: what DNS hands out, what clients connect to.
   * Absent on an IPv6-only host (then every host is: lib/config.ts).
   */
  service?: string;
  /** IPv4 cluster address: where peers reach this host; may equal `service`. Set with `service` or not at all. */
  cluster?: string;
  /**
   * Relative capacity, 0..MAX_WEIGHT (1 when the file leaves it out; loadConfig
   * fills it in): the host's share of new connections. 0: none, established
   * ones go on (drain by weight).
   */
  weight: number;
  /** IPv6 service address (dual-stack or IPv6-only, every mode but `tunnel` for IPv6-only): every host has one and `cluster6`, or none does. */
  service6?: string;
  /** IPv6 cluster address: where peers forward IPv6 connections to; in `clusterCidr6`. */
  cluster6?: string;
}

/** What VXLAN over IPv4 adds to a packet in `tunnel` mode: outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14. */
export const VXLAN_OVERHEAD = 50;

/** The fields a host entry may have. */
const HOST_FIELDS = ['id', 'service', 'cluster', 'weight', 'service6', 'cluster6'];

/** hosts[i].service6 / .cluster6, when present: a usable IPv6 address (lib/config.ts checks the cluster-wide rules). */
function checkHost6(o: Record<string, unknown>, i: number): void {
  for (const k of ['service6', 'cluster6'] as const) {
    if (o[k] === undefined) continue;
    if (typeof o[k] !== 'string') throw new Error(`hosts[${i}].${k} must be an IPv6 address string`);
    let v: bigint;
    try {
      v = parseIpv6(o[k] as string);
    } catch {
      throw new Error(`hosts[${i}].${k} '${String(o[k])}' is not an IPv6 address`);
    }
    const why = unusableIpv6(v);
    if (why) throw new Error(`hosts[${i}].${k} ${String(o[k])} ${why}`);
  }
}

function checkHost(h: unknown, i: number): void {
  if (typeof h !== 'object' || h === null) throw new Error(`hosts[${i}] must be an object {id, service, cluster}`);
  const o = h as Record<string, unknown>;
  if (!Number.isInteger(o.id) || (o.id as number) < 0 || (o.id as number) > 255) {
    throw new Error(`hosts[${i}].id must be an integer 0..255`);
  }
  // IPv6-only hosts have neither (lib/config.ts: every host or none).
  if (o.service === undefined && o.cluster === undefined && o.service6 !== undefined) {
    if (o.cluster6 === undefined) throw new Error(`hosts[${i}] needs cluster6 with service6 (it has no IPv4 addresses)`);
  } else for (const k of ['service', 'cluster'] as const) {
    if (typeof o[k] !== 'string') throw new Error(`hosts[${i}].${k} must be an IPv4 address string`);
    try {
      parseIpv4(o[k] as string);
    } catch {
      throw new Error(`hosts[${i}].${k} '${String(o[k])}' is not an IPv4 address`);
    }
  }
  if (o.weight !== undefined && (!Number.isInteger(o.weight) || (o.weight as number) < 0 || (o.weight as number) > MAX_WEIGHT)) {
    throw new Error(`hosts[${i}].weight must be an integer 0..${MAX_WEIGHT} (0: no new connections), got ${JSON.stringify(o.weight)}`);
  }
  checkHost6(o, i);
  const extra = Object.keys(o).filter((k) => !HOST_FIELDS.includes(k));
  if (extra.length) throw new Error(`hosts[${i}] has unknown field '${extra[0]}'`);
}

/** `200-399,404` as the ranges it names; throws naming what is wrong. */
export function parseStatusList(text: string): Array<[number, number]> {
  const ranges = text.split(',').map((part) => {
    const m = /^\s*(\d{3})\s*(?:-\s*(\d{3})\s*)?$/.exec(part);
    if (!m) throw new Error(`'${part.trim()}' is not an HTTP status code or range (such as 200 or 200-399)`);
    const lo = Number(m[1]);
    const hi = Number(m[2] ?? m[1]);
    if (lo < 100 || hi > 599 || lo > hi) throw new Error(`'${part.trim()}' is not a range of HTTP status codes (100..599)`);
    return [lo, hi] as [number, number];
  });
  return ranges;
}

/** A key with no default (`self`, `hosts`, `clusterCidr`) that nothing set. */
function required(value: unknown): void {
  if (value === null || value === undefined) throw new Error('is required (not in the file, nor in its DPR_* variable)');
}

/**
 * Environment values arrive as text. Only text that is wholly a number
 * becomes one (parseInt('1x') would be 1); anything else stays text, and the
 * format's validate() names it.
 */
const toInt = (v: string): number | string => (/^\s*\d+\s*$/.test(v) ? Number(v) : v);

function integer(value: unknown, min: number, max: number, what: string): void {
  required(value);
  if (!Number.isInteger(value) || (value as number) < min || (value as number) > max) {
    throw new Error(`must be ${what}`);
  }
}

convict.addFormats({
  // Required in static membership only: lib/config.ts checks that, knowing the source.
  hosts: {
    validate(value: unknown) {
      if (value === null) return;
      if (typeof value === 'string') throw new Error(`must be a JSON list of {id, service, cluster}; the text is not JSON (${jsonError(value)})`);
      if (!Array.isArray(value) || value.length === 0) throw new Error('must be a non-empty list of {id, service, cluster}');
      value.forEach(checkHost);
    },
    // Text that is not JSON stays text, so validate() can name the key.
    coerce: (v: string) => {
      try {
        return JSON.parse(v) as unknown;
      } catch {
        return v;
      }
    },
  },
  'port-list': {
    validate(value: unknown) {
      if (!Array.isArray(value) || value.length === 0) throw new Error('must be a non-empty list of TCP ports');
      for (const p of value) {
        if (!Number.isInteger(p) || p < 1 || p > 65535) throw new Error(`'${String(p)}' is not a TCP port (1..65535)`);
      }
      if (new Set(value).size !== value.length) throw new Error('lists a port twice');
    },
    coerce: (v: string) => v.split(',').map((p) => toInt(p.trim())),
  },
  // Empty: no IPv4 (lib/config.ts requires it when hosts have IPv4 addresses).
  'cidr-or-empty': {
    validate(value: unknown) {
      if (value === '') return;
      if (typeof value !== 'string') throw new Error('must be an IPv4 CIDR such as 198.18.0.0/24, or empty');
      parseCidr(value);
    },
  },
  cidr: {
    validate(value: unknown) {
      required(value);
      if (typeof value !== 'string') throw new Error('must be an IPv4 CIDR such as 198.18.0.0/24');
      parseCidr(value);
    },
  },
  // Empty: no IPv6 (lib/config.ts requires it when hosts have IPv6 addresses).
  'cidr6-or-empty': {
    validate(value: unknown) {
      if (value === '') return;
      if (typeof value !== 'string') throw new Error('must be an IPv6 CIDR such as 2001:db8:1::/64, or empty');
      parseCidr6(value);
    },
  },
  cidr6: {
    validate(value: unknown) {
      if (typeof value !== 'string') throw new Error('must be an IPv6 CIDR such as fd02:b4eb:33f2::/64');
      parseCidr6(value);
    },
  },
  ipv6: {
    validate(value: unknown) {
      if (typeof value !== 'string') throw new Error('must be an IPv6 address');
      parseIpv6(value);
    },
  },
  ipv4: {
    validate(value: unknown) {
      if (typeof value !== 'string') throw new Error('must be an IPv4 address');
      parseIpv4(value);
    },
  },
  'status-list': {
    validate(value: unknown) {
      if (typeof value !== 'string') throw new Error('must be a text such as 200-399 or 200,204');
      parseStatusList(value);
    },
  },
  mark: {
    validate(value: unknown) {
      if (!Number.isInteger(value) || (value as number) <= 0 || (value as number) > 0xffffffff) {
        throw new Error('must be a non-zero 32-bit packet mark');
      }
    },
    coerce: (v: string) => (/^\s*(0x[0-9a-f]+|\d+)\s*$/i.test(v) ? Number(v) : v),
  },
  // convict's own nat and port take parseInt's reading ('1x' is 1) and call 0 "not positive".
  nat: { validate: (v: unknown) => integer(v, 0, Number.MAX_SAFE_INTEGER, 'an integer ≥ 0'), coerce: toInt },
  'host-id': {
    validate(v: unknown) {
      if (v === null) return;
      integer(v, 0, Number.MAX_SAFE_INTEGER, 'an integer ≥ 0');
      if ((v as number) > 255) throw new Error('must be a host id 0..255');
    },
    coerce: toInt,
  },
  'ipv4-or-empty': {
    validate(value: unknown) {
      if (value === '') return;
      if (typeof value !== 'string') throw new Error('must be an IPv4 address');
      parseIpv4(value);
    },
  },
  /** A usable IPv6 address (unusableIpv6: no loopback, link-local, ...) or empty. */
  'ipv6-or-empty': {
    validate(value: unknown) {
      if (value === '') return;
      if (typeof value !== 'string') throw new Error('must be an IPv6 address');
      const why = unusableIpv6(parseIpv6(value));
      if (why) throw new Error(`${value} ${why}`);
    },
  },
  'url-list': {
    validate(value: unknown) {
      if (!Array.isArray(value)) throw new Error('must be a list of URLs such as http://10.0.0.5:2379');
      for (const u of value) {
        if (typeof u !== 'string' || !/^https?:\/\/[^/\s]+:\d+\/?$/.test(u)) throw new Error(`'${String(u)}' is not a URL such as http://10.0.0.5:2379 or https://etcd1.example:2379`);
      }
      if (new Set(value).size !== value.length) throw new Error('lists a URL twice');
    },
    coerce: (v: string) => v.split(',').map((u) => u.trim()).filter((u) => u !== ''),
  },
  'etcd-prefix': {
    validate(value: unknown) {
      if (typeof value !== 'string' || !/^\/([\w.-]+\/)*$/.test(value)) throw new Error("must be a key prefix that starts and ends with '/', such as /dpr/ or /dpr/cluster-a/");
    },
  },
  port: { validate: (v: unknown) => integer(v, 0, 65535, 'a port number 0..65535'), coerce: toInt },
  'positive-int': { validate: (v: unknown) => integer(v, 1, Number.MAX_SAFE_INTEGER, 'an integer ≥ 1'), coerce: toInt },
  'queue-num': { validate: (v: unknown) => integer(v, 0, 65535, 'an NFQUEUE number 0..65535'), coerce: toInt },
});

function jsonError(text: string): string {
  try {
    JSON.parse(text);
    return 'parsed';
  } catch (err) {
    return (err as Error).message;
  }
}

export const schema = {
  self: {
    doc: "This host's id: one of the ids in `hosts`. With `membership.source` `etcd` it may be left out: the host claims the id it had before (`membership.etcd.stateFile`), else the lowest free one; set, it claims that id only.",
    format: 'host-id',
    default: null as unknown as number,
    env: 'DPR_SELF',
  },
  hosts: {
    doc: `Every host of the cluster: \`[{id, service, cluster, weight, service6, cluster6}]\`. \`service\` is the IPv4 address clients connect to; \`cluster\` the IPv4 address peers reach it at (may be equal); both left out on IPv6-only hosts (then on every host: IPv4 is cluster-wide, as IPv6 is; with \`peers.family\` \`ipv6\`, not in \`tunnel\` mode). \`weight\` (optional, integer 0..${MAX_WEIGHT}, default 1) is the host's relative capacity: its share of the Maglev table (hash policy) and the divisor of its load (load policy) follow it; 0 takes it out of new connections while its established ones go on (drain by weight, live with \`dpr reload\`). \`service6\` and \`cluster6\` (IPv6, every mode; in \`direct\` and \`tunnel\` \`cluster6\` must differ from \`service6\`): the host's IPv6 service and cluster addresses; every host has both or none does, and a host has IPv4 addresses, IPv6 ones or both. The same list on every host. Required with \`membership.source\` \`static\`; not allowed with \`etcd\`, where the list comes from etcd.`,
    format: 'hosts',
    default: null as unknown as HostEntry[],
    env: 'DPR_HOSTS',
  },
  membership: {
    source: { doc: 'Where the host list comes from: `static` (`hosts` in this file, the same on every host) or `etcd` (every host registers itself under `membership.etcd.prefix` and watches the others; the file describes this host only: `membership.service`, `membership.cluster`, optionally `self`). See docs/operations.md, "Membership from etcd".', format: ['static', 'etcd'] as const, default: 'static', env: 'DPR_MEMBERSHIP_SOURCE' },
    service: { doc: "etcd membership: this host's IPv4 service address (what clients connect to); empty with `membership.cluster` on an IPv6-only host, which sets `membership.service6` and `.cluster6` (and then takes only IPv6-only records). Static: taken from its entry in `hosts`; leave empty.", format: 'ipv4-or-empty', default: '', env: 'DPR_MEMBERSHIP_SERVICE' },
    cluster: { doc: "etcd membership: this host's cluster address (where peers reach it; may equal `membership.service`). Static: leave empty.", format: 'ipv4-or-empty', default: '', env: 'DPR_MEMBERSHIP_CLUSTER' },
    service6: { doc: "etcd membership, dual-stack: this host's IPv6 service address, as `hosts[].service6`; written into its record. With it `membership.cluster6` and `clusterCidr6`; a record with IPv6 addresses and one without never make one cluster (each is ignored by the other's hosts). Empty: IPv4 only.", format: 'ipv6-or-empty', default: '', env: 'DPR_MEMBERSHIP_SERVICE6' },
    cluster6: { doc: "etcd membership, dual-stack: this host's IPv6 cluster address, as `hosts[].cluster6` (in `clusterCidr6`). Set with `membership.service6` or not at all.", format: 'ipv6-or-empty', default: '', env: 'DPR_MEMBERSHIP_CLUSTER6' },
    weight: { doc: `etcd membership: this host's weight, as \`hosts[].weight\` (0..${MAX_WEIGHT}); written into its record.`, format: 'nat', default: 1, env: 'DPR_MEMBERSHIP_WEIGHT' },
    etcd: {
      endpoints: { doc: 'etcd membership: the etcd servers, as `http://` or `https://` URLs with a port (`http://10.0.0.5:2379`). A call goes to one of them, the next on failure.', format: 'url-list', default: [] as string[], env: 'DPR_ETCD_ENDPOINTS' },
      prefix: { doc: 'etcd membership: the key prefix of this cluster; each host writes `<prefix>hosts/<id>`. Clusters that share an etcd need prefixes of their own.', format: 'etcd-prefix', default: '/dpr/', env: 'DPR_ETCD_PREFIX' },
      leaseTtlS: { doc: "etcd membership: TTL of this host's lease, in seconds (kept alive every third of it). A host that dies without leaving is taken out of the list after this; heartbeats stop routing to it long before (`peers.deadAfterMs`).", format: 'positive-int', default: 10, env: 'DPR_ETCD_LEASE_TTL_S' },
      maxHosts: { doc: 'etcd membership: ids 0..maxHosts-1 can be claimed. Sizes the peer port range and `restoreCidr` the rules set up, so that hosts can join without a change to either.', format: 'positive-int', default: 64, env: 'DPR_ETCD_MAX_HOSTS' },
      stateFile: { doc: "etcd membership: where this host keeps its id and lease (the claim file), so that a restart keeps its id: within the lease's TTL (a crash) it goes on with the same lease and no peer sees a change; later, or after it left, it asks for the same id first. Empty: not kept.", format: String, default: '/var/lib/dpr/membership.json', env: 'DPR_ETCD_STATE_FILE' },
      retryMinMs: { doc: 'etcd membership: first delay before a new attempt when etcd cannot be reached; doubled per failure (with jitter) up to `retryMaxMs`.', format: 'positive-int', default: 250, env: 'DPR_ETCD_RETRY_MIN_MS' },
      retryMaxMs: { doc: 'etcd membership: the longest delay between attempts. Meanwhile the last known host list stays and heartbeats still decide who is alive.', format: 'positive-int', default: 5000, env: 'DPR_ETCD_RETRY_MAX_MS' },
      tls: {
        ca: { doc: "etcd membership: file with the CA certificate(s) that signed the etcd servers' certificates (PEM). Empty with `https://` endpoints: the system's CAs.", format: String, default: '', env: 'DPR_ETCD_CA_FILE' },
        cert: { doc: "etcd membership: file with this host's client certificate (PEM), for etcd's `--client-cert-auth`. Needs `tls.key`.", format: String, default: '', env: 'DPR_ETCD_CERT_FILE' },
        key: { doc: 'etcd membership: file with the private key of `tls.cert` (PEM).', format: String, default: '', env: 'DPR_ETCD_KEY_FILE' },
      },
      username: { doc: 'etcd membership: user name for etcd authentication (`etcdctl user add`); empty: none. It needs read and write on the prefix.', format: String, default: '', env: 'DPR_ETCD_USERNAME' },
      password: { doc: 'etcd membership: its password. Prefer `passwordFile`.', format: String, default: '', sensitive: true, env: 'DPR_ETCD_PASSWORD' },
      passwordFile: { doc: 'etcd membership: file holding the password (a trailing newline is ignored).', format: String, default: '', env: 'DPR_ETCD_PASSWORD_FILE' },
    },
  },
  servicePorts: {
    doc: 'TCP ports of the web service that dpr routes.',
    format: 'port-list',
    default: [80],
    env: 'DPR_SERVICE_PORTS',
  },
  peerPortBase: {
    doc: 'First peer port. A forwarded packet goes to `cluster:peerPortBase + origin * len(servicePorts) + k`; the serving host reads the entry host and service port back from it. The range must not overlap the service ports, the metrics port or the ephemeral range.',
    format: 'port',
    default: 20000,
    env: 'DPR_PEER_PORT_BASE',
  },
  clusterCidr: {
    doc: 'The network of the IPv4 cluster addresses: every host\'s `cluster` address must lie in it. Required unless the hosts are IPv6-only (no `service` nor `cluster`: then leave it empty).',
    format: 'cidr-or-empty',
    default: '',
    env: 'DPR_CLUSTER_CIDR',
  },
  restoreCidr: {
    doc: 'Addresses a serving host gives forwarded connections locally, one per entry host (network + id + 1, put on `lo` by install.sh). They keep a forwarded connection apart from a direct one of the same client port, which would otherwise share one socket 4-tuple. Pick a block used nowhere else.',
    format: 'cidr',
    default: '169.254.77.0/24',
    env: 'DPR_RESTORE_CIDR',
  },
  clusterCidr6: {
    doc: 'The network of the IPv6 cluster addresses: every host\'s `cluster6` must lie in it. Required when the hosts have IPv6 addresses (`service6`, `cluster6`); empty: no IPv6. See "IPv6" in docs/operations.md.',
    format: 'cidr6-or-empty',
    default: '',
    env: 'DPR_CLUSTER_CIDR6',
  },
  restoreCidr6: {
    doc: 'As `restoreCidr`, for IPv6 connections: network + id + 1 per entry host, put on `lo` by install.sh. The default is a unique local block (RFC 4193, fc00::/7, never routed on the Internet) with a random global id, so it clashes with no site\'s own ULA by chance; not link-local (fe80::/10), whose addresses have the scope of one link. Used only when the hosts have IPv6 addresses; pick a block used nowhere else.',
    format: 'cidr6',
    default: 'fd02:b4eb:33f2::/64',
    env: 'DPR_RESTORE_CIDR6',
  },
  policy: {
    doc: "How a new connection's host is chosen: `hash` (Maglev over client address and port, all native) or `load` (stay local up to `load.threshold` per weight or the cluster mean x 1.1, else the lighter of two peers; decided natively too, from this host's count and peers' heartbeats).",
    format: ['hash', 'load'] as const,
    default: 'hash',
    env: 'DPR_POLICY',
  },
  mode: {
    doc: 'Data path (README, "Modes"). `rewrite`: the entry host rewrites every packet of a forwarded connection to the peer in userspace; works across routed networks with no MTU cost. `direct` (all hosts on one L2 segment): only the SYN of a forwarded connection leaves the kernel; its later packets are routed unchanged to the serving host by an ipset entry and policy routing, and the serving host holds its peers\' service addresses on `lo`. Needs every host\'s `cluster` address to differ from its `service` address. `tunnel` (peers routers apart): as `direct`, but the route to a peer is a kernel VXLAN device towards its cluster address (`tunnel.port`), and the serving host clamps the MSS of the connections it serves for peers (`tunnel.mtu`).',
    format: ['rewrite', 'direct', 'tunnel'] as const,
    default: 'rewrite',
    env: 'DPR_MODE',
  },
  routing: {
    tableBase: { doc: '`direct` and `tunnel`: the routing table of peer id `i` is `tableBase + i` (one route: to the peer). Pick numbers no other software uses.', format: 'positive-int', default: 4600, env: 'DPR_ROUTING_TABLE_BASE' },
    rulePref: { doc: '`direct` and `tunnel`: the preference of the `ip rule fwmark` rules that send marked packets to the peers\' tables. They must come before the `local` table\'s rule, which `dpr install` moves from 0 to `rulePref + 1` (and `dpr uninstall` moves back).', format: 'positive-int', default: 10, env: 'DPR_ROUTING_RULE_PREF' },
  },
  tunnel: {
    port: { doc: '`tunnel`: the UDP port of the VXLAN devices, on the cluster addresses (IANA VXLAN: 4789). Peers must reach each other on it; nobody else should (firewall it to `clusterCidr`).', format: 'port', default: 4789, env: 'DPR_TUNNEL_PORT' },
    vniBase: { doc: '`tunnel`: the VXLAN network identifiers are `vniBase + 256 x lower id + higher id`, one per pair of hosts.', format: 'nat', default: 6553600, env: 'DPR_TUNNEL_VNI_BASE' },
    mtu: { doc: `\`tunnel\`: the MTU of the paths between the cluster addresses. A tunnelled packet is ${VXLAN_OVERHEAD} bytes longer (VXLAN over IPv4, for IPv6 packets too), so a serving host advertises an MSS of at most \`mtu - ${VXLAN_OVERHEAD + 40}\` on the IPv4 connections it serves for peers and \`mtu - ${VXLAN_OVERHEAD + 60}\` on the IPv6 ones (an IPv6 header is 20 bytes longer), and the clients' segments fit. With IPv6 addresses at least ${IPV6_MIN_MTU + VXLAN_OVERHEAD}: the tunnel devices (\`mtu - ${VXLAN_OVERHEAD}\`) carry IPv6 only from ${IPV6_MIN_MTU} up.`, format: 'positive-int', default: 1500, env: 'DPR_TUNNEL_MTU' },
  },
  queues: {
    entry: { doc: 'NFQUEUE number for new connections (SYNs) and ICMP errors arriving at the service address. Bound with fail-open: when it is full, or no daemon runs, they are served here.', format: 'queue-num', default: 0, env: 'DPR_QUEUE_ENTRY' },
    flows: { doc: 'NFQUEUE number for the later packets of connections this host does not serve itself (the forwarded ones). Bound without fail-open: when it is full, or no daemon runs, they are dropped and TCP sends them again; the local stack would reset them.', format: 'queue-num', default: 2, env: 'DPR_QUEUE_FLOWS' },
    serve: { doc: 'NFQUEUE number for packets forwarded by peers to the peer ports.', format: 'queue-num', default: 1, env: 'DPR_QUEUE_SERVE' },
    synLimit: { doc: '`load` policy: new connections (SYNs) sent to the entry queue per second, at most; past that (a SYN flood) the kernel serves them here directly, as when the queue is full, so a flood costs what it costs a host without dpr. IPv4 and IPv6 SYNs are counted apart (one limit each). 0: no limit. Not applied with `hash` (see docs/design-notes.md).', format: 'nat', default: 10000, env: 'DPR_QUEUE_SYN_LIMIT' },
    maxLen: { doc: 'Packets the kernel holds per queue number; past that the entry and serve queues let packets through unrouted (fail-open), the flows queue drops them.', format: 'positive-int', default: 4096, env: 'DPR_QUEUE_MAX_LEN' },
    batchSize: { doc: 'Packets received per system call (recvmmsg); verdicts of one batch leave in one send.', format: 'positive-int', default: 64, env: 'DPR_QUEUE_BATCH' },
    rcvBufBytes: { doc: 'Netlink receive buffer per queue (SO_RCVBUFFORCE).', format: 'positive-int', default: 8388608, env: 'DPR_QUEUE_RCVBUF' },
    sndBufBytes: { doc: 'Netlink send buffer per queue (SO_SNDBUFFORCE; the kernel doubles it). Verdict batches are sized from what the kernel grants, so a smaller buffer only means more system calls. At least 65536.', format: 'positive-int', default: 2097152, env: 'DPR_QUEUE_SNDBUF' },
  },
  marks: {
    forward: { doc: 'Packet mark bit(s) on packets the entry host rewrote; the rules untrack and accept them. Choose bits no other software on the host uses (Kubernetes uses 0x4000 and 0x8000).', format: 'mark', default: 0x1000000, env: 'DPR_MARK_FORWARD' },
    serve: { doc: 'Packet mark bit(s) on packets the serving host restored; the nat rule DNATs them to the local server.', format: 'mark', default: 0x2000000, env: 'DPR_MARK_SERVE' },
    peerMask: { doc: '`direct` and `tunnel`: the mark bits that carry a forwarded packet\'s serving host id (with `marks.forward`), which `ip rule fwmark` turns into that host\'s routing table. Contiguous, apart from the other marks, room for every host id.', format: 'mark', default: 0xff0000, env: 'DPR_MARK_PEER_MASK' },
  },
  peers: {
    port: { doc: 'UDP port for heartbeats and load reports, on the cluster address (`cluster6` with `peers.family` `ipv6`).', format: 'port', default: 4790, env: 'DPR_PEERS_PORT' },
    family: { doc: 'Which cluster addresses heartbeats and load reports go between: `ipv4` (`hosts[].cluster`) or `ipv6` (`hosts[].cluster6`, a dual-stack cluster whose peers reach each other over IPv6; every host needs `cluster6`: `hosts[].cluster6`, or `membership.cluster6` with etcd). A heartbeat must come from the sender\'s address of this family.', format: ['ipv4', 'ipv6'] as const, default: 'ipv4', env: 'DPR_PEERS_FAMILY' },
    key: { doc: 'Shared HMAC-SHA256 key, hex or base64, at least 16 bytes. Prefer `peers.keyFile`.', format: String, default: '', sensitive: true, env: 'DPR_PEERS_KEY' },
    keyFile: { doc: 'File holding the shared key, hex or base64 (whitespace around it ignored). Read and checked by `dpr check`, `dpr install` and `dpr start`.', format: String, default: '', env: 'DPR_PEERS_KEY_FILE' },
    rotationKey: { doc: 'During a key rotation: a second key, hex or base64, that heartbeats may also be signed with (this host signs with `peers.key` only). See "Rotating the key" in docs/operations.md. Prefer `peers.rotationKeyFile`.', format: String, default: '', sensitive: true, env: 'DPR_PEERS_ROTATION_KEY' },
    rotationKeyFile: { doc: 'File holding `peers.rotationKey`.', format: String, default: '', env: 'DPR_PEERS_ROTATION_KEY_FILE' },
    routersBetween: { doc: 'Routers between two peers (0: one L2 segment). Forwarded packets leave the entry host with TTL 255 and are accepted on the peer ports only with TTL > 254 - routersBetween (GTSM, RFC 5082), so nobody farther away can make a host answer as another. With 0, they must also come from the MAC address of the peer that sent them (the neighbour table). See docs/operations.md for what this does not protect.', format: 'nat', default: 0, env: 'DPR_PEERS_ROUTERS_BETWEEN' },
    heartbeatMs: { doc: 'Interval between heartbeats to each peer (also sent at once when this host\'s health or draining changes). With more than 9 hosts: to this host\'s 8 watchers, and to every peer every tenth (docs/peers.md, "Watchers").', format: 'positive-int', default: 100, env: 'DPR_PEERS_HEARTBEAT_MS' },
    deadAfterMs: { doc: 'A peer silent this long is down: no new connections go to it. Heartbeats are read and liveness is checked once per `peers.heartbeatMs`, so a dead peer is taken out between `deadAfterMs` and `deadAfterMs + 2 x heartbeatMs` after its last heartbeat arrived. With more than 9 hosts this holds for the hosts a host watches, whose watchers then tell everybody at once; a host heard only every tenth heartbeat is otherwise down after 10 x `deadAfterMs`.', format: 'positive-int', default: 300, env: 'DPR_PEERS_DEAD_AFTER_MS' },
  },
  load: {
    threshold: { doc: 'Load policy: a host carrying at most this many active connections per unit of weight (with the new one) serves a new connection itself. Above that it serves it while it stays at or below the cluster mean per weight x 1.1, and otherwise sends it to the lighter, per weight, of two peers (the one the Maglev table names and one at random) if that one, with the new connection, is still lighter than this host without it. Set it to about the connections a host works on at once without queueing; 0: balance at any load.', format: 'nat', default: 8, env: 'DPR_LOAD_THRESHOLD' },
  },
  health: {
    type: { doc: 'How this host checks its own web service, on every service port: `tcp` (a connect), `http` (a GET of `health.http.path`, answered with one of `health.http.statuses`), or `none` (always healthy). A host whose check fails gets no new connections, and forwards the ones that reach it to healthy peers.', format: ['tcp', 'http', 'none'] as const, default: 'tcp', env: 'DPR_HEALTH_TYPE' },
    address: { doc: 'Address the checks connect to (the web server listens on the wildcard address, so loopback reaches it).', format: 'ipv4', default: '127.0.0.1', env: 'DPR_HEALTH_ADDRESS' },
    address6: { doc: 'When the hosts have IPv6 addresses: the address the IPv6 checks connect to, beside `health.address` (each port is checked on both; a failure on either makes the port fail, so a host whose IPv6 service fails is unhealthy). Loopback: a check to the service address itself would go through the entry rules.', format: 'ipv6', default: '::1', env: 'DPR_HEALTH_ADDRESS6' },
    intervalMs: { doc: 'Time from the end of one check of a port to the start of the next, while the port is healthy (HAProxy\'s `inter`).', format: 'positive-int', default: 2000, env: 'DPR_HEALTH_INTERVAL_MS' },
    fastIntervalMs: { doc: 'The same while a port is unhealthy or its last check failed (HAProxy\'s `fastinter`): a server that comes back is taken back within `rise` x this.', format: 'positive-int', default: 250, env: 'DPR_HEALTH_FAST_INTERVAL_MS' },
    timeoutMs: { doc: 'A check not answered within this fails.', format: 'positive-int', default: 1000, env: 'DPR_HEALTH_TIMEOUT_MS' },
    fall: { doc: 'Consecutive failed checks of a port that make this host unhealthy.', format: 'positive-int', default: 3, env: 'DPR_HEALTH_FALL' },
    rise: { doc: 'Consecutive good checks of a port that make an unhealthy host healthy again.', format: 'positive-int', default: 2, env: 'DPR_HEALTH_RISE' },
    listenerCheckMs: { doc: 'Every this often, one look at the kernel\'s listening sockets (sock_diag, about 50 µs): a service port with no listener (the server died, or restarts) is unhealthy at once, without waiting for `fall` failed checks. 0: off.', format: 'nat', default: 250, env: 'DPR_HEALTH_LISTENER_CHECK_MS' },
    http: {
      path: { doc: 'HTTP checks: the path asked for.', format: String, default: '/', env: 'DPR_HEALTH_HTTP_PATH' },
      statuses: { doc: 'HTTP checks: the status codes that mean healthy, as a list of codes and ranges (`200-399`, `200,204`).', format: 'status-list', default: '200-399', env: 'DPR_HEALTH_HTTP_STATUSES' },
      host: { doc: 'HTTP checks: the Host header; empty: this host\'s service address.', format: String, default: '', env: 'DPR_HEALTH_HTTP_HOST' },
    },
  },
  flows: {
    max: { doc: 'Flow table size (entries). 24-byte slots at a load of at most 3/4: 32-64 bytes per flow (48 at the default).', format: 'positive-int', default: 1048576, env: 'DPR_FLOWS_MAX' },
    maxEmbryonic: { doc: 'Of those, at most this many embryonic flows (a SYN, perhaps bare ACKs, nothing more yet), so a flood of spoofed SYNs or SYN + ACK pairs cannot take the room of established ones.', format: 'positive-int', default: 262144, env: 'DPR_FLOWS_MAX_EMBRYONIC' },
    synTimeoutMs: { doc: 'A flow with only a SYN seen is forgotten after this.', format: 'positive-int', default: 10000, env: 'DPR_FLOWS_SYN_TIMEOUT_MS' },
    probationTimeoutMs: { doc: 'A flow whose client sent only bare ACKs after its SYN (no data, no FIN, no second ACK number) stays embryonic, counted in `flows.maxEmbryonic`, and is forgotten after this. Longer than browsers keep an unused pre-connection (Chromium: 10 s) and as long as servers wait for a first request (nginx `client_header_timeout`: 60 s).', format: 'positive-int', default: 60000, env: 'DPR_FLOWS_PROBATION_TIMEOUT_MS' },
    establishedTimeoutMs: { doc: 'An idle established flow is forgotten after this (as IPVS: 900 s).', format: 'positive-int', default: 900000, env: 'DPR_FLOWS_ESTABLISHED_TIMEOUT_MS' },
    stateFile: { doc: 'Where the flow table is saved (at exit and every `flows.snapshotMs`) and read back at start, so a restart keeps established connections, forwarded ones included. Empty: not saved.', format: String, default: '/var/lib/dpr/flows.bin', env: 'DPR_FLOWS_STATE_FILE' },
    snapshotMs: { doc: 'Interval of flow-table snapshots while running (for a crash); 0: only at exit.', format: 'nat', default: 5000, env: 'DPR_FLOWS_SNAPSHOT_MS' },
    closingTimeoutMs: { doc: 'A flow whose client sent FIN is forgotten after this (as IPVS fin_wait: 120 s).', format: 'positive-int', default: 120000, env: 'DPR_FLOWS_CLOSING_TIMEOUT_MS' },
    resetTimeoutMs: { doc: "A flow that got a RST near the client's sequence numbers is kept this long (the serving host judges the RST; the client's next packet revives the flow), then forgotten (as IPVS close: 10 s).", format: 'positive-int', default: 10000, env: 'DPR_FLOWS_RESET_TIMEOUT_MS' },
  },
  drain: {
    timeoutMs: { doc: 'On SIGTERM (and `dpr drain --wait` by default), wait at most this long for the forwarded connections, both ways, to finish. Direct local connections are not waited for: they live in the kernel and outlast the daemon.', format: 'nat', default: 30000, env: 'DPR_DRAIN_TIMEOUT_MS' },
  },
  metrics: {
    port: { doc: 'HTTP port of the Prometheus `/metrics` endpoint; 0 turns it off.', format: 'port', default: 9465, env: 'DPR_METRICS_PORT' },
    address: { doc: 'Address the metrics endpoint listens on.', format: 'ipv4', default: '127.0.0.1', env: 'DPR_METRICS_ADDRESS' },
  },
  log: {
    level: { doc: 'winston log level.', format: ['error', 'warn', 'info', 'debug'] as const, default: 'info', env: 'DPR_LOG_LEVEL' },
  },
};

/**
 * The checked configuration's type, derived from the schema so the two cannot
 * drift: a key's type is the union of its allowed values where the format
 * lists them, else the type of its default.
 */
type ConfigOf<S> = {
  -readonly [K in keyof S]: S[K] extends { format: readonly (infer F)[]; default: unknown }
    ? F
    : S[K] extends { default: infer D } ? Widen<D> : ConfigOf<S[K]>;
};
type Widen<T> = T extends string ? string : T extends number ? number : T extends boolean ? boolean : T extends readonly (infer E)[] ? Widen<E>[] : T;

export type SchemaConfig = ConfigOf<typeof schema>;
