// Which id this host takes, decided from a listing of the records (pure: the
// transaction that makes it stick is in lib/membership/etcd.ts).
//
// - A record attached to this host's own lease is its claim already (a
//   restart that found its lease alive through the claim file, or a session
//   that came back after etcd did): it keeps that id.
// - A live record of another lease with this host's service or cluster
//   address: wait. It is a previous run of this host whose lease has not
//   expired yet (at most the TTL), or another host with the same address,
//   which must not take part.
// - Otherwise try ids in order: the one this process holds already (a host
//   never changes its id while it runs: peers, peer ports and flows know it
//   by it), else the configured `self`, else the one from the claim file,
//   then the lowest free ones. Each try is a create-if-absent transaction: of
//   two hosts that race for one id exactly one gets it, the other tries the
//   next.
import { addressesOf, decodeRecord, idOfKey, type HostAddresses, type RawKv } from './records';

export interface ClaimInput {
  prefix: string;
  kvs: readonly RawKv[];
  lease: string;
  me: HostAddresses;
  /** The id this process registered with before: the only one it may hold. */
  held: number | null;
  /** The config's `self` (null: any free id). */
  fixed: number | null;
  /** The id of the claim file (the last run's). */
  saved: number | null;
  maxHosts: number;
}

export type ClaimPlan =
  | { kind: 'mine'; id: number }
  | { kind: 'try'; ids: number[] }
  | { kind: 'wait'; reason: string };

export function planClaim(c: ClaimInput): ClaimPlan {
  const taken = new Map<number, RawKv>();
  for (const kv of c.kvs) {
    const id = idOfKey(c.prefix, kv.key);
    if (id !== null) taken.set(id, kv);
  }
  const mine = [...taken].find(([id, kv]) => kv.lease === c.lease && (c.held === null || c.held === id));
  if (mine) return { kind: 'mine', id: mine[0] };
  for (const kv of c.kvs) {
    if (kv.lease === c.lease) continue;
    const r = decodeRecord(c.prefix, kv);
    if (typeof r === 'string') continue;
    const mine = addressesOf(c.me);
    const shared = addressesOf(r).find((a) => mine.includes(a));
    // `service 198.18.0.2` as `service address 198.18.0.2`.
    const same = shared?.replace(' ', ' address ');
    if (same) {
      return { kind: 'wait', reason: `this host's ${same} is registered as host ${r.id} under another lease (${hex(r.lease)}): a previous run of this host whose lease has not expired yet, or another host with the same address` };
    }
  }
  const only = c.held ?? c.fixed;
  if (only !== null) {
    if (!taken.has(only)) return { kind: 'try', ids: [only] };
    const what = c.held !== null ? 'the id this host runs with' : 'self, the id the configuration sets';
    return { kind: 'wait', reason: `id ${only} (${what}) is held by ${describe(c.prefix, taken.get(only)!)}` };
  }
  const ids: number[] = [];
  if (c.saved !== null && c.saved < c.maxHosts && !taken.has(c.saved)) ids.push(c.saved);
  for (let id = 0; id < c.maxHosts; id++) if (!taken.has(id) && id !== c.saved) ids.push(id);
  if (ids.length === 0) return { kind: 'wait', reason: `no free id: all ${c.maxHosts} ids below membership.etcd.maxHosts are held` };
  return { kind: 'try', ids };
}

export const hex = (lease: string): string => BigInt(lease).toString(16);

function describe(prefix: string, kv: RawKv): string {
  const r = decodeRecord(prefix, kv);
  if (typeof r === 'string') return `a record that is not a host's (${r}; lease ${hex(kv.lease)})`;
  const at = r.service ? `${r.service}/${r.cluster}` : `${r.service6}/${r.cluster6}`;
  return `the host at ${at} (lease ${hex(r.lease)})`;
}
