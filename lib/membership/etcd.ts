// The etcd source: this host registers itself under the prefix with a lease,
// keeps the lease alive and watches the prefix; every change to the records
// becomes a new host list ('hosts').
//
// One session at a time: lease (the one it had if still alive, else a new
// one), claim (lib/membership/claim.ts), list, then keepalives and a watch
// from the listing's revision, until something fails. Then the source is
// 'unreachable' (or 'waiting', when etcd answers but the id cannot be held),
// keeps the last list it had, and starts a new session after a backoff.
// The list never shrinks for want of etcd: only a record that etcd deletes
// (a lease revoked or expired) takes a host out, and this host is always in.
// An etcd restart keeps every lease (etcd renews them when it comes back), so
// the hosts come back to the same leases and ids: no change at all.
import os from 'node:os';
import { EventEmitter } from 'node:events';
import type { HostEntry } from '../config-schema';
import type { Logger } from '../log';
import { Backoff } from './backoff';
import { hex, planClaim } from './claim';
import { readClaim, writeClaim } from './claim-file';
import { addressesOf, encodeRecord, hostKey, hostsPrefix, membersOf, type RawKv } from './records';
import { byId, sameHosts, type Membership, type MembershipEvents, type MembershipSource, type MembershipState, type MembershipStatus } from './source';
import { EtcdStore, type Change, type Stream, type StoreOptions } from './store';

export interface EtcdSourceOptions extends Omit<StoreOptions, 'callTimeoutMs'> {
  prefix: string;
  leaseTtlS: number;
  /** This host's addresses and weight. */
  /** This host's IPv4 addresses; absent on an IPv6-only host. */
  service?: string;
  cluster?: string;
  /** Dual-stack: this host's IPv6 addresses (both or neither). */
  service6?: string;
  cluster6?: string;
  weight: number;
  /** The id this host must have; null: the one it had (claim file), else the lowest free one. */
  self: number | null;
  /** Ids 0..maxHosts-1 can be claimed. */
  maxHosts: number;
  /** The claim file ('' for none): lib/membership/claim-file.ts. */
  stateFile: string;
  retryMinMs: number;
  retryMaxMs: number;
  /** Why a host cannot be a member under this config (null: it can). */
  check: (h: HostEntry) => string | null;
  log: Logger;
}

/** etcd answered, but this host cannot hold an id now: retried, reported as 'waiting'. */
class Waiting extends Error {}
class Stopped extends Error {}

/** How often a lease is renewed within its TTL (as etcd's own Go client: TTL / 3). */
const KEEPALIVES_PER_TTL = 3;

export class EtcdSource extends EventEmitter<MembershipEvents> implements MembershipSource {
  private readonly store: EtcdStore;
  private readonly backoff: Backoff;
  private readonly records = new Map<string, RawKv>();
  private readonly startedAt = new Date();
  private state: MembershipState = 'connecting';
  private since = Date.now();
  private lastError: string | null = null;
  private retries = 0;
  private failures = 0;
  private changes = 0;
  private ignoredRecords = 0;
  private ignored = new Map<string, string>();
  private lease: string | null = null;
  private id: number | null = null;
  private saved: number | null = null;
  private hosts: HostEntry[] = [];
  private stopped = false;
  private endSession: ((err: Error) => void) | null = null;
  private wake: (() => void) | null = null;
  private loop: Promise<void> | null = null;
  private first: { resolve: (m: Membership) => void; reject: (e: Error) => void } | null = null;

  constructor(private readonly o: EtcdSourceOptions) {
    super();
    // A call that outlasts a third of the TTL would let the lease lapse while it waits.
    const callTimeoutMs = Math.min(5000, Math.max(500, (o.leaseTtlS * 1000) / KEEPALIVES_PER_TTL));
    this.store = new EtcdStore({ endpoints: o.endpoints, callTimeoutMs, tls: o.tls, auth: o.auth });
    this.backoff = new Backoff(o.retryMinMs, o.retryMaxMs);
    const claim = readClaim(o.stateFile, o.prefix);
    if (claim) {
      this.saved = claim.id;
      this.lease = claim.lease;
    }
  }

  start(): Promise<Membership> {
    if (this.loop) throw new Error('membership: start() called twice');
    const first = new Promise<Membership>((resolve, reject) => (this.first = { resolve, reject }));
    this.o.log.info('joining through etcd', { endpoints: this.o.endpoints, prefix: this.o.prefix, leaseTtlS: this.o.leaseTtlS, savedId: this.saved });
    this.loop = this.run();
    return first;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        await this.session();
      } catch (err) {
        if (this.stopped) break;
        this.failed(err as Error);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, this.state === 'waiting' ? this.o.retryMaxMs : this.backoff.next());
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.wake = null;
      }
    }
  }

  private async session(): Promise<void> {
    const lease = await this.leaseFor();
    const id = await this.claim(lease);
    this.checkStopped();
    const listing = await this.store.list(hostsPrefix(this.o.prefix));
    this.checkStopped();
    this.records.clear();
    for (const kv of listing.kvs) this.records.set(kv.key, kv);
    this.registered(id, lease);
    await this.follow(lease, id, listing.revision);
  }

  private checkStopped(): void {
    if (this.stopped) throw new Stopped('stopped');
  }

  /** The lease this host had, if etcd still has it, else a new one. */
  private async leaseFor(): Promise<string> {
    if (this.lease !== null) {
      const ttl = await this.store.timeToLive(this.lease);
      if (ttl > 0) return this.lease;
      this.o.log.info('lease expired: taking a new one', { lease: hex(this.lease) });
      this.lease = null;
    }
    this.lease = await this.store.grant(this.o.leaseTtlS);
    return this.lease;
  }

  private async claim(lease: string): Promise<number> {
    const key = (id: number): string => hostKey(this.o.prefix, id);
    const value = encodeRecord(this.o, os.hostname(), this.startedAt);
    const { kvs } = await this.store.list(hostsPrefix(this.o.prefix));
    const plan = planClaim({
      prefix: this.o.prefix, kvs, lease, me: this.o, held: this.id, fixed: this.o.self, saved: this.saved, maxHosts: this.o.maxHosts,
    });
    if (plan.kind === 'wait') throw new Waiting(plan.reason);
    if (plan.kind === 'mine') {
      // Addresses may have changed since the record was written (a restart with a new config).
      if (await this.store.replaceOwn(key(plan.id), value, lease)) return plan.id;
      throw new Error(`the record of id ${plan.id} changed while it was being renewed`);
    }
    for (const id of plan.ids) {
      this.checkStopped();
      if (await this.store.createIfAbsent(key(id), value, lease)) return id;
      this.o.log.debug('id taken meanwhile, trying the next', { id });
    }
    throw new Error('every free id was taken meanwhile');
  }

  private registered(id: number, lease: string): void {
    const was = this.state;
    const downMs = Date.now() - this.since;
    this.id = id;
    this.setState('registered', null);
    this.retries = 0;
    this.backoff.reset();
    this.saveClaim();
    if (was === 'connecting') this.o.log.info('registered', { id, lease: hex(lease) });
    else this.o.log.info(`etcd reachable again after ${downMs} ms: registered`, { id, lease: hex(lease), was });
    // The first list is start()'s answer; 'hosts' tells the changes after it.
    this.publish(this.first === null);
    this.saveClaim();
    if (this.first) {
      this.first.resolve({ self: id, hosts: this.hosts });
      this.first = null;
    }
  }

  /** Keepalives and the watch, until one of them fails (or stop()). */
  private async follow(lease: string, id: number, revision: string): Promise<void> {
    const streams: Stream[] = [];
    const ended = new Promise<never>((_, reject) => (this.endSession = reject));
    ended.catch(() => undefined);
    const end = (err: Error): void => this.endSession?.(err);
    try {
      const everyMs = (this.o.leaseTtlS * 1000) / KEEPALIVES_PER_TTL;
      let answered = Date.now();
      streams.push(await this.store.keepAlive(lease, everyMs, (ttl) => {
        if (ttl > 0) answered = Date.now();
        else {
          this.lease = null;
          end(new Error(`lease ${hex(lease)} expired (etcd did not hear this host for ${this.o.leaseTtlS} s)`));
        }
      }, end));
      // Two keepalives unanswered: etcd is gone (a call in flight has no error to give).
      const watchdog = setInterval(() => {
        if (Date.now() - answered > 2 * everyMs + 100) end(new Error(`etcd answered no keepalive for ${Date.now() - answered} ms`));
      }, everyMs);
      streams.push({ end: () => clearInterval(watchdog) });
      streams.push(await this.store.watch(hostsPrefix(this.o.prefix), String(BigInt(revision) + 1n), (changes) => this.changed(changes, lease, id, end), end));
      await ended;
    } finally {
      this.endSession = null;
      for (const s of streams) s.end();
    }
  }

  private changed(changes: Change[], lease: string, id: number, end: (err: Error) => void): void {
    const own = hostKey(this.o.prefix, id);
    for (const c of changes) {
      if (c.type === 'delete') this.records.delete(c.kv.key);
      else this.records.set(c.kv.key, c.kv);
      if (c.kv.key === own && (c.type === 'delete' || c.kv.lease !== lease)) {
        end(new Error(`this host's record ${own} was ${c.type === 'delete' ? 'deleted' : 'overwritten under another lease'} by someone else`));
      }
    }
    this.publish();
  }

  /** Hands out the list the records make, if it changed. This host is always in it, with its own addresses. */
  private publish(emit = true): void {
    if (this.id === null) return;
    const { service, cluster, service6, cluster6 } = this.o;
    const me: HostEntry = { id: this.id, ...(service ? { service, cluster } : {}), ...(service6 ? { service6, cluster6 } : {}), weight: this.o.weight };
    const { hosts, ignored } = membersOf(this.o.prefix, this.records.values(), this.o.check);
    const mine = addressesOf(me);
    const list = hosts.filter((h) => h.id !== me.id && !addressesOf(h).some((a) => mine.includes(a)));
    list.push(me);
    list.sort(byId);
    for (const [key, reason] of ignored) {
      if (this.ignored.get(key) === reason) continue;
      this.ignoredRecords++;
      this.o.log.warn('ignoring a record in etcd', { key, reason });
    }
    this.ignored = ignored;
    if (this.changes > 0 && sameHosts(list, this.hosts)) return;
    const before = new Set(this.hosts.map((h) => h.id));
    this.hosts = list;
    this.changes++;
    const ids = new Set(list.map((h) => h.id));
    this.o.log.info('membership changed', { hosts: [...ids], joined: [...ids].filter((id) => !before.has(id)), left: [...before].filter((id) => !ids.has(id)) });
    if (emit) {
      this.saveClaim();
      this.emit('hosts', list);
    }
  }

  private saveClaim(): void {
    if (this.id === null) return;
    try {
      writeClaim(this.o.stateFile, { prefix: this.o.prefix, id: this.id, lease: this.lease, hosts: this.hosts });
    } catch (err) {
      this.o.log.warn('cannot write the claim file: a restart will not find this lease', { file: this.o.stateFile, error: (err as Error).message });
    }
  }

  private failed(err: Error): void {
    const state: MembershipState = err instanceof Waiting ? 'waiting' : 'unreachable';
    const message = err.message;
    this.failures++;
    this.retries++;
    const prev = this.state;
    this.setState(state, message);
    const n = this.hosts.length;
    const known = this.id === null ? 'no membership yet: the daemon waits' : `keeping the last membership (${n} host${n === 1 ? '' : 's'})`;
    const meta = { error: message, retries: this.retries, endpoints: this.o.endpoints };
    // The first failure of a kind, then one line per 10 retries: an outage for hours must not flood the log.
    if (state !== prev || this.retries % 10 === 0) {
      if (state === 'waiting') this.o.log.error(`cannot hold an id in etcd: ${message}; ${known}; retrying`, meta);
      else this.o.log.warn(`etcd ${prev === 'registered' ? 'lost' : 'unreachable'}: ${known}; retrying with backoff (at most ${this.o.retryMaxMs} ms)`, meta);
    }
  }

  private setState(state: MembershipState, error: string | null): void {
    if (state !== this.state) this.since = Date.now();
    this.state = state;
    this.lastError = error;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.first?.reject(new Error('membership: stopped before it registered'));
    this.first = null;
    this.endSession?.(new Stopped('stopped'));
    this.wake?.();
    await this.loop?.catch(() => undefined);
    if (this.lease !== null) {
      try {
        await this.store.revoke(this.lease);
        this.o.log.info('left: lease revoked', { id: this.id, lease: hex(this.lease) });
        this.lease = null;
        this.saveClaim();
      } catch (err) {
        this.o.log.warn(`cannot revoke the lease: peers see this host leave when it expires (at most ${this.o.leaseTtlS} s)`, { error: (err as Error).message });
      }
    }
    this.store.close();
  }

  status(): MembershipStatus {
    return {
      source: 'etcd', state: this.state, since: this.since, self: this.id, hosts: this.hosts.length,
      lastError: this.lastError, retries: this.retries, changes: this.changes, failures: this.failures,
      ignoredRecords: this.ignoredRecords, lease: this.lease === null ? null : hex(this.lease),
    };
  }
}
