#!/usr/bin/env node
// The `dpr` command: start the daemon, check a configuration, print the rules,
// and ask the running daemon for its status or to drain.
import { Command, CommanderError, Option } from 'commander';
import { ConfigError, forwardedInAddresses, loadConfig, thisHost, type DprConfig, type LoadOptions } from './config';
import type { DaemonStatus } from './daemon';
import { DaemonUnreachable, endpointOf, fetchStatus, requestDrain, requestReload, requestUndrain, type Endpoint } from './daemon-client';
import { EXIT } from './exit-codes';
import { forwardedInConnections, preflight } from './host';
import { Lifecycle } from './lifecycle';
import { logger, setLogLevel, type Logger } from './log';
import { Progress, sleep, waitWithProgress } from './progress';
import { install, uninstall } from './install';
import { modeProblem } from './mode-support';
import { openKernelFlows } from './kernel-flows';
import { renderInstallScript, renderRules } from './rules';
import { lastKnown } from './membership/resolve';
import { buildView, renderText, type Sample } from './status-view';
import { packageVersion } from './version';

const configOption = new Option('-c, --config <file>', 'configuration file (JSON)').env('DPR_CONFIG');

// `dpr check | head -1`: the reader left; the rest of the output has nobody to read it.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(EXIT.ok);
    throw err;
  });
}

function loadOrExit(file: string | undefined, options: Omit<LoadOptions, 'file'> = {}): Readonly<DprConfig> {
  try {
    return loadConfig({ file, ...options });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`dpr: ${err.message}\n`);
      process.exit(EXIT.config);
    }
    throw err;
  }
}

async function start(opts: { config?: string; skipChecks?: boolean }): Promise<void> {
  const file = loadOrExit(opts.config);
  setLogLevel(file.log.level);
  const log = logger('main');
  const rendered = renderRules(lastKnown(file));
  const me = thisHost(file);
  const six = me.service6;
  const checks = preflight(me.service, file.servicePorts, rendered.jumps, six ? { service6: six, jumps: rendered.ipv6?.jumps ?? [] } : undefined);
  for (const w of checks.warnings) log.warn(w);
  if (checks.problems.length && !opts.skipChecks) {
    for (const p of checks.problems) log.error(p);
    process.stderr.write(`dpr: ${checks.problems.length} start-up check(s) failed; nothing was changed\n`);
    process.exit(EXIT.checks);
  }
  // Loaded here so `dpr check` and `dpr rules` work where the addon is not built.
  const { Daemon } = await import('./daemon');
  const { startHttp } = await import('./metrics');
  const { notifyServiceManager } = await import('./native');
  const { ClusterMember, StoppedBeforeStart, createSource } = await import('./membership');
  // The host list comes from the membership source; every later one is a reload.
  const member = new ClusterMember(file, createSource(file, logger('membership')), {
    makeDaemon: (config, next) => new Daemon(config, { loadConfig: next }),
    // A reload reads the same file, with the environment as it is now.
    readFile: () => loadConfig({ file: opts.config }),
    applyRules: (c) => install(renderRules(c)),
    log: logger('membership'),
  });
  let server: import('node:http').Server | null = null;
  // Signal handlers from here on: a SIGTERM while the daemon starts stops it once started.
  const life = new Lifecycle({
    daemon: member,
    log,
    afterStart: async () => {
      if (file.metrics.port) server = await startHttp(member, file.metrics.address, file.metrics.port);
    },
    afterStop: () => server?.close(),
    reload: async () => {
      const r = await member.reload();
      if (r.ok) log.info('SIGHUP: configuration reloaded', { changed: r.changed });
      else log.error('SIGHUP: reload refused, the configuration in use stays', { key: r.key, reason: r.reason });
    },
    notify: (state) => {
      try {
        notifyServiceManager(state);
      } catch (err) {
        log.warn('cannot notify systemd', { state, error: (err as Error).message });
      }
    },
  });
  // etcd: a stop while the host waits to register ends the wait; nothing was started.
  member.stopWaitingOn(life.signal);
  try {
    await life.run();
  } catch (err) {
    if (!(err instanceof StoppedBeforeStart)) throw err;
    log.info('stopped before the first membership came: nothing was started');
    process.exit(EXIT.ok);
  }
  const config = member.config!;
  process.stdout.write(`dpr: host ${config.self} routing (${config.policy} policy, ${config.membership.source} membership)${server ? `, metrics on http://${config.metrics.address}:${config.metrics.port}/metrics` : ''}\n`);
  await waitForPeers(member, config, log, life.signal);
}

/**
 * The daemon routes from the first moment (what would go to a peer not yet
 * heard is served here), so this only reports: a progress line on a terminal,
 * one log line with the outcome everywhere.
 */
async function waitForPeers(daemon: { status(): DaemonStatus }, config: Readonly<DprConfig>, log: Logger, signal: AbortSignal): Promise<void> {
  const total = config.hosts.length;
  if (total < 2) return;
  const started = Date.now();
  const deadline = started + config.peers.deadAfterMs * 3;
  const down = (): number[] => {
    const up = new Set(daemon.status().peers.filter((p) => p.up).map((p) => p.id));
    return config.hosts.map((h) => h.id).filter((id) => id !== config.self && !up.has(id));
  };
  const progress = new Progress();
  let missing = down();
  try {
    while (missing.length && Date.now() < deadline && !signal.aborted) {
      progress.update(`waiting for peers: ${total - missing.length}/${total} up`);
      await sleep(100);
      missing = down();
    }
  } finally {
    progress.done();
  }
  if (signal.aborted) return;
  const meta = { up: total - missing.length, hosts: total, waitedMs: Date.now() - started };
  if (!missing.length) log.info(`peers: ${total}/${total} up`, meta);
  else log.warn(`peers: ${meta.up}/${total} up; still down: ${missing.join(', ')} (this host serves their share until they are heard)`, { ...meta, down: missing });
}

function rules(opts: { config?: string; format: string }): void {
  const config = loadOrExit(opts.config);
  const r = renderRules(lastKnown(config));
  switch (opts.format) {
    // iptables-restore input; a dual-stack host's ip6tables input is its own format (both feed one tool each).
    case 'restore': process.stdout.write(r.restore + (r.ipv6 ? '# and for ip6tables-restore: dpr rules --format restore6\n' : '')); break;
    case 'restore6': process.stdout.write(r.ipv6?.restore ?? '# no IPv6 addresses in hosts: no ip6tables rules\n'); break;
    case 'script': process.stdout.write(renderInstallScript(r)); break;
    case 'json': process.stdout.write(JSON.stringify(r, null, 2) + '\n'); break;
    default:
      process.stderr.write(`dpr: --format must be restore, restore6, script or json, not '${opts.format}'\n`);
      process.exit(EXIT.config);
  }
}

/** A mode this host cannot run stops `dpr check` and `dpr install` as a bad key would. */
function modeOrExit(config: Readonly<DprConfig>): void {
  const problem = modeProblem(config);
  if (!problem) return;
  process.stderr.write(`dpr: config: mode: ${problem}\n`);
  process.exit(EXIT.config);
}

function check(opts: { config?: string }): void {
  const config = loadOrExit(opts.config);
  modeOrExit(config);
  if (config.membership.source === 'etcd') {
    const me = thisHost(config);
    const e = config.membership.etcd;
    process.stdout.write(`config ok: etcd membership (${e.endpoints.join(', ')}, prefix ${e.prefix}), this host ${me.service}/${me.cluster}, id ${config.self ?? 'claimed at start'}, policy ${config.policy}, mode ${config.mode}\n`);
    process.stdout.write("# with the peers of the claim file's last list, if any; the daemon adds and retires peers' rules as they come and go\n");
  } else {
    process.stdout.write(`config ok: host ${config.self} of ${config.hosts.length}, policy ${config.policy}, mode ${config.mode}\n`);
  }
  process.stdout.write(renderInstallScript(renderRules(lastKnown(config))));
}

/** iptables/install.sh: the configuration is checked whole before anything changes. */
function installCommand(opts: { config?: string }): void {
  const config = loadOrExit(opts.config);
  modeOrExit(config);
  // etcd: the peers of the last list stay, so a restart does not cut their forwarded connections off.
  const r = renderRules(lastKnown(config));
  try {
    install(r, (line) => process.stderr.write(`${line}\n`));
  } catch (err) {
    process.stderr.write(`dpr: install failed, nothing changed: ${(err as Error).message}\n`);
    process.exit(EXIT.failure);
  }
  process.stdout.write(`dpr: installed: chains ${Object.values(r.chains).flat().join(', ')}, ${r.sysctls.length} sysctls, ${r.localAddresses.length} restore addresses on lo${r.ipv6 ? `; IPv6: chains ${Object.values(r.ipv6.chains).flat().join(', ')}, ${r.ipv6.localAddresses.length} restore addresses on lo` : ''} (iptables -t raw -S DPR_PRE${r.ipv6 ? ', ip6tables -t raw -S DPR_PRE' : ''} to see the rules)\n`);
}

/** iptables/uninstall.sh: everything of ours is found by name, so no configuration is needed. */
function uninstallCommand(): void {
  try {
    uninstall((line) => process.stderr.write(`${line}\n`));
  } catch (err) {
    process.stderr.write(`dpr: uninstall failed: ${(err as Error).message}\n`);
    process.exit(EXIT.failure);
  }
  process.stdout.write('dpr: removed: DPR_* chains and their jumps (iptables and ip6tables), lo:dpr addresses and the IPv6 ones DPR_LO6 named; sysctls set back to their values before the first install\n');
}

function endpointOrExit(config: Readonly<DprConfig>): Endpoint {
  try {
    return endpointOf(config);
  } catch (err) {
    return fail(err);
  }
}

/** Unreachable daemons and refusals end the command with their message; anything else is a bug. */
function fail(err: unknown): never {
  if (err instanceof DaemonUnreachable) {
    process.stderr.write(`dpr: ${err.message}\n`);
    process.exit(EXIT.failure);
  }
  throw err;
}

/** Two samples a second apart: connection rates need a time base. */
async function sampleTwice(ep: Endpoint): Promise<[Sample, Sample]> {
  const first: Sample = { status: await fetchStatus(ep), at: Date.now() };
  await waitWithProgress(1000, 'measuring connection rates');
  const second: Sample = { status: await fetchStatus(ep), at: Date.now() };
  return [first, second];
}

// status and drain need only the metrics endpoint: no key file (root-only) is read.
async function status(opts: { config?: string; json?: boolean }): Promise<void> {
  const config = loadOrExit(opts.config, { checkKey: false });
  const ep = endpointOrExit(config);
  const [first, second] = await sampleTwice(ep).catch(fail);
  // An etcd host's file knows only this host: peers' addresses come from the daemon.
  const listed = config.hosts ?? [{ id: second.status.self, ...thisHost(config) }];
  const addresses = new Map(listed.flatMap((h) => (h.cluster ? [[h.id, h.cluster] as [number, string]] : [])));
  const addresses6 = new Map(listed.flatMap((h) => (h.cluster6 ? [[h.id, h.cluster6] as [number, string]] : [])));
  const view = buildView(first, second, addresses, addresses6);
  process.stdout.write(opts.json ? JSON.stringify(view, null, 2) + '\n' : renderText(view));
}

/**
 * What a restart would break: flows this host forwarded to peers (entry flow
 * table) and flows peers forwarded here (sockets on the restore addresses).
 * Direct local connections survive a restart in the kernel: not counted.
 */
async function forwardedLeft(ep: Endpoint, config: Readonly<DprConfig>): Promise<{ out: number; in: number }> {
  const s = await fetchStatus(ep);
  const f = s.entry?.flows.forwarded;
  // The file's hosts and the daemon's peers (with etcd membership the file lists none).
  const others = [...(config.hosts ?? []).filter((h) => h.id !== s.self).map((h) => h.id), ...s.peers.map((p) => p.id)];
  const out = config.mode === 'rewrite' ? (f ? f.syn + f.established : 0) : openKernelFlows(config, others);
  return { out, in: forwardedInConnections(forwardedInAddresses(config, others), config.servicePorts) };
}

async function waitDrained(ep: Endpoint, config: Readonly<DprConfig>, timeoutMs: number): Promise<boolean> {
  const progress = new Progress();
  const deadline = Date.now() + timeoutMs;
  try {
    for (;;) {
      const left = await forwardedLeft(ep, config);
      if (left.out + left.in === 0) return true;
      if (Date.now() >= deadline) {
        process.stderr.write(`dpr: still ${left.out} forwarded to peers and ${left.in} forwarded from peers after ${timeoutMs} ms\n`);
        return false;
      }
      progress.update(`draining: ${left.out} forwarded to peers, ${left.in} from peers still open`);
      await sleep(250);
    }
  } finally {
    progress.done();
  }
}

async function drain(opts: { config?: string; wait?: boolean; timeout?: string }): Promise<void> {
  const config = loadOrExit(opts.config, { checkKey: false });
  const ep = endpointOrExit(config);
  const answer = await requestDrain(ep).catch(fail);
  process.stdout.write(`dpr: host ${answer.self} ${answer.already ? 'was already draining' : 'is draining'}: it forwards no new connections and peers forward none to it; open connections finish. It stays drained until stopped (SIGTERM) or undrained (dpr undrain).\n`);
  if (!opts.wait) return;
  const timeoutMs = opts.timeout === undefined ? config.drain.timeoutMs : Number(opts.timeout);
  if (!Number.isInteger(timeoutMs) || timeoutMs < 0) {
    process.stderr.write(`dpr: --timeout must be a whole number of ms, not '${opts.timeout}'\n`);
    process.exit(EXIT.config);
  }
  const drained = await waitDrained(ep, config, timeoutMs).catch(fail);
  if (!drained) process.exit(EXIT.failure);
  process.stdout.write('dpr: drained: no forwarded connections left; a restart breaks none\n');
}

async function undrain(opts: { config?: string }): Promise<void> {
  const config = loadOrExit(opts.config, { checkKey: false });
  const answer = await requestUndrain(endpointOrExit(config)).catch(fail);
  process.stdout.write(answer.was
    ? `dpr: host ${answer.self} is no longer draining: it forwards new connections again and peers send it theirs\n`
    : `dpr: host ${answer.self} was not draining\n`);
}

/** Asks the running daemon to re-read its configuration; exit 2 if it refuses it (the key is named), as `dpr check` would. */
async function reload(opts: { config?: string }): Promise<void> {
  const config = loadOrExit(opts.config, { checkKey: false });
  const answer = await requestReload(endpointOrExit(config)).catch(fail);
  if (answer.ok) {
    process.stdout.write(answer.changed.length ? `dpr: reloaded: ${answer.changed.join(', ')}\n` : 'dpr: reloaded: nothing changed\n');
    return;
  }
  process.stderr.write(`dpr: reload refused, the daemon keeps its configuration: ${answer.key}: ${answer.reason}\n`);
  process.exit(EXIT.config);
}

const program = new Command('dpr')
  .description('Distributed Packet Rewriting: every host of a web cluster routes connections')
  .version(packageVersion(), '-V, --version', 'print the version')
  .showHelpAfterError()
  // Usage errors are configuration errors too (a typo in ExecStart): exit 2, not restarted.
  .exitOverride((err: CommanderError) => {
    process.exit(err.exitCode === 0 ? EXIT.ok : EXIT.config);
  });
program.command('version').description('print the version').action(() => {
  process.stdout.write(`${packageVersion()}\n`);
});
program.command('start').description('run the daemon (SIGTERM drains, then exits; a second SIGTERM or SIGINT exits at once)').addOption(configOption)
  .option('--skip-checks', 'start even when start-up checks fail (for debugging)')
  .action(start);
program.command('check').description('validate a configuration and print the rules it would install; changes nothing')
  .addOption(configOption).action(check);
program.command('rules').description('print the iptables rules for this host')
  .addOption(configOption)
  .option('-f, --format <format>', 'restore | restore6 | script | json', 'restore')
  .action(rules);
program.command('install').description('install the rules, sysctls and restore addresses, all or nothing (what iptables/install.sh runs)')
  .addOption(configOption).action(installCommand);
program.command('uninstall').description('remove every DPR_* chain, lo:dpr address, and put back the sysctls (what iptables/uninstall.sh runs)')
  .action(uninstallCommand);
program.command('status').description("show the local daemon's view: hosts, flows, connection rates (reads /status on metrics.address:metrics.port)")
  .addOption(configOption)
  .option('--json', 'print JSON instead of a table')
  .action(status);
program.command('drain').description('ask the local daemon to drain: no new forwarded connections; it keeps running until stopped or undrained')
  .addOption(configOption)
  .option('--wait', 'wait until no forwarded connection is left (exit 1 if drain.timeoutMs passes first)')
  .option('--timeout <ms>', 'with --wait: how long to wait (default: drain.timeoutMs)')
  .action(drain);

program.command('undrain').description('end a drain: the local daemon forwards new connections again and peers send it theirs')
  .addOption(configOption).action(undrain);
program.command('reload').description('make the local daemon re-read its configuration (as SIGHUP does); exit 2 naming the key if it refuses it')
  .addOption(configOption).action(reload);

program.parseAsync(process.argv).catch((err: Error) => {
  process.stderr.write(`dpr: ${err.message}\n`);
  process.exit(EXIT.failure);
});
