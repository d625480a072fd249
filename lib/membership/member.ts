// This host as a member of the cluster: the membership source and the daemon
// it feeds. start() waits for the first membership (etcd: until registered;
// a stop asked for meanwhile ends the wait), installs the rules for it and
// starts the daemon; every later host list is applied as a reload of the
// host list is (Daemon.reload: rules, native tables, peers, hosts that left
// retired once no forwarded flow uses them), one at a time. Stopping stops
// the daemon first (a drain keeps its meaning), then leaves (etcd: lease
// revoked, so peers see this host go at once).
import type { Daemon, DaemonStatus, ReloadResult } from '../daemon';
import type { DprConfig, HostEntry } from '../config';
import type { Logger } from '../log';
import { withMembership } from './resolve';
import type { Membership, MembershipSource, MembershipStatus } from './source';

export interface MemberStatus extends MembershipStatus {
  /** Host lists from the source the daemon refused (each logged with its reason). */
  refused: number;
}

export interface MemberParts {
  /** The daemon for a complete configuration; it reloads through `next()`. */
  makeDaemon: (config: Readonly<DprConfig>, next: () => Readonly<DprConfig>) => Daemon;
  /** Reads the file again (SIGHUP, `dpr reload`). */
  readFile: () => Readonly<DprConfig>;
  /** Installs the rules for a configuration, all or nothing (etcd: before the daemon starts, for the first list). */
  applyRules: (c: Readonly<DprConfig>) => void;
  log: Logger;
  /** First delay before a refused list is tried again (default RETRY_FIRST_MS; tests). */
  retryFirstMs?: number;
}

/** A refused host list is tried again after this, doubling up to RETRY_MAX_MS. */
const RETRY_FIRST_MS = 2000;
const RETRY_MAX_MS = 60_000;

/** start() ended because a stop was asked for before the first membership came. */
export class StoppedBeforeStart extends Error {}

export class ClusterMember {
  private daemon: Daemon | null = null;
  private membership: Membership | null = null;
  /** What the daemon's next reload reads: the file as it runs, or as it is now on disk (SIGHUP). */
  private next: () => Readonly<DprConfig>;
  private queue: Promise<unknown> = Promise.resolve();
  private refused = 0;
  /** The list being applied, or refused and waiting to be tried again (null: all applied). */
  private latest: HostEntry[] | null = null;
  private stopped = false;
  private abort: AbortSignal | null = null;

  constructor(private file: Readonly<DprConfig>, private readonly source: MembershipSource, private readonly parts: MemberParts) {
    this.next = () => this.resolved();
  }

  /** A stop asked for while start() waits for the first membership ends the wait. */
  stopWaitingOn(signal: AbortSignal): void {
    this.abort = signal;
  }

  /** The running configuration, complete (null before start()). */
  get config(): Readonly<DprConfig> | null {
    return this.membership ? this.resolved() : null;
  }

  private resolved(file = this.file): Readonly<DprConfig> {
    return withMembership(file, this.membership!);
  }

  async start(): Promise<void> {
    this.membership = await this.firstMembership();
    const config = this.resolved();
    try {
      if (config.membership.source === 'etcd') this.parts.applyRules(config);
      this.daemon = this.parts.makeDaemon(config, () => this.next());
      await this.daemon.start();
    } catch (err) {
      await this.source.stop().catch(() => undefined);
      throw err;
    }
    this.source.on('hosts', (hosts) => {
      this.latest = hosts;
      this.follow(hosts);
    });
  }

  private async firstMembership(): Promise<Membership> {
    const signal = this.abort;
    if (!signal) return this.source.start();
    if (signal.aborted) throw new StoppedBeforeStart('stopped before start');
    const stopped = new Promise<never>((_, reject) => signal.addEventListener('abort', () => reject(new StoppedBeforeStart('stopped while waiting for the first membership')), { once: true }));
    try {
      return await Promise.race([this.source.start(), stopped]);
    } catch (err) {
      if (err instanceof StoppedBeforeStart) await this.source.stop();
      throw err;
    }
  }

  /**
   * Applies a new host list, after whatever is being applied now. A list the
   * daemon refuses (the rules could not be installed, a list this file cannot
   * hold) is tried again, later and later, until it applies or a newer one
   * comes: the source has moved on and will not say it again.
   */
  private follow(hosts: HostEntry[], retryMs = this.parts.retryFirstMs ?? RETRY_FIRST_MS): void {
    this.queue = this.queue.then(async () => {
      // A newer list came meanwhile: that one is applied instead (its own turn comes).
      if (this.latest !== hosts) return;
      this.membership = { self: this.membership!.self, hosts };
      const r = await this.daemon!.reload();
      if (r.ok) {
        if (this.latest === hosts) this.latest = null;
        this.parts.log.info('membership applied', { hosts: hosts.map((h) => h.id), changed: r.changed });
        return;
      }
      this.refused++;
      this.parts.log.error(`membership change refused; the host list in use stays; trying again in ${retryMs} ms`, { hosts: hosts.map((h) => h.id), key: r.key, reason: r.reason });
      const timer = setTimeout(() => this.latest === hosts && !this.stopped && this.follow(hosts, Math.min(RETRY_MAX_MS, retryMs * 2)), retryMs);
      timer.unref();
    });
  }

  /** SIGHUP, `dpr reload`: the file as it is now, with the membership as it is now. */
  async reload(): Promise<ReloadResult> {
    const run = this.queue.then(async () => {
      let file: Readonly<DprConfig> | null = null;
      this.next = () => this.resolved((file = this.parts.readFile()));
      try {
        const r = await this.daemon!.reload();
        if (r.ok && file) this.file = file;
        return r;
      } finally {
        this.next = () => this.resolved();
      }
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  drain(): Promise<boolean> {
    return this.daemon!.drain();
  }

  undrain(): boolean {
    return this.daemon!.undrain();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.daemon?.stop();
    await this.source.stop();
  }

  status(): DaemonStatus & { membership: MemberStatus } {
    return { ...this.daemon!.status(), membership: { ...this.source.status(), refused: this.refused } };
  }

  /** status() with the kernel modes' kernel counters (lib/kernel-flows.ts), for /status and /metrics. */
  statusWithKernel(): DaemonStatus & { membership: MemberStatus } {
    return { ...this.daemon!.statusWithKernel(), membership: { ...this.source.status(), refused: this.refused } };
  }
}
