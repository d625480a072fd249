// Loading and checking the configuration. convict checks each key's format;
// the cross-key checks below catch what no single key can. Either way the
// error names the key and the reason, before anything on the host changes.
import fs from 'node:fs';
import convict from 'convict';
import { schema, VXLAN_OVERHEAD, type HostEntry, type SchemaConfig } from './config-schema';
import { cidrContains, formatIpv4, parseCidr, parseIpv4 } from './ipv4';
import { canonicalIpv6, cidr6Contains, formatIpv6, IPV6_MIN_MTU, parseCidr6, parseIpv6 } from './ipv6';
import { loadKey } from './keys';
import { MAX_WEIGHT } from './maglev';

export type { HostEntry };

export class ConfigError extends Error {
  readonly key: string;
  readonly reason: string;
  constructor(key: string, reason: string) {
    super(`config: ${key}: ${reason}`);
    this.name = 'ConfigError';
    this.key = key;
    this.reason = reason;
  }
}

/** The checked configuration (its type follows lib/config-schema.ts). */
export type DprConfig = SchemaConfig;

export interface LoadOptions {
  /** Path of the JSON file; falls back to DPR_CONFIG. */
  file?: string;
  /** Environment for DPR_* overrides (default: process.env). */
  env?: NodeJS.ProcessEnv;
  /** The host's ephemeral port range; read from /proc when absent. */
  ephemeralRange?: [number, number];
  /**
   * Read and check the shared key (default true). `dpr status` and `dpr
   * drain` only need the metrics endpoint: they work without the key file,
   * which is readable by root only.
   */
  checkKey?: boolean;
}

/** A host's weight when its entry has none. */
export const DEFAULT_WEIGHT = 1;

/** iptables' multiport match takes at most 15 ports (lib/rules.ts puts them in one rule). */
export const MAX_SERVICE_PORTS = 15;

export function loadConfig(options: LoadOptions = {}): Readonly<DprConfig> {
  const env = options.env ?? process.env;
  const file = options.file ?? env.DPR_CONFIG;
  if (!file && !Object.keys(env).some((k) => ENV_NAMES.has(k))) {
    throw new ConfigError('--config', 'no configuration: give --config FILE or set DPR_CONFIG (or the DPR_* variables of the required keys: DPR_SELF, DPR_HOSTS, DPR_CLUSTER_CIDR)');
  }
  // convict ranks DPR_* variables above the file, whatever the load order.
  const conf = withConfigErrors(() => convict(schema, { env, args: [] }));
  if (file) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError('--config', `cannot read ${file}: ${(err as Error).message}`);
    }
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (err) {
      throw new ConfigError('--config', `${file} is not valid JSON: ${(err as Error).message}`);
    }
    try {
      conf.load(data as object);
    } catch (err) {
      throw fromConvict(err as Error);
    }
  }
  try {
    conf.validate({ allowed: 'strict' });
  } catch (err) {
    throw fromConvict(err as Error);
  }
  const config = conf.getProperties() as unknown as DprConfig;
  if (config.hosts !== null) config.hosts = config.hosts.map(withDefaults);
  for (const k of ['service6', 'cluster6'] as const) if (config.membership[k]) config.membership[k] = canonicalIpv6(config.membership[k]);
  checkCrossKeys(config, options.ephemeralRange ?? readEphemeralRange());
  if (options.checkKey ?? true) {
    checkKey(config);
    if (config.membership.source === 'etcd') readEtcdSecrets(config);
  }
  return deepFreeze(config);
}

/** Every DPR_* variable the schema reads. */
const ENV_NAMES = new Set<string>();
(function collect(node: object): void {
  for (const child of Object.values(node) as Array<Record<string, unknown>>) {
    if ('doc' in child && typeof child.env === 'string') ENV_NAMES.add(child.env);
    else if (!('doc' in child)) collect(child);
  }
})(schema);

/**
 * The key is read as the daemon will read it, so a short key or an unreadable
 * file stops `dpr check` and `dpr start` (exit 2) instead of the daemon's
 * start (exit 1, restarted by systemd for ever). loadKey's messages never
 * hold key material; only their "peers.key: " prefix is replaced by the key.
 */
function checkKey(c: DprConfig): void {
  const check = (name: 'peers.key' | 'peers.rotationKey', key: string, keyFile: string): void => {
    if (!key && !keyFile) return;
    try {
      loadKey({ key: key || undefined, keyFile: keyFile || undefined }, name);
    } catch (err) {
      const setting = key ? name : `${name}File`;
      const reason = (err as Error).message.replace(/^peers\.\w+File \(([^)]*)\): /, '$1: ').replace(/^peers\.\w+: /, '');
      throw new ConfigError(setting, reason);
    }
  };
  check('peers.key', c.peers.key, c.peers.keyFile);
  check('peers.rotationKey', c.peers.rotationKey, c.peers.rotationKeyFile);
}

export interface EtcdSecrets {
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  auth?: { username: string; password: string };
}

/**
 * The TLS files and the password of etcd membership, read as the daemon reads
 * them: a file that cannot be read stops `dpr check` and `dpr start` with its
 * key named (exit 2). Messages never hold what the files hold.
 */
export function readEtcdSecrets(c: Pick<DprConfig, 'membership'>): EtcdSecrets {
  const e = c.membership.etcd;
  const read = (key: string, file: string): Buffer | undefined => {
    if (!file) return undefined;
    try {
      return fs.readFileSync(file);
    } catch (err) {
      throw new ConfigError(key, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  const out: EtcdSecrets = {};
  const ca = read('membership.etcd.tls.ca', e.tls.ca);
  const cert = read('membership.etcd.tls.cert', e.tls.cert);
  const key = read('membership.etcd.tls.key', e.tls.key);
  if (ca || cert) out.tls = { ca, cert, key };
  if (e.username) {
    const password = e.passwordFile ? read('membership.etcd.passwordFile', e.passwordFile)!.toString('utf8').replace(/\r?\n$/, '') : e.password;
    if (!password) throw new ConfigError('membership.etcd.passwordFile', `${e.passwordFile} is empty`);
    out.auth = { username: e.username, password };
  }
  return out;
}

function withConfigErrors<T>(f: () => T): T {
  try {
    return f();
  } catch (err) {
    throw fromConvict(err as Error);
  }
}

/** Keys earlier versions had, and why they are gone (or not there yet): a file that sets one is told so. */
const REMOVED_KEYS: Record<string, string> = {
  'load.decisionTimeoutMs': 'removed: the load policy decides in the data path now, nothing waits for a decision; delete the key',
};

/** A host entry as the rest of dpr reads it: its weight filled in, IPv6 addresses in their canonical form (RFC 5952). */
function withDefaults(h: HostEntry): HostEntry {
  const out: HostEntry = { ...h, weight: h.weight ?? DEFAULT_WEIGHT };
  if (h.service6 !== undefined) out.service6 = canonicalIpv6(h.service6);
  if (h.cluster6 !== undefined) out.cluster6 = canonicalIpv6(h.cluster6);
  return out;
}

/** convict reports 'key: reason' lines; keep the first one's key. */
function fromConvict(err: Error): ConfigError {
  const first = err.message.split('\n')[0]!.trim();
  const unknownKey = /configuration param '([^']+)' not declared/.exec(first);
  if (unknownKey) return new ConfigError(unknownKey[1]!, REMOVED_KEYS[unknownKey[1]!] ?? 'unknown key (not in the schema)');
  const m = /^([\w.]+): (.*)$/.exec(first);
  return m ? new ConfigError(m[1]!, m[2]!) : new ConfigError('config', first);
}

function readEphemeralRange(): [number, number] {
  try {
    const [lo, hi] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (Number.isInteger(lo) && Number.isInteger(hi)) return [lo!, hi!];
  } catch {
    // not Linux: fall through to the kernel's default
  }
  return [32768, 60999];
}

/**
 * The highest id a host of the cluster can have: the largest in `hosts`, or
 * with etcd membership the last claimable one, so that the peer ports and
 * restore addresses are there before a host joins.
 */
export function maxHostId(c: Pick<DprConfig, 'hosts' | 'membership'>): number {
  return c.membership.source === 'etcd' ? c.membership.etcd.maxHosts - 1 : Math.max(...c.hosts.map((h) => h.id));
}

/** The peer ports the cluster uses: [first, last]. */
export function peerPortRange(config: Pick<DprConfig, 'hosts' | 'servicePorts' | 'peerPortBase' | 'membership'>): [number, number] {
  return [config.peerPortBase, config.peerPortBase + (maxHostId(config) + 1) * config.servicePorts.length - 1];
}

function overlaps(a: [number, number], b: [number, number]): boolean {
  return a[0] <= b[1] && b[0] <= a[1];
}

const REQUIRED = 'is required (not in the file, nor in its DPR_* variable)';

/** Static membership: every host in `hosts`, this one among them. */
function checkStaticHosts(c: DprConfig): void {
  if (c.hosts === null) throw new ConfigError('hosts', REQUIRED);
  if (c.self === null) throw new ConfigError('self', REQUIRED);
  for (const k of ['service', 'cluster', 'service6', 'cluster6'] as const) {
    if (c.membership[k]) throw new ConfigError(`membership.${k}`, `is for membership.source etcd; with static membership this host's addresses are its entry in hosts`);
  }
}

/** A host list, from the file or from etcd: ids once each, this host among them, weights this version takes. */
function checkHostIds(c: DprConfig): void {
  const ids = new Set<number>();
  for (const [i, h] of c.hosts.entries()) {
    if (ids.has(h.id)) throw new ConfigError(`hosts[${i}].id`, `id ${h.id} is used twice`);
    ids.add(h.id);
  }
  if (!ids.has(c.self)) throw new ConfigError('self', `${c.self} is not the id of any host in hosts`);
  checkWeights(c.hosts);
}

/** etcd membership: the file describes this host only; the list comes from etcd. */
function checkEtcdHost(c: DprConfig): void {
  const e = c.membership.etcd;
  if (c.hosts !== null) throw new ConfigError('hosts', 'must not be set with membership.source etcd: the host list comes from etcd (this host is membership.service and membership.cluster)');
  // IPv6-only: neither IPv4 address, both IPv6 ones (checked below).
  const ipv6Only = !c.membership.service && !c.membership.cluster && Boolean(c.membership.service6);
  for (const k of ipv6Only ? [] : ['service', 'cluster'] as const) {
    if (!c.membership[k]) throw new ConfigError(`membership.${k}`, `is required with membership.source etcd: this host's ${k} address (an IPv6-only host sets membership.service6 and .cluster6 instead)`);
  }
  if (Boolean(c.membership.service6) !== Boolean(c.membership.cluster6)) {
    const missing = c.membership.service6 ? 'cluster6' : 'service6';
    throw new ConfigError(`membership.${missing}`, `is required with membership.${missing === 'cluster6' ? 'service6' : 'cluster6'}: ${NEEDS_PEERS6}`);
  }
  if (e.endpoints.length === 0) throw new ConfigError('membership.etcd.endpoints', 'is required with membership.source etcd: at least one etcd URL');
  if (e.maxHosts > 256) throw new ConfigError('membership.etcd.maxHosts', 'must be at most 256 (host ids are 0..255)');
  if (c.self !== null && c.self >= e.maxHosts) throw new ConfigError('self', `${c.self} is not below membership.etcd.maxHosts (${e.maxHosts})`);
  if (e.retryMaxMs < e.retryMinMs) throw new ConfigError('membership.etcd.retryMaxMs', `must not be below membership.etcd.retryMinMs (${e.retryMinMs})`);
  // etcd refuses shorter leases (its minimum TTL follows the election timeout, 1 s by default).
  if (e.leaseTtlS < 2) throw new ConfigError('membership.etcd.leaseTtlS', 'must be at least 2 s');
  if (e.leaseTtlS > 3600) throw new ConfigError('membership.etcd.leaseTtlS', 'must be at most 3600 s');
  if (Boolean(e.tls.cert) !== Boolean(e.tls.key)) throw new ConfigError(e.tls.cert ? 'membership.etcd.tls.key' : 'membership.etcd.tls.cert', 'a client certificate needs both tls.cert and tls.key');
  if (e.password && e.passwordFile) throw new ConfigError('membership.etcd.passwordFile', 'set password or passwordFile, not both');
  if ((e.password || e.passwordFile) && !e.username) throw new ConfigError('membership.etcd.username', 'is required with a password');
  if (e.username && !e.password && !e.passwordFile) throw new ConfigError('membership.etcd.password', `user '${e.username}' needs password or passwordFile`);
  if (c.membership.weight > MAX_WEIGHT) throw new ConfigError('membership.weight', `must be an integer 0..${MAX_WEIGHT} (0: no new connections)`);
}

/**
 * True when the hosts have IPv4 addresses (hostsToCheck: then every host has
 * both); an etcd host's file without its list: when it has them itself.
 * False: an IPv6-only cluster.
 */
export function hasIpv4(c: Pick<DprConfig, 'hosts'> & Partial<Pick<DprConfig, 'membership'>>): boolean {
  if (c.hosts === null) return Boolean(c.membership?.service);
  return c.hosts.some((h) => h.service !== undefined || h.cluster !== undefined);
}

/** The IPv4 addresses the checks apply to: every host's, or in an etcd host's file this one's; none in an IPv6-only cluster. */
function hostsToCheck(c: DprConfig): Array<{ label: string; service: string; cluster: string }> {
  if (!hasIpv4(c)) return [];
  if (c.hosts === null) return [{ label: 'membership', service: c.membership.service, cluster: c.membership.cluster }];
  return c.hosts.map((h, i) => {
    for (const k of ['service', 'cluster'] as const) {
      if (h[k] === undefined) throw new ConfigError(`hosts[${i}].${k}`, `is missing while other hosts have IPv4 addresses; ${NEEDS_PEERS4}`);
    }
    return { label: `hosts[${i}]`, service: h.service!, cluster: h.cluster! };
  });
}

const NEEDS_PEERS4 = 'IPv4 is cluster-wide as IPv6 is: every host has both service and cluster or none does (an IPv6-only cluster)';

/** Cluster addresses in clusterCidr, no address twice, restore addresses apart from all of them. */
function checkAddresses(c: DprConfig): void {
  const checked = hostsToCheck(c);
  if (checked.length === 0) {
    if (c.clusterCidr) throw new ConfigError('clusterCidr', `is for IPv4 cluster addresses, and the hosts are IPv6-only; leave it empty`);
    return;
  }
  if (!c.clusterCidr) throw new ConfigError('clusterCidr', REQUIRED);
  const cidr = parseCidr(c.clusterCidr);
  const seen = new Map<string, string>();
  for (const h of checked) {
    if (!cidrContains(cidr, parseIpv4(h.cluster))) {
      throw new ConfigError(`${h.label}.cluster`, `${h.cluster} is outside clusterCidr ${c.clusterCidr}`);
    }
    for (const k of ['service', 'cluster'] as const) {
      const prev = seen.get(`${k}:${h[k]}`);
      if (prev) throw new ConfigError(`${h.label}.${k}`, `${h[k]} is also ${prev}`);
      seen.set(`${k}:${h[k]}`, `${h.label}.${k}`);
    }
  }
  const restore = parseCidr(c.restoreCidr);
  const maxId = maxHostId(c);
  if (2 ** (32 - restore.prefix) < maxId + 2) {
    throw new ConfigError('restoreCidr', `${c.restoreCidr} is too small for host ids up to ${maxId}`);
  }
  for (const h of checked) {
    for (const k of ['service', 'cluster'] as const) {
      if (cidrContains(restore, parseIpv4(h[k]))) throw new ConfigError('restoreCidr', `contains ${h.label}.${k} ${h[k]}`);
    }
  }
}

/**
 * An etcd host's configuration with the list the source gave it
 * (lib/membership/resolve.ts): the list is checked as a static file's is, so
 * the daemon never runs a list the file could not have held.
 */
export function checkMembers(c: DprConfig): void {
  checkHostIds(c);
  checkAddresses(c);
  checkIpv6(c);
  checkMode(c);
}

export function checkCrossKeys(c: DprConfig, ephemeral: [number, number]): void {
  if (c.servicePorts.length > MAX_SERVICE_PORTS) {
    throw new ConfigError('servicePorts', `${c.servicePorts.length} ports; at most ${MAX_SERVICE_PORTS} (the iptables multiport match takes no more)`);
  }
  if (c.membership.source === 'etcd') {
    checkEtcdHost(c);
  } else {
    checkStaticHosts(c);
    checkHostIds(c);
  }
  checkAddresses(c);
  checkIpv6(c);
  checkPeersFamily(c);
  checkMode(c);
  const range = peerPortRange(c);
  const rangeText = `peer ports ${range[0]}-${range[1]}`;
  if (range[1] > 65535) throw new ConfigError('peerPortBase', `${rangeText} run past 65535`);
  for (const p of c.servicePorts) {
    if (p >= range[0] && p <= range[1]) throw new ConfigError('peerPortBase', `${rangeText} include service port ${p}`);
  }
  if (overlaps(range, ephemeral)) {
    throw new ConfigError('peerPortBase', `${rangeText} overlap the ephemeral range ${ephemeral[0]}-${ephemeral[1]} (net.ipv4.ip_local_port_range)`);
  }
  if (c.metrics.port !== 0 && c.metrics.port >= range[0] && c.metrics.port <= range[1]) {
    throw new ConfigError('metrics.port', `${c.metrics.port} lies in the ${rangeText}`);
  }
  if (c.metrics.port !== 0 && c.servicePorts.includes(c.metrics.port)) {
    throw new ConfigError('metrics.port', `${c.metrics.port} is a service port`);
  }
  if (c.queues.entry === c.queues.serve) {
    throw new ConfigError('queues.serve', `must differ from queues.entry (${c.queues.entry})`);
  }
  if (c.queues.flows === c.queues.entry || c.queues.flows === c.queues.serve) {
    throw new ConfigError('queues.flows', `must differ from queues.entry (${c.queues.entry}) and queues.serve (${c.queues.serve})`);
  }
  // Doubled by the kernel, less 32: room for one verdict carrying a whole packet (64 KiB).
  if (c.queues.sndBufBytes < 65536) throw new ConfigError('queues.sndBufBytes', 'must be at least 65536');
  if ((c.marks.forward & c.marks.serve) !== 0) {
    throw new ConfigError('marks.serve', `shares bits with marks.forward (0x${c.marks.forward.toString(16)})`);
  }
  if (c.queues.batchSize > 1024) throw new ConfigError('queues.batchSize', 'must be at most 1024');
  if (c.flows.maxEmbryonic > c.flows.max) throw new ConfigError('flows.maxEmbryonic', `must not exceed flows.max (${c.flows.max})`);
  if (c.flows.max > 0xffffffff / 2) throw new ConfigError('flows.max', 'too large');
  const peersExpected = c.membership.source === 'etcd' || c.hosts.length > 1;
  if (peersExpected && !c.peers.key && !c.peers.keyFile) {
    throw new ConfigError('peers.key', `a shared key (peers.key or peers.keyFile) is required when there are peers${c.membership.source === 'etcd' ? ' (with etcd membership there may be any time)' : ''}`);
  }
  if (c.peers.key && c.peers.keyFile) throw new ConfigError('peers.keyFile', 'set peers.key or peers.keyFile, not both');
  if (c.peers.routersBetween > 32) throw new ConfigError('peers.routersBetween', 'must be at most 32');
  if (c.peers.deadAfterMs <= c.peers.heartbeatMs) {
    throw new ConfigError('peers.deadAfterMs', `must be longer than peers.heartbeatMs (${c.peers.heartbeatMs})`);
  }
}

/**
 * True when the hosts have IPv6 addresses (checkIpv6: then every host has
 * both); an etcd host's file without its list: when it has them itself.
 */
export function hasIpv6(c: Pick<DprConfig, 'hosts'> & Partial<Pick<DprConfig, 'membership'>>): boolean {
  if (c.hosts === null) return Boolean(c.membership?.service6);
  return c.hosts.some((h) => h.service6 !== undefined || h.cluster6 !== undefined);
}

/** The IPv6 addresses the checks apply to: every host's, or in an etcd host's file this one's. */
function hosts6ToCheck(c: DprConfig): Array<{ label: string; service6?: string; cluster6?: string }> {
  if (c.hosts === null) return [{ label: 'membership', service6: c.membership.service6, cluster6: c.membership.cluster6 }];
  return c.hosts.map((h, i) => ({ label: `hosts[${i}]`, service6: h.service6, cluster6: h.cluster6 }));
}

const NEEDS_PEERS6 = 'an IPv6 service address needs IPv6 peers to forward to: IPv6 is cluster-wide, every host has both service6 and cluster6 or none does';

/**
 * Dual-stack (issue 15): every host has service6 and cluster6 or none does,
 * each cluster6 in clusterCidr6, no address twice, restoreCidr6 apart from
 * them all and large enough. Every mode: `tunnel` carries IPv6 over its IPv4
 * VXLAN devices (checkMode checks their MTU).
 */
function checkIpv6(c: DprConfig): void {
  if (!hasIpv6(c)) return;
  const hosts = hosts6ToCheck(c);
  const first = hosts.find((h) => h.service6 !== undefined || h.cluster6 !== undefined)!;
  for (const h of hosts) {
    for (const k of ['service6', 'cluster6'] as const) {
      if (h[k] === undefined) throw new ConfigError(`${h.label}.${k}`, `is missing while ${first.label} has IPv6 addresses; ${NEEDS_PEERS6}`);
    }
  }
  if (!c.clusterCidr6) throw new ConfigError('clusterCidr6', 'is required when the hosts have IPv6 addresses: every cluster6 must lie in it');
  const cidr = parseCidr6(c.clusterCidr6);
  const restore = parseCidr6(c.restoreCidr6);
  if (2n ** BigInt(128 - restore.prefix) < BigInt(maxHostId(c) + 2)) {
    throw new ConfigError('restoreCidr6', `${c.restoreCidr6} is too small for host ids up to ${maxHostId(c)}`);
  }
  const seen = new Map<string, string>();
  for (const h of hosts) {
    if (!cidr6Contains(cidr, parseIpv6(h.cluster6!))) throw new ConfigError(`${h.label}.cluster6`, `${h.cluster6} is outside clusterCidr6 ${c.clusterCidr6}`);
    for (const k of ['service6', 'cluster6'] as const) {
      const prev = seen.get(`${k}:${h[k]}`);
      if (prev) throw new ConfigError(`${h.label}.${k}`, `${h[k]} is also ${prev}`);
      seen.set(`${k}:${h[k]}`, `${h.label}.${k}`);
      if (cidr6Contains(restore, parseIpv6(h[k]!))) throw new ConfigError('restoreCidr6', `contains ${h.label}.${k} ${h[k]}`);
    }
  }
}

/** Heartbeats over IPv6 need every host's cluster6 (checkIpv6 has made it all or none); over IPv4 its cluster address. */
function checkPeersFamily(c: DprConfig): void {
  if (c.peers.family !== 'ipv6') {
    if (!hasIpv4(c)) throw new ConfigError('peers.family', `must be 'ipv6' when the hosts are IPv6-only: heartbeats go between cluster addresses, and the hosts have IPv6 ones only`);
    return;
  }
  const none = hosts6ToCheck(c).find((h) => !h.cluster6);
  if (none) throw new ConfigError('peers.family', `'ipv6' sends heartbeats to the hosts' cluster6 addresses; ${none.label} has none`);
}

/** Where host `h` sends and takes heartbeats (peers.family): its cluster or its cluster6 address. */
export function heartbeatAddress(c: Pick<DprConfig, 'peers'>, h: HostEntry): string {
  return c.peers.family === 'ipv6' ? h.cluster6! : h.cluster!;
}

/** What the kernel modes need of the configuration (lib/rules.ts, docs/design-notes.md). */
function checkMode(c: DprConfig): void {
  if (c.mode === 'rewrite') return;
  for (const h of hostsToCheck(c)) {
    // Peers hold this address on lo; had it been the cluster address too, they could not reach this host.
    if (h.service === h.cluster) throw new ConfigError(`${h.label}.cluster`, `${h.cluster} is also the service address; mode '${c.mode}' needs a cluster address of its own on every host (peers hold the service addresses on lo)`);
  }
  for (const h of hosts6ToCheck(c)) {
    if (h.service6 && h.service6 === h.cluster6) throw new ConfigError(`${h.label}.cluster6`, `${h.cluster6} is also the service6 address; mode '${c.mode}' needs a cluster6 address of its own on every host (peers hold the service6 addresses on lo)`);
  }
  const m = c.marks.peerMask;
  const shift = Math.log2(m & -m);
  if (((m >>> shift) & ((m >>> shift) + 1)) !== 0) throw new ConfigError('marks.peerMask', 'must be one run of contiguous bits');
  if ((m & (c.marks.forward | c.marks.serve)) !== 0) throw new ConfigError('marks.peerMask', 'shares bits with marks.forward or marks.serve');
  const maxId = maxHostId(c);
  if ((m >>> shift) < maxId) throw new ConfigError('marks.peerMask', `has room for host ids up to ${m >>> shift}; hosts go up to ${maxId}`);
  if (c.routing.tableBase + 255 > 0xfffffeff) throw new ConfigError('routing.tableBase', 'too large');
  if (c.routing.rulePref + 1 >= 32766) throw new ConfigError('routing.rulePref', 'must come before the main table (32766)');
  if (c.mode === 'tunnel') {
    // The VXLAN devices run between the IPv4 cluster addresses (the kernel here has no IPv6 underlay for dpr to pick: docs/design-notes.md).
    if (!hasIpv4(c)) throw new ConfigError('mode', `'tunnel' carries packets in VXLAN between the IPv4 cluster addresses, and the hosts are IPv6-only: use 'direct' (one L2 segment) or 'rewrite'`);
    if (c.tunnel.vniBase + 256 * 256 > 0xffffff) throw new ConfigError('tunnel.vniBase', 'VNIs are 24 bits: at most 16711679');
    if (c.tunnel.mtu < 576 || c.tunnel.mtu > 65535) throw new ConfigError('tunnel.mtu', 'must be within 576..65535');
    // Below that the kernel keeps IPv6 off the VXLAN devices: IPv6 clients of peers would get nothing.
    if (hasIpv6(c) && c.tunnel.mtu - VXLAN_OVERHEAD < IPV6_MIN_MTU) {
      throw new ConfigError('tunnel.mtu', `must be at least ${IPV6_MIN_MTU + VXLAN_OVERHEAD} with IPv6 addresses: the tunnel devices (mtu - ${VXLAN_OVERHEAD}) carry IPv6 only from ${IPV6_MIN_MTU} up`);
    }
    if (c.servicePorts.includes(c.tunnel.port) || c.tunnel.port === c.peers.port) throw new ConfigError('tunnel.port', `${c.tunnel.port} is a service port or peers.port`);
  }
}

function checkWeights(hosts: readonly HostEntry[]): void {
  if (hosts.every((h) => h.weight === 0)) {
    throw new ConfigError('hosts', 'every host has weight 0: no host would take new connections');
  }
}

export function deepFreeze<T>(o: T): Readonly<T> {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

/** This host's entry in `hosts`. */
export function selfHost(c: DprConfig): HostEntry {
  return c.hosts.find((h) => h.id === c.self)!;
}

/**
 * The local addresses of the sockets of connections peers forwarded here:
 * the restore addresses (rewrite), or the peers' own service addresses,
 * which a serving host holds on lo (the kernel modes; those of the listed
 * hosts among `peers`).
 */
export function forwardedInAddresses(c: Pick<DprConfig, 'restoreCidr' | 'restoreCidr6' | 'hosts' | 'mode'>, peers: readonly number[]): Set<string> {
  // IPv6 ones as lib/proc-tcp.ts prints them: canonical (RFC 5952).
  const [four, six] = [hasIpv4(c), hasIpv6(c)];
  if (c.mode === 'rewrite') return new Set(peers.flatMap((id) => [...(four ? [restoreAddress(c, id)] : []), ...(six ? [restoreAddress6(c, id)] : [])]));
  return new Set((c.hosts ?? []).filter((h) => peers.includes(h.id)).flatMap((h) => [h.service, h.service6].filter((a): a is string => a !== undefined)));
}

/**
 * This host's addresses, whatever the membership: its entry in `hosts`, or in
 * an etcd host's file (no list yet) `membership.service` and `.cluster`.
 */
export function thisHost(c: DprConfig): { service?: string; cluster?: string; service6?: string; cluster6?: string } {
  if (c.hosts !== null) return selfHost(c);
  const m = c.membership;
  return { ...(m.service ? { service: m.service, cluster: m.cluster } : {}), ...(m.service6 ? { service6: m.service6, cluster6: m.cluster6 } : {}) };
}

/** The local IPv6 address a serving host gives IPv6 connections forwarded by host `origin` (canonical form). */
export function restoreAddress6(c: Pick<DprConfig, 'restoreCidr6'>, origin: number): string {
  return formatIpv6(parseCidr6(c.restoreCidr6).network + BigInt(origin + 1));
}

/** The local address a serving host gives connections forwarded by host `origin`. */
export function restoreAddress(c: Pick<DprConfig, 'restoreCidr'>, origin: number): string {
  return formatIpv4(parseCidr(c.restoreCidr).network + origin + 1);
}
