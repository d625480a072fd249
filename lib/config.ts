// Loading and checking the configuration. convict checks each key's format;
// the cross-key checks below catch what no single key can. Either way the
// error names the key and the reason, before anything on the host changes.
import fs from 'node:fs';
import convict from 'convict';
import { schema, type HostEntry, type SchemaConfig } from './config-schema';
import { cidrContains, formatIpv4, parseCidr, parseIpv4 } from './ipv4';
import { loadKey } from './keys';

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
  config.hosts = config.hosts.map((h) => ({ ...h, weight: h.weight ?? DEFAULT_WEIGHT }));
  checkCrossKeys(config, options.ephemeralRange ?? readEphemeralRange());
  if (options.checkKey ?? true) checkKey(config);
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

function withConfigErrors<T>(f: () => T): T {
  try {
    return f();
  } catch (err) {
    throw fromConvict(err as Error);
  }
}

/** Keys earlier versions had, and why they are gone: a file that still sets one is told so. */
const REMOVED_KEYS: Record<string, string> = {
  'load.decisionTimeoutMs': 'removed: the load policy decides in the data path now, nothing waits for a decision; delete the key',
};

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

/** The peer ports the cluster uses: [first, last]. */
export function peerPortRange(config: Pick<DprConfig, 'hosts' | 'servicePorts' | 'peerPortBase'>): [number, number] {
  const maxId = Math.max(...config.hosts.map((h) => h.id));
  return [config.peerPortBase, config.peerPortBase + (maxId + 1) * config.servicePorts.length - 1];
}

function overlaps(a: [number, number], b: [number, number]): boolean {
  return a[0] <= b[1] && b[0] <= a[1];
}

export function checkCrossKeys(c: DprConfig, ephemeral: [number, number]): void {
  if (c.servicePorts.length > MAX_SERVICE_PORTS) {
    throw new ConfigError('servicePorts', `${c.servicePorts.length} ports; at most ${MAX_SERVICE_PORTS} (the iptables multiport match takes no more)`);
  }
  checkMode(c);
  const ids = new Set<number>();
  for (const [i, h] of c.hosts.entries()) {
    if (ids.has(h.id)) throw new ConfigError(`hosts[${i}].id`, `id ${h.id} is used twice`);
    ids.add(h.id);
  }
  if (!ids.has(c.self)) throw new ConfigError('self', `${c.self} is not the id of any host in hosts`);
  checkWeights(c.hosts);
  const cidr = parseCidr(c.clusterCidr);
  const seen = new Map<string, string>();
  for (const [i, h] of c.hosts.entries()) {
    if (!cidrContains(cidr, parseIpv4(h.cluster))) {
      throw new ConfigError(`hosts[${i}].cluster`, `${h.cluster} is outside clusterCidr ${c.clusterCidr}`);
    }
    for (const k of ['service', 'cluster'] as const) {
      const prev = seen.get(`${k}:${h[k]}`);
      if (prev) throw new ConfigError(`hosts[${i}].${k}`, `${h[k]} is also ${prev}`);
      seen.set(`${k}:${h[k]}`, `hosts[${i}].${k}`);
    }
  }
  const restore = parseCidr(c.restoreCidr);
  const maxId = Math.max(...c.hosts.map((h) => h.id));
  if (2 ** (32 - restore.prefix) < maxId + 2) {
    throw new ConfigError('restoreCidr', `${c.restoreCidr} is too small for host ids up to ${maxId}`);
  }
  for (const [i, h] of c.hosts.entries()) {
    for (const k of ['service', 'cluster'] as const) {
      if (cidrContains(restore, parseIpv4(h[k]))) throw new ConfigError('restoreCidr', `contains hosts[${i}].${k} ${h[k]}`);
    }
  }
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
  if (c.hosts.length > 1 && !c.peers.key && !c.peers.keyFile) {
    throw new ConfigError('peers.key', 'a shared key (peers.key or peers.keyFile) is required when there are peers');
  }
  if (c.peers.key && c.peers.keyFile) throw new ConfigError('peers.keyFile', 'set peers.key or peers.keyFile, not both');
  if (c.peers.routersBetween > 32) throw new ConfigError('peers.routersBetween', 'must be at most 32');
  if (c.peers.deadAfterMs <= c.peers.heartbeatMs) {
    throw new ConfigError('peers.deadAfterMs', `must be longer than peers.heartbeatMs (${c.peers.heartbeatMs})`);
  }
}

/** What the kernel modes need of the configuration (lib/rules.ts, docs/design-notes.md). */
function checkMode(c: DprConfig): void {
  if (c.mode === 'rewrite') return;
  for (const [i, h] of c.hosts.entries()) {
    // Peers hold this address on lo; had it been the cluster address too, they could not reach this host.
    if (h.service === h.cluster) throw new ConfigError(`hosts[${i}].cluster`, `${h.cluster} is also the service address; mode '${c.mode}' needs a cluster address of its own on every host (peers hold the service addresses on lo)`);
  }
  const m = c.marks.peerMask;
  const shift = Math.log2(m & -m);
  if (((m >>> shift) & ((m >>> shift) + 1)) !== 0) throw new ConfigError('marks.peerMask', 'must be one run of contiguous bits');
  if ((m & (c.marks.forward | c.marks.serve)) !== 0) throw new ConfigError('marks.peerMask', 'shares bits with marks.forward or marks.serve');
  const maxId = Math.max(...c.hosts.map((h) => h.id));
  if ((m >>> shift) < maxId) throw new ConfigError('marks.peerMask', `has room for host ids up to ${m >>> shift}; hosts go up to ${maxId}`);
  if (c.routing.tableBase + 255 > 0xfffffeff) throw new ConfigError('routing.tableBase', 'too large');
  if (c.routing.rulePref + 1 >= 32766) throw new ConfigError('routing.rulePref', 'must come before the main table (32766)');
  if (c.mode === 'tunnel') {
    if (c.tunnel.vniBase + 256 * 256 > 0xffffff) throw new ConfigError('tunnel.vniBase', 'VNIs are 24 bits: at most 16711679');
    if (c.tunnel.mtu < 576 || c.tunnel.mtu > 65535) throw new ConfigError('tunnel.mtu', 'must be within 576..65535');
    if (c.servicePorts.includes(c.tunnel.port) || c.tunnel.port === c.peers.port) throw new ConfigError('tunnel.port', `${c.tunnel.port} is a service port or peers.port`);
  }
}

function checkWeights(hosts: readonly HostEntry[]): void {
  if (hosts.every((h) => h.weight === 0)) {
    throw new ConfigError('hosts', 'every host has weight 0: no host would take new connections');
  }
}

function deepFreeze<T>(o: T): Readonly<T> {
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
 * which a serving host holds on lo (the kernel modes).
 */
export function forwardedInAddresses(c: Pick<DprConfig, 'restoreCidr' | 'hosts' | 'self' | 'mode'>): Set<string> {
  const others = c.hosts.filter((h) => h.id !== c.self);
  return new Set(others.map((h) => (c.mode === 'rewrite' ? restoreAddress(c, h.id) : h.service)));
}

/** The local address a serving host gives connections forwarded by host `origin`. */
export function restoreAddress(c: Pick<DprConfig, 'restoreCidr'>, origin: number): string {
  return formatIpv4(parseCidr(c.restoreCidr).network + origin + 1);
}
