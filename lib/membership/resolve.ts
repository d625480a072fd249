// An etcd host's file has no host list and perhaps no id; the daemon, its
// rules and its reloads want both. This completes the file with what the
// source said, checked as a static list is (lib/config.ts checkMembers).
// A static configuration is complete already and passes through unchanged.
// Loads no etcd client: `dpr check`, `dpr rules` and install.sh use it.
import { checkMembers, deepFreeze, type DprConfig } from '../config';
import { readClaim } from './claim-file';
import type { Membership } from './source';

export function withMembership(file: Readonly<DprConfig>, m: Membership): Readonly<DprConfig> {
  if (file.membership.source === 'static') return file;
  // This host as its file says, whatever a list (the claim file's, from an older run) says of it.
  const f = file.membership;
  const me = { id: m.self, ...(f.service ? { service: f.service, cluster: f.cluster } : {}), ...(f.service6 ? { service6: f.service6, cluster6: f.cluster6 } : {}), weight: f.weight };
  const c = { ...structuredClone(file), self: m.self, hosts: m.hosts.map((h) => (h.id === m.self ? me : { ...h })) } as DprConfig;
  checkMembers(c);
  return deepFreeze(c);
}

/**
 * The configuration the rules are rendered from before the daemon runs
 * (install.sh, `dpr rules`, `dpr check`): static, the file; etcd, the file
 * with the last host list of the claim file, if there is one that fits, so a
 * restart keeps the peers' rules; else this host's own rules only.
 */
export function lastKnown(c: Readonly<DprConfig>): Readonly<DprConfig> {
  if (c.membership.source === 'static') return c;
  const saved = readClaim(c.membership.etcd.stateFile, c.membership.etcd.prefix);
  if (!saved || saved.hosts.length === 0) return c;
  try {
    return withMembership(c, { self: saved.id, hosts: saved.hosts });
  } catch {
    return c;
  }
}
