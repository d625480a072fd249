// The static source: the config's `hosts`, the same file on every host. It
// never changes by itself; a changed file comes in through a reload.
import { EventEmitter } from 'node:events';
import type { HostEntry } from '../config-schema';
import { byId, type Membership, type MembershipEvents, type MembershipSource, type MembershipStatus } from './source';

export class StaticSource extends EventEmitter<MembershipEvents> implements MembershipSource {
  private readonly startedAt = Date.now();
  private readonly hosts: HostEntry[];

  constructor(private readonly self: number, hosts: readonly HostEntry[]) {
    super();
    this.hosts = [...hosts].sort(byId);
  }

  start(): Promise<Membership> {
    return Promise.resolve({ self: this.self, hosts: this.hosts });
  }

  stop(): Promise<void> {
    return Promise.resolve();
  }

  status(): MembershipStatus {
    return {
      source: 'static', state: 'static', since: this.startedAt, self: this.self, hosts: this.hosts.length,
      lastError: null, retries: 0, changes: 1, failures: 0, ignoredRecords: 0, lease: null,
    };
  }
}
