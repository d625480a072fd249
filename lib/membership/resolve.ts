// An etcd host's file has no host list and perhaps no id; the daemon, its
// rules and its reloads want both. This completes the file with what the
// source said, checked as a static list is (lib/config.ts checkMembers).
// A static configuration is complete already and passes through unchanged.
import { checkMembers, deepFreeze, type DprConfig } from '../config';
import type { Membership } from './source';

export function withMembership(file: Readonly<DprConfig>, m: Membership): Readonly<DprConfig> {
  if (file.membership.source === 'static') return file;
  const c = { ...structuredClone(file), self: m.self, hosts: m.hosts.map((h) => ({ ...h })) } as DprConfig;
  checkMembers(c);
  return deepFreeze(c);
}
