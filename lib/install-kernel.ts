// Applying and removing the kernel modes' part of an install (lib/kernel-path.ts):
// ipsets, VXLAN devices, per-peer routing tables, `ip rule fwmark` rules and
// the move of the `local` rule behind them. Each step leaves an undo, as in
// lib/install.ts. What is ours is found without a configuration: sets named
// dpr4_* and dpr6_*, devices named dprvx*, rules and routes of protocol
// ROUTE_PROTO in both families (`ip -4`, `ip -6`: separate spaces).
import { execFileSync } from 'node:child_process';
import { LINK_PREFIX, ROUTE_PROTO, SET_PREFIX, SET_PREFIX6, type KernelPath } from './kernel-path';

type Family = '-4' | '-6';

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

const ipRules = (f: Family): IpRule[] => JSON.parse(run('ip', [f, '-j', 'rule', 'show'])) as IpRule[];
const ourRules = (f: Family): IpRule[] => ipRules(f).filter((r) => r.protocol === ROUTE_PROTO && r.table !== 'local');
const ruleArgs = (r: IpRule): string[] => ['pref', String(r.priority), 'fwmark', `${r.fwmark}/${r.fwmask ?? '0xffffffff'}`, 'lookup', r.table, 'protocol', ROUTE_PROTO];
const ourSets = (): string[] => run('ipset', ['list', '-n']).split('\n').filter((n) => n.startsWith(SET_PREFIX) || n.startsWith(SET_PREFIX6));
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
    // No IPv6 link-local chatter on the tunnel...
    run('ip', ['link', 'set', name, 'addrgenmode', 'none']);
    // ...but IPv6 on, where the tunnel carries it (a device takes
    // net.ipv6.conf.default's disable_ipv6): it neither sends nor receives otherwise.
    if (k.neighbours6.length) run('sysctl', ['-qw', `net.ipv6.conf.${name}.disable_ipv6=0`]);
    if (k.linkAddress) run('ip', ['addr', 'add', `${k.linkAddress}/32`, 'dev', name, 'scope', 'link']);
    run('ip', ['link', 'set', name, 'up']);
  }
  for (const name of [...links].filter((n) => !k.links.some((l) => l[1] === n))) run('ip', ['link', 'del', name]);
  for (const n of k.neighbours) run('ip', ['neigh', 'replace', ...n]);
  for (const n of k.neighbours6) run('ip', ['-6', 'neigh', 'replace', ...n]);
  applyRouting('-4', k.routes, k.rules, k.localPref, undo);
  applyRouting('-6', k.routes6, k.rules6, k.localPref, undo);
}

/** One family's per-peer tables and fwmark rules; without any wanted, those of an earlier install go. */
function applyRouting(f: Family, routes: string[][], rules: string[][], localPref: number, undo: Undo): void {
  for (const r of routes) {
    run('ip', [f, 'route', 'replace', ...r]);
    const table = r[r.indexOf('table') + 1]!;
    undo.push([`route ${f} table ${table}`, () => run('ip', [f, 'route', 'flush', 'table', table, 'proto', ROUTE_PROTO])]);
  }
  if (!rules.length) {
    if (f === '-6') removeRouting(f);
    return;
  }
  moveLocalRule(f, localPref, undo);
  const old = ourRules(f);
  for (const r of old) run('ip', [f, 'rule', 'del', ...ruleArgs(r)]);
  undo.push([`ip ${f} rules`, () => {
    for (const r of ourRules(f)) run('ip', [f, 'rule', 'del', ...ruleArgs(r)]);
    for (const r of old) run('ip', [f, 'rule', 'add', ...ruleArgs(r)]);
  }]);
  for (const r of rules) run('ip', [f, 'rule', 'add', ...r]);
}

/**
 * A packet for this host's own service address that is marked for a peer
 * must see the peer's table before `local` does: the local rule moves from
 * preference 0 to just behind ours (as VRF set-ups move it).
 */
function moveLocalRule(f: Family, pref: number, undo: Undo): void {
  const rules = ipRules(f);
  const mine = rules.find((r) => r.table === 'local' && r.protocol === ROUTE_PROTO);
  if (mine && mine.priority === pref) return;
  if (mine) run('ip', [f, 'rule', 'del', 'pref', String(mine.priority), 'lookup', 'local', 'protocol', ROUTE_PROTO]);
  run('ip', [f, 'rule', 'add', 'pref', String(pref), 'lookup', 'local', 'protocol', ROUTE_PROTO]);
  undo.push([`local rule ${f}`, () => restoreLocalRule(f)]);
  if (rules.some((r) => r.table === 'local' && r.priority === 0)) run('ip', [f, 'rule', 'del', 'pref', '0', 'lookup', 'local']);
}

/** The local rule back at preference 0, ours removed. */
function restoreLocalRule(f: Family): void {
  const rules = ipRules(f);
  if (!rules.some((r) => r.table === 'local' && r.priority === 0)) run('ip', [f, 'rule', 'add', 'pref', '0', 'lookup', 'local']);
  for (const r of rules.filter((x) => x.table === 'local' && x.protocol === ROUTE_PROTO)) {
    run('ip', [f, 'rule', 'del', 'pref', String(r.priority), 'lookup', 'local', 'protocol', ROUTE_PROTO]);
  }
}

/** One family's rules, moved local rule and tables of ours. Nothing for IPv6 where the kernel has none. */
function removeRouting(f: Family): void {
  let rules: IpRule[];
  try {
    rules = ipRules(f);
  } catch (err) {
    if (f === '-6') return;
    throw err;
  }
  for (const r of rules.filter((x) => x.protocol === ROUTE_PROTO && x.table !== 'local')) run('ip', [f, 'rule', 'del', ...ruleArgs(r)]);
  if (rules.some((r) => r.table === 'local' && r.protocol === ROUTE_PROTO)) restoreLocalRule(f);
  const routes = JSON.parse(run('ip', [f, '-j', 'route', 'show', 'table', 'all', 'proto', ROUTE_PROTO]) || '[]') as Array<{ table?: string }>;
  for (const t of new Set(routes.map((r) => r.table).filter((t): t is string => !!t))) run('ip', [f, 'route', 'flush', 'table', t, 'proto', ROUTE_PROTO]);
}

/** After the iptables rules are gone (a set in use cannot be destroyed): everything of ours. */
export function removeKernelPath(): void {
  removeRouting('-4');
  removeRouting('-6');
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


