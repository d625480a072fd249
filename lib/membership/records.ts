// What dpr keeps in etcd, and how a list of members is read back from it.
//
//   <prefix>hosts/<id>  ->  {"service":"203.0.113.10","cluster":"10.0.0.10","weight":1,"name":"web3","since":"2026-..."}
//
// and on a dual-stack host also "service6" and "cluster6" (canonical IPv6).
//
// One key per host, attached to that host's lease: the key is the claim on
// the id (created only if absent, in a transaction) and the record of the
// addresses at once, and it goes when the lease is revoked or expires.
// Anyone with write access to the prefix can put anything there, so every
// record is checked; one that fails is ignored (and counted), never fatal.
import { parseIpv4 } from '../ipv4';
import { canonicalIpv6, parseIpv6, unusableIpv6 } from '../ipv6';
import { DEFAULT_WEIGHT, type HostEntry } from '../config';
import { MAX_WEIGHT } from '../maglev';
import { byId } from './source';

export const hostsPrefix = (prefix: string): string => `${prefix}hosts/`;
export const hostKey = (prefix: string, id: number): string => `${hostsPrefix(prefix)}${id}`;

/** A key-value pair as etcd returns it (the etcd3 client gives 64-bit numbers as decimal strings). */
export interface RawKv {
  key: string;
  value: string;
  lease: string;
  createRevision: string;
}

export interface HostRecord extends HostEntry {
  /** The lease the record is attached to (decimal). */
  lease: string;
  createRevision: bigint;
}

/** A host's addresses; IPv4 ones absent on an IPv6-only host, IPv6 ones on an IPv4-only one. */
export interface HostAddresses { service?: string; cluster?: string; service6?: string; cluster6?: string }

/** What two hosts must not share: each address a host has, as `<key> <address>` (`cluster6 2001:2::5`). */
export function addressesOf(h: HostAddresses): string[] {
  return (['service', 'cluster', 'service6', 'cluster6'] as const).flatMap((k) => (h[k] ? [`${k} ${h[k]}`] : []));
}

/** The value this host writes about itself. */
export function encodeRecord(me: HostAddresses & { weight: number }, name: string, since: Date): string {
  const four = me.service ? { service: me.service, cluster: me.cluster } : {};
  const six = me.service6 ? { service6: me.service6, cluster6: me.cluster6 } : {};
  return JSON.stringify({ ...four, ...six, weight: me.weight, name, since: since.toISOString() });
}

/** A record's IPv6 addresses: both (canonical), neither, or why they are not usable. */
function decodeIpv6(o: Record<string, unknown>): { service6?: string; cluster6?: string } | string {
  if (o.service6 === undefined && o.cluster6 === undefined) return {};
  const out: { service6?: string; cluster6?: string } = {};
  for (const k of ['service6', 'cluster6'] as const) {
    if (o[k] === undefined) return `it has ${k === 'service6' ? 'cluster6' : 'service6'} but no ${k}`;
    if (typeof o[k] !== 'string') return `${k} is not an IPv6 address`;
    let why: string | null;
    try {
      why = unusableIpv6(parseIpv6(o[k] as string));
    } catch {
      return `${k} '${String(o[k])}' is not an IPv6 address`;
    }
    if (why) return `${k} ${String(o[k])} ${why}`;
    out[k] = canonicalIpv6(o[k] as string);
  }
  return out;
}

/** The id a key under `<prefix>hosts/` names, or null. */
export function idOfKey(prefix: string, key: string): number | null {
  if (!key.startsWith(hostsPrefix(prefix))) return null;
  const text = key.slice(hostsPrefix(prefix).length);
  return /^(0|[1-9]\d{0,2})$/.test(text) && Number(text) <= 255 ? Number(text) : null;
}

/** A record, or why it is not one. */
export function decodeRecord(prefix: string, kv: RawKv): HostRecord | string {
  const id = idOfKey(prefix, kv.key);
  if (id === null) return 'the key does not end in a host id 0..255';
  let v: unknown;
  try {
    v = JSON.parse(kv.value);
  } catch {
    return 'the value is not JSON';
  }
  if (typeof v !== 'object' || v === null) return 'the value is not a JSON object';
  const o = v as Record<string, unknown>;
  // An IPv6-only host's record has neither IPv4 address.
  const four = o.service !== undefined || o.cluster !== undefined || o.service6 === undefined;
  for (const k of four ? ['service', 'cluster'] as const : []) {
    if (typeof o[k] !== 'string') return `${k} is not an IPv4 address`;
    try {
      parseIpv4(o[k] as string);
    } catch {
      return `${k} '${String(o[k])}' is not an IPv4 address`;
    }
  }
  const six = decodeIpv6(o);
  if (typeof six === 'string') return six;
  const weight = o.weight ?? DEFAULT_WEIGHT;
  if (!Number.isInteger(weight) || (weight as number) < 0 || (weight as number) > MAX_WEIGHT) return `weight ${JSON.stringify(o.weight)} is not an integer 0..${MAX_WEIGHT}`;
  if (kv.lease === '0') return 'it is not attached to a lease (it would never go away)';
  return { id, ...(four ? { service: o.service as string, cluster: o.cluster as string } : {}), ...six, weight: weight as number, lease: kv.lease, createRevision: BigInt(kv.createRevision) };
}

export interface Members {
  hosts: HostEntry[];
  /** Records left out, with the reason, by key. */
  ignored: Map<string, string>;
}

/**
 * The members the records describe. `check` applies the config's rules (ids
 * the cluster has room for, cluster addresses in clusterCidr, ...) and says
 * why a host cannot be one. Two records with one address: the older claim
 * (lower create revision) stays, the later one is ignored.
 */
export function membersOf(prefix: string, kvs: Iterable<RawKv>, check: (h: HostEntry) => string | null): Members {
  const ignored = new Map<string, string>();
  const records: HostRecord[] = [];
  for (const kv of kvs) {
    const r = decodeRecord(prefix, kv);
    const reason = typeof r === 'string' ? r : check(r);
    if (reason !== null) ignored.set(kv.key, reason);
    else records.push(r as HostRecord);
  }
  records.sort((a, b) => (a.createRevision < b.createRevision ? -1 : a.createRevision > b.createRevision ? 1 : 0));
  const owner = new Map<string, number>();
  const hosts: HostEntry[] = [];
  for (const r of records) {
    const addresses = addressesOf(r);
    const clash = addresses.find((a) => owner.has(a));
    if (clash) {
      ignored.set(hostKey(prefix, r.id), `its ${clash} is registered by host ${owner.get(clash)} already`);
      continue;
    }
    for (const a of addresses) owner.set(a, r.id);
    const four = r.service ? { service: r.service, cluster: r.cluster! } : {};
    const six = r.service6 ? { service6: r.service6, cluster6: r.cluster6! } : {};
    hosts.push({ id: r.id, ...four, ...six, weight: r.weight });
  }
  return { hosts: hosts.sort(byId), ignored };
}
