// Applying and removing the kernel modes' part of an install (lib/kernel-path.ts):
// ipsets, VXLAN devices, per-peer routing tables, `ip rule fwmark` rules and
// the move of the `local` rule behind them. Each step leaves an undo, as in
// lib/install.ts. What is ours is found without a configuration: sets named
// dpr4_*, devices named dprvx*, rules and routes of protocol ROUTE_PROTO.
import { execFileSync } from 'node:child_process';
import { LINK_PREFIX, ROUTE_PROTO, SET_PREFIX, type KernelPath } from './kernel-path';

export type Undo = Array<[string, () => void]>;

function run(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${e.stderr?.trim() || e.message}`);
  }
}

interface IpRule { priority: number; table: string; protocol?: string; fwmark?: string; fwmask?: string }

const ipRules = (): IpRule[] => JSON.parse(run('ip', ['-4', '-j', 'rule', 'show'])) as IpRule[];
const ourRules = (): IpRule[] => ipRules().filter((r) => r.protocol === ROUTE_PROTO && r.table !== 'local');
const ruleArgs = (r: IpRule): string[] => ['pref', String(r.priority), 'fwmark', `${r.fwmark}/${r.fwmask ?? '0xffffffff'}`, 'lookup', r.table, 'protocol', ROUTE_PROTO];
const ourSets = (): string[] => run('ipset', ['list', '-n']).split('\n').filter((n) => n.startsWith(SET_PREFIX));
const ourLinks = (): string[] => (JSON.parse(run('ip', ['-j', 'link', 'show'])) as Array<{ ifname: string }>).map((l) => l.ifname).filter((n) => n.startsWith(LINK_PREFIX));

/** Before the iptables rules (which name the sets): sets, devices, routes, rules. */
export function applyKernelPath(k: KernelPath, undo: Undo): void {
  const sets = new Set(ourSets());
  for (const s of k.sets) {
    // A set that is there keeps its entries: a reinstall must not cut the flows in it.
    if (sets.has(s[0]!)) continue;
    run('ipset', ['create', ...s]);
    undo.push([`ipset ${s[0]}`, () => run('ipset', ['destroy', s[0]!])]);
  }
  const links = new Set(ourLinks());
  for (const l of k.links) {
    const name = l[1]!;
    if (links.has(name)) run('ip', ['link', 'del', name]);
    run('ip', ['link', 'add', ...l]);
    undo.push([`link ${name}`, () => run('ip', ['link', 'del', name])]);
    // No IPv6 link-local chatter on the tunnel.
    run('ip', ['link', 'set', name, 'addrgenmode', 'none']);
    if (k.linkAddress) run('ip', ['addr', 'add', `${k.linkAddress}/32`, 'dev', name, 'scope', 'link']);
    run('ip', ['link', 'set', name, 'up']);
  }
  for (const name of [...links].filter((n) => !k.links.some((l) => l[1] === n))) run('ip', ['link', 'del', name]);
  for (const n of k.neighbours) run('ip', ['neigh', 'replace', ...n]);
  for (const r of k.routes) {
    run('ip', ['route', 'replace', ...r]);
    const table = r[r.indexOf('table') + 1]!;
    undo.push([`route table ${table}`, () => run('ip', ['route', 'flush', 'table', table, 'proto', ROUTE_PROTO])]);
  }
  moveLocalRule(k.localPref, undo);
  const old = ourRules();
  for (const r of old) run('ip', ['rule', 'del', ...ruleArgs(r)]);
  undo.push(['ip rules', () => {
    for (const r of ourRules()) run('ip', ['rule', 'del', ...ruleArgs(r)]);
    for (const r of old) run('ip', ['rule', 'add', ...ruleArgs(r)]);
  }]);
  for (const r of k.rules) run('ip', ['rule', 'add', ...r]);
}

/**
 * A packet for this host's own service address that is marked for a peer
 * must see the peer's table before `local` does: the local rule moves from
 * preference 0 to just behind ours (as VRF set-ups move it).
 */
function moveLocalRule(pref: number, undo: Undo): void {
  const rules = ipRules();
  const mine = rules.find((r) => r.table === 'local' && r.protocol === ROUTE_PROTO);
  if (mine && mine.priority === pref) return;
  if (mine) run('ip', ['rule', 'del', 'pref', String(mine.priority), 'lookup', 'local', 'protocol', ROUTE_PROTO]);
  run('ip', ['rule', 'add', 'pref', String(pref), 'lookup', 'local', 'protocol', ROUTE_PROTO]);
  undo.push(['local rule', () => restoreLocalRule()]);
  if (rules.some((r) => r.table === 'local' && r.priority === 0)) run('ip', ['rule', 'del', 'pref', '0', 'lookup', 'local']);
}

/** The local rule back at preference 0, ours removed. */
function restoreLocalRule(): void {
  const rules = ipRules();
  if (!rules.some((r) => r.table === 'local' && r.priority === 0)) run('ip', ['rule', 'add', 'pref', '0', 'lookup', 'local']);
  for (const r of rules.filter((x) => x.table === 'local' && x.protocol === ROUTE_PROTO)) {
    run('ip', ['rule', 'del', 'pref', String(r.priority), 'lookup', 'local', 'protocol', ROUTE_PROTO]);
  }
}

/** After the iptables rules are gone (a set in use cannot be destroyed): everything of ours. */
export function removeKernelPath(): void {
  for (const r of ourRules()) run('ip', ['rule', 'del', ...ruleArgs(r)]);
  if (ipRules().some((r) => r.table === 'local' && r.protocol === ROUTE_PROTO)) restoreLocalRule();
  const routes = JSON.parse(run('ip', ['-4', '-j', 'route', 'show', 'table', 'all', 'proto', ROUTE_PROTO])) as Array<{ table?: string }>;
  for (const t of new Set(routes.map((r) => r.table).filter((t): t is string => !!t))) run('ip', ['route', 'flush', 'table', t, 'proto', ROUTE_PROTO]);
  for (const l of ourLinks()) run('ip', ['link', 'del', l]);
  if (!ipsetPresent()) return;
  for (const s of ourSets()) run('ipset', ['destroy', s]);
}

/** Whether the ipset tool is installed (uninstall runs on hosts that never used a kernel mode). */
export function ipsetPresent(): boolean {
  try {
    execFileSync('ipset', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}


