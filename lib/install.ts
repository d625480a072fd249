// Installing dpr on a host, all or nothing, and removing all of it again
// (`dpr install` / `dpr uninstall`, run by iptables/install.sh and uninstall.sh).
//
// Order: the rules first (one iptables-restore, then one ip6tables-restore
// for a dual-stack cluster), then the sysctls, then the restore addresses on lo. iptables-restore commits table by table (measured:
// a refused rule in `filter` leaves `raw` committed), so every step that
// changed something leaves an undo, and a failure anywhere runs them back to
// front: the host is left as it was.
//
// What is ours: chains named DPR_* (iptables and ip6tables) and the rules in
// built-in chains that jump to them; addresses on lo with the label lo:dpr,
// and the IPv6 ones that the ip6tables chain DPR_LO6 names (IPv6 addresses
// take no label); the sysctls of RuleSet, whose
// values from before the first install are kept in the rule comments of the
// chain DPR_SAVED (never jumped to). There they live exactly as long as what
// they describe, per network namespace, and need no file.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import type { RuleSet } from './rules';
import { LO6_CHAIN, LO6_TABLE, type RuleSet6 } from './rules6';
import { applyKernelPath, removeKernelPath } from './install-kernel';

/** Which tool reads and writes the tables: iptables (4) or ip6tables (6). */
type Family = 4 | 6;
const SAVE: Record<Family, string> = { 4: 'iptables-save', 6: 'ip6tables-save' };
const RESTORE: Record<Family, string> = { 4: 'iptables-restore', 6: 'ip6tables-restore' };
const ALL_TABLES = ['raw', 'mangle', 'nat', 'filter'];

export const ADDRESS_LABEL = 'lo:dpr';
export const SAVED_CHAIN = 'DPR_SAVED';
const SAVED_TABLE = 'raw';

function run(cmd: string, args: string[], input?: string): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${e.stderr?.trim() || e.message}`);
  }
}

/** One table as iptables-save prints it: our chains with their rules, and the jumps into them. */
export interface TableState {
  chains: Map<string, string[]>;
  /** `-A <chain not ours> ... -j DPR_*` lines. */
  jumps: string[];
}

const ours = (chain: string): boolean => chain.startsWith('DPR_');

export function parseTable(saved: string): TableState {
  const state: TableState = { chains: new Map(), jumps: [] };
  for (const line of saved.split('\n')) {
    const decl = /^:(\S+) /.exec(line);
    if (decl && ours(decl[1]!)) state.chains.set(decl[1]!, []);
    const rule = /^-A (\S+) .*?-j (\S+)/.exec(line) ?? /^-A (\S+)/.exec(line);
    if (!rule) continue;
    if (ours(rule[1]!)) state.chains.get(rule[1]!)?.push(line);
    else if (rule[2] && ours(rule[2])) state.jumps.push(line);
  }
  return state;
}

/**
 * The tables as they are now. One iptables-save of every table: `-t mangle`
 * would create the table (with the nft backend) just by looking at it.
 */
function readTables(names: string[], family: Family = 4): Map<string, TableState> {
  const text = run(SAVE[family], []);
  const out = new Map<string, TableState>();
  for (const part of text.split(/^\*/m).slice(1)) {
    const table = part.slice(0, part.indexOf('\n'));
    if (names.includes(table)) out.set(table, parseTable(part));
  }
  for (const t of names) if (!out.has(t)) out.set(t, { chains: new Map(), jumps: [] });
  return out;
}

/** One iptables-restore input; declarations must come before rules within a table. */
function restoreInput(tables: Map<string, { decls: string[]; lines: string[] }>): string {
  const out: string[] = [];
  for (const [table, t] of tables) {
    if (!t.decls.length && !t.lines.length) continue;
    out.push(`*${table}`, ...t.decls, ...t.lines, 'COMMIT');
  }
  return out.join('\n') + '\n';
}

function section(tables: Map<string, { decls: string[]; lines: string[] }>, table: string) {
  let t = tables.get(table);
  if (!t) tables.set(table, (t = { decls: [], lines: [] }));
  return t;
}

/** RuleSet.restore split back into tables, to add lines to. */
function sectionsOf(restore: string): Map<string, { decls: string[]; lines: string[] }> {
  const tables = new Map<string, { decls: string[]; lines: string[] }>();
  let cur: { decls: string[]; lines: string[] } | null = null;
  for (const line of restore.split('\n')) {
    if (line.startsWith('*')) cur = section(tables, line.slice(1));
    else if (line === 'COMMIT' || !line || !cur) continue;
    else (line.startsWith(':') ? cur.decls : cur.lines).push(line);
  }
  return tables;
}

/** The rules, the missing jumps and (first install only) the saved sysctl values, as one input. */
export function installInput(r: Pick<RuleSet, 'restore' | 'jumps'>, before: Map<string, TableState>, savedSysctls: Map<string, string>): string {
  const tables = sectionsOf(r.restore);
  for (const j of r.jumps) {
    if (!before.get(j.table)?.jumps.includes(`-A ${j.chain} -j ${j.target}`)) {
      section(tables, j.table).lines.push(`-I ${j.chain} 1 -j ${j.target}`);
    }
  }
  const saved = before.get(SAVED_TABLE)?.chains.get(SAVED_CHAIN);
  const known = new Set(readSaved(saved ?? []).keys());
  const fresh = [...savedSysctls].filter(([k]) => !known.has(k));
  if (fresh.length) {
    const t = section(tables, SAVED_TABLE);
    if (!saved) t.decls.push(`:${SAVED_CHAIN} - [0:0]`);
    for (const [k, v] of fresh) t.lines.push(`-A ${SAVED_CHAIN} -m comment --comment "${k}=${v}"`);
  }
  return restoreInput(tables);
}

/** Puts our chains and jumps of `tables` back as they were in `before`; removes the ones that were not there. */
export function rollbackInput(before: Map<string, TableState>, now: Map<string, TableState>): string {
  const tables = new Map<string, { decls: string[]; lines: string[] }>();
  for (const [table, cur] of now) {
    const old: TableState = before.get(table) ?? { chains: new Map(), jumps: [] };
    const t = section(tables, table);
    for (const j of cur.jumps) if (!old.jumps.includes(j)) t.lines.push(j.replace(/^-A /, '-D '));
    for (const chain of cur.chains.keys()) {
      t.decls.push(`:${chain} - [0:0]`);
      if (old.chains.has(chain)) t.lines.push(...old.chains.get(chain)!);
      else t.lines.push(`-X ${chain}`);
    }
  }
  return restoreInput(tables);
}

/** Everything of ours in these tables: jumps, then chains (flushed by the declaration, then deleted). */
export function removalInput(now: Map<string, TableState>): string {
  const empty = new Map([...now.keys()].map((t) => [t, { chains: new Map(), jumps: [] } as TableState]));
  return rollbackInput(empty, now);
}

/** `KEY=VALUE` comments of DPR_SAVED's rules. */
export function readSaved(rules: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const r of rules) {
    const m = /--comment "?([\w./@:-]+)=([^"\s]*)"?/.exec(r);
    if (m) out.set(m[1]!, m[2]!);
  }
  return out;
}

// Sysctls are handled by their path under /proc/sys ('net/ipv4/conf/eth0.100/send_redirects'):
// a dotted name cannot tell an interface called eth0.100 from a path.
const sysctlPath = (p: string): string => `/proc/sys/${p}`;

/** RuleSet's sysctls as paths, with `*` expanded to every interface (all, default, lo, eth0, ...). */
export function expandSysctls(sysctls: Array<[string, string]>): Array<[string, string]> {
  return sysctls.flatMap(([key, value]): Array<[string, string]> => {
    const p = key.replace(/\./g, '/');
    if (!p.includes('*')) return [[p, value]];
    const [head, tail] = p.split('*') as [string, string];
    return fs.readdirSync(sysctlPath(head)).map((n) => [`${head}${n}${tail}`, value]);
  });
}

const readSysctl = (key: string): string => fs.readFileSync(sysctlPath(key), 'utf8').trim();
const writeSysctl = (key: string, value: string): void => fs.writeFileSync(sysctlPath(key), `${value}\n`);

interface LoAddress {
  local: string;
  label: string;
}

function loAddresses(): LoAddress[] {
  const links = JSON.parse(run('ip', ['-4', '-j', 'addr', 'show', 'dev', 'lo'])) as Array<{ addr_info: Array<{ local: string; label?: string }> }>;
  return links.flatMap((l) => l.addr_info.map((a) => ({ local: a.local, label: a.label ?? 'lo' })));
}

function tablesOf(r: RuleSet): string[] {
  return [...new Set([...Object.keys(r.chains), ...r.jumps.map((j) => j.table), SAVED_TABLE])];
}

const restore = (input: string, family: Family = 4): void => {
  if (input.trim()) run(RESTORE[family], ['-w', '--noflush'], input);
};

/** Installs the rule set; on any failure undoes what it did and throws. */
export function install(r: RuleSet, log: (line: string) => void = () => {}): void {
  const tables = tablesOf(r);
  const before = readTables(tables);
  const undo: Array<[string, () => void]> = [];
  try {
    // The sets first: the rules name them. (And the tunnel devices before
    // the sysctls' `*` is expanded: they get theirs too.)
    if (r.kernel) applyKernelPath(r.kernel, undo);
    const sysctls = expandSysctls(r.sysctls);
    const old = new Map(sysctls.map(([k]) => [k, readSysctl(k)]));
    restore(installInput(r, before, old));
    undo.push(['rules', () => restore(rollbackInput(before, readTables(tables)))]);
    // Before the sysctls: IPv6 forwarding comes on with its redirects already dropped.
    const before6 = installRules6(r.ipv6, undo);
    for (const [k, v] of sysctls) {
      undo.push([k, () => writeSysctl(k, old.get(k)!)]);
      writeSysctl(k, v);
    }
    setAddresses(r.localAddresses, undo);
    setAddresses6(r.ipv6?.localAddresses ?? [], before6, undo);
  } catch (err) {
    log(`dpr: install failed: ${(err as Error).message}; undoing what it changed`);
    for (const [what, f] of undo.reverse()) {
      try {
        f();
      } catch (e) {
        log(`dpr: could not undo ${what}: ${(e as Error).message}`);
      }
    }
    throw err;
  }
}

/**
 * The ip6tables rules; without IPv6 in the configuration, those an earlier
 * install left (the cluster dropped IPv6) go. Returns the tables as they were,
 * for setAddresses6. Where ip6tables cannot be read and nothing is wanted of
 * it (a kernel without IPv6), there is nothing to do.
 */
function installRules6(r6: RuleSet6 | null, undo: Array<[string, () => void]>): Map<string, TableState> {
  let before: Map<string, TableState>;
  try {
    before = readTables(ALL_TABLES, 6);
  } catch (err) {
    if (r6) throw err;
    return new Map();
  }
  const input = r6 ? installInput(r6, before, new Map()) : removalInput(before);
  restore(input, 6);
  undo.push(['ip6tables rules', () => restore(rollbackInput(before, readTables(ALL_TABLES, 6)), 6)]);
  return before;
}

/** The IPv6 addresses DPR_LO6's comments name: the ones dpr put on lo. */
export function lo6Listed(tables: Map<string, TableState>): string[] {
  return (tables.get(LO6_TABLE)?.chains.get(LO6_CHAIN) ?? []).flatMap((r) => /--comment "?lo=([0-9a-f:.]+)"?/.exec(r)?.[1] ?? []);
}

function loAddresses6(): string[] {
  const links = JSON.parse(run('ip', ['-6', '-j', 'addr', 'show', 'dev', 'lo'])) as Array<{ addr_info: Array<{ local: string }> }>;
  return links.flatMap((l) => l.addr_info.map((a) => a.local));
}

/**
 * Our IPv6 addresses on lo become exactly `wanted`. IPv6 addresses take no
 * label, so what is ours is what DPR_LO6 listed before this install; an
 * address in `wanted` that someone else put on lo stops the install (as a
 * clash of restoreCidr6 with a block in use).
 */
function setAddresses6(wanted: string[], before: Map<string, TableState>, undo: Array<[string, () => void]>): void {
  if (!wanted.length && !lo6Listed(before).length) return;
  const present = loAddresses6();
  const mine = lo6Listed(before).filter((a) => present.includes(a));
  for (const a of wanted) {
    if (mine.includes(a)) continue;
    if (present.includes(a)) throw new Error(`${a} is on lo already, not put there by dpr: restoreCidr6 must be a block used nowhere else`);
    undo.push([`address ${a}`, () => run('ip', ['-6', 'addr', 'del', `${a}/128`, 'dev', 'lo'])]);
    run('ip', ['-6', 'addr', 'replace', `${a}/128`, 'dev', 'lo']);
  }
  for (const a of mine.filter((m) => !wanted.includes(m))) {
    undo.push([`address ${a}`, () => run('ip', ['-6', 'addr', 'add', `${a}/128`, 'dev', 'lo'])]);
    run('ip', ['-6', 'addr', 'del', `${a}/128`, 'dev', 'lo']);
  }
}

/** Our addresses on lo become exactly `wanted`: those of hosts gone from the config go too. */
function setAddresses(wanted: string[], undo: Array<[string, () => void]>): void {
  const present = loAddresses();
  const mine = present.filter((a) => a.label === ADDRESS_LABEL).map((a) => a.local);
  for (const a of wanted) {
    const had = present.find((p) => p.local === a);
    if (had?.label === ADDRESS_LABEL) continue;
    undo.push([`address ${a}`, () => (had ? run('ip', ['addr', 'replace', `${a}/32`, 'dev', 'lo', 'label', had.label]) : run('ip', ['addr', 'del', `${a}/32`, 'dev', 'lo']))]);
    run('ip', ['addr', 'replace', `${a}/32`, 'dev', 'lo', 'label', ADDRESS_LABEL]);
  }
  for (const a of mine.filter((m) => !wanted.includes(m))) {
    undo.push([`address ${a}`, () => run('ip', ['addr', 'add', `${a}/32`, 'dev', 'lo', 'label', ADDRESS_LABEL])]);
    run('ip', ['addr', 'del', `${a}/32`, 'dev', 'lo']);
  }
}

/**
 * Removes everything of ours, whatever version installed it: every DPR_*
 * chain and the jumps into it in raw, mangle, nat and filter, every lo:dpr
 * address, and puts back the sysctl values saved at the first install.
 */
export function uninstall(log: (line: string) => void = () => {}): void {
  const now = readTables(ALL_TABLES);
  const saved = readSaved(now.get(SAVED_TABLE)?.chains.get(SAVED_CHAIN) ?? []);
  restore(removalInput(now));
  uninstall6();
  removeKernelPath();
  for (const [k, v] of saved) {
    try {
      writeSysctl(k, v);
    } catch (err) {
      // An interface that is gone since: nothing to put back.
      if (fs.existsSync(sysctlPath(k))) log(`dpr: cannot restore ${k}=${v}: ${(err as Error).message}`);
    }
  }
  for (const a of loAddresses().filter((x) => x.label === ADDRESS_LABEL)) run('ip', ['addr', 'del', `${a.local}/32`, 'dev', 'lo']);
}

/** The IPv6 part: every DPR_* chain of ip6tables, the addresses DPR_LO6 names. Nothing where ip6tables cannot be read (no IPv6). */
function uninstall6(): void {
  let now: Map<string, TableState>;
  try {
    now = readTables(ALL_TABLES, 6);
  } catch {
    return;
  }
  const listed = lo6Listed(now);
  restore(removalInput(now), 6);
  if (!listed.length) return;
  const present = loAddresses6();
  for (const a of listed.filter((x) => present.includes(x))) run('ip', ['-6', 'addr', 'del', `${a}/128`, 'dev', 'lo']);
}
