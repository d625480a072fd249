// Where the host list comes from: one small interface with two sources,
// `static` (the config's `hosts`, today's behaviour and the default) and
// `etcd` (lib/membership/etcd.ts: every host registers itself under a lease
// and watches the others). The daemon takes the first list from start() and
// applies every later 'hosts' event as a reload of the host list does.
//
// A source only says who is a member. Who is alive is still the heartbeats'
// business (lib/peers.ts): a member that died stays in the list until its
// registration expires, and is down for routing as soon as it falls silent.
import type { EventEmitter } from 'node:events';
import type { HostEntry } from '../config-schema';

export interface Membership {
  /** This host's id (from the config, or claimed in etcd). */
  self: number;
  /** Every member, this host included, sorted by id. */
  hosts: HostEntry[];
}

export type MembershipState =
  /** The config's list: nothing to reach, nothing that changes. */
  | 'static'
  /** Not registered yet (start() has not resolved). */
  | 'connecting'
  /** Registered, lease kept alive, watching: the list follows etcd. */
  | 'registered'
  /** etcd cannot be reached (or answered with an error): the last list is kept, retried with backoff. */
  | 'unreachable'
  /** etcd answers, but this host cannot hold its id (held by another, no id free, its address registered by another): retried. */
  | 'waiting';

export interface MembershipStatus {
  source: 'static' | 'etcd';
  state: MembershipState;
  /** Since when (ms since the epoch) the source is in this state. */
  since: number;
  self: number | null;
  hosts: number;
  /** Why the source is unreachable or waiting (null while all is well). */
  lastError: string | null;
  /** Failed attempts since the last success. */
  retries: number;
  /** Host lists handed out since start (the first one included). */
  changes: number;
  /** Attempts that failed (etcd unreachable, errors, waiting), since start. */
  failures: number;
  /** Records under the prefix that were ignored (malformed, out of range, a duplicate address), since start. */
  ignoredRecords: number;
  /** The lease that holds this host's registration, in hex as etcdctl prints it (etcd only). */
  lease: string | null;
}

export interface MembershipEvents {
  /** The full new host list (this host included), each time it changes. */
  hosts: [hosts: HostEntry[]];
}

export interface MembershipSource extends EventEmitter<MembershipEvents> {
  /** Resolves with the first membership: at once for `static`; for `etcd` once registered (it retries until then). */
  start(): Promise<Membership>;
  /** Leaves the cluster (etcd: revokes the lease, so peers see this host go at once) and lets go of everything. */
  stop(): Promise<void>;
  status(): MembershipStatus;
}

/** The same hosts with the same fields (addresses, ...), in any order. */
export function sameHosts(a: readonly HostEntry[], b: readonly HostEntry[]): boolean {
  if (a.length !== b.length) return false;
  const key = (h: HostEntry): string => JSON.stringify(Object.entries(h).sort(([x], [y]) => x.localeCompare(y)));
  const mine = new Set(a.map(key));
  return b.every((h) => mine.has(key(h)));
}

export const byId = (a: HostEntry, b: HostEntry): number => a.id - b.id;
