#!/usr/bin/env node
// The `dpr` command: start the daemon, check a configuration, print the rules.
import { Command, Option } from 'commander';
import { ConfigError, loadConfig, selfHost, type DprConfig } from './config';
import { preflight } from './host';
import { logger, setLogLevel } from './log';
import { renderInstallScript, renderRules, renderUninstallScript } from './rules';

const configOption = new Option('-c, --config <file>', 'configuration file (JSON)').env('DPR_CONFIG');

function loadOrExit(file: string | undefined): Readonly<DprConfig> {
  try {
    return loadConfig({ file });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`dpr: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}

async function start(opts: { config?: string; skipChecks?: boolean }): Promise<void> {
  const config = loadOrExit(opts.config);
  setLogLevel(config.log.level);
  const log = logger('main');
  const me = selfHost(config);
  const checks = preflight(me.service, config.servicePorts);
  for (const w of checks.warnings) log.warn(w);
  if (checks.problems.length && !opts.skipChecks) {
    for (const p of checks.problems) log.error(p);
    process.stderr.write(`dpr: ${checks.problems.length} start-up check(s) failed; nothing was changed\n`);
    process.exit(3);
  }
  // Loaded here so `dpr check` and `dpr rules` work where the addon is not built.
  const { Daemon } = await import('./daemon');
  const { startHttp } = await import('./metrics');
  const daemon = new Daemon(config);
  await daemon.start();
  const server = config.metrics.port ? await startHttp(daemon, config.metrics.address, config.metrics.port) : null;
  let stopping = false;
  const shutdown = async (signal: string, drain: boolean): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log.info('signal', { signal });
    if (drain) await daemon.drain();
    await daemon.stop();
    server?.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM', true));
  process.on('SIGINT', () => void shutdown('SIGINT', false));
  process.stdout.write(`dpr: host ${config.self} routing (${config.policy} policy)${server ? `, metrics on http://${config.metrics.address}:${config.metrics.port}/metrics` : ''}\n`);
}

function rules(opts: { config?: string; format: string }): void {
  const config = loadOrExit(opts.config);
  const r = renderRules(config);
  switch (opts.format) {
    case 'restore': process.stdout.write(r.restore); break;
    case 'script': process.stdout.write(renderInstallScript(r)); break;
    case 'uninstall-script': process.stdout.write(renderUninstallScript(r)); break;
    case 'json': process.stdout.write(JSON.stringify(r, null, 2) + '\n'); break;
    default:
      process.stderr.write(`dpr: --format must be restore, script, uninstall-script or json, not '${opts.format}'\n`);
      process.exit(2);
  }
}

function check(opts: { config?: string }): void {
  const config = loadOrExit(opts.config);
  process.stdout.write(`config ok: host ${config.self} of ${config.hosts.length}, policy ${config.policy}\n`);
  process.stdout.write(renderInstallScript(renderRules(config)));
}

const program = new Command('dpr')
  .description('Distributed Packet Rewriting: every host of a web cluster routes connections')
  .showHelpAfterError();
program.command('start').description('run the daemon').addOption(configOption)
  .option('--skip-checks', 'start even when start-up checks fail (for debugging)')
  .action(start);
program.command('check').description('validate a configuration and print the rules it would install; changes nothing')
  .addOption(configOption).action(check);
program.command('rules').description('print the iptables rules for this host')
  .addOption(configOption)
  .option('-f, --format <format>', 'restore | script | uninstall-script | json', 'restore')
  .action(rules);

program.parseAsync(process.argv).catch((err: Error) => {
  process.stderr.write(`dpr: ${err.message}\n`);
  process.exit(1);
});
