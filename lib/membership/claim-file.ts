// The claim file (membership.etcd.stateFile): this host's id and lease, kept
// across restarts. A daemon that crashed and comes back within the lease's
// TTL finds its lease alive and its record still attached to it, and goes on
// with both: its peers see no change at all. One that left (stop revokes the
// lease) or stayed away longer asks for its old id first. It also keeps the
// last host list, so that install.sh, which runs before the daemon, renders
// the peers' rules (restore addresses, DNAT) as they were: a restart must not
// take them away from forwarded connections while the daemon registers.
import fs from 'node:fs';
import path from 'node:path';
import type { HostEntry } from '../config-schema';

export interface SavedClaim {
  /** The prefix the claim is under: a claim under another prefix is not this one's. */
  prefix: string;
  id: number;
  /** The lease (decimal), or null once revoked. */
  lease: string | null;
  /** The last host list this host had (this host included). */
  hosts: HostEntry[];
}

/** The saved claim for `prefix`, or null (no file, another prefix, or not readable: a fresh start either way). */
export function readClaim(file: string, prefix: string): SavedClaim | null {
  if (!file) return null;
  try {
    const v = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<SavedClaim>;
    if (v.prefix !== prefix || !Number.isInteger(v.id) || (v.lease !== null && !/^\d+$/.test(String(v.lease)))) return null;
    return { prefix, id: v.id!, lease: v.lease ?? null, hosts: Array.isArray(v.hosts) ? v.hosts : [] };
  } catch {
    return null;
  }
}

/** Writes the claim whole or not at all (a rename), so a crash mid-write leaves the last one. */
export function writeClaim(file: string, claim: SavedClaim): void {
  if (!file) return;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(claim) + '\n', { mode: 0o600 });
  fs.renameSync(tmp, file);
}
