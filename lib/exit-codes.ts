// The exit codes of the `dpr` command. docs/dpr.service's
// RestartPreventExitStatus names `config` and `checks`: systemd must not
// restart a daemon that needs a person (test/70.systemd holds the unit to it).
export const EXIT = {
  ok: 0,
  /** Anything else: a daemon that cannot be reached, a drain that timed out, a crash. */
  failure: 1,
  /** Bad configuration or usage: the key (or option) and the reason are printed. */
  config: 2,
  /** Start-up checks failed (rules not installed, sysctls, listeners): each says how to fix it. */
  checks: 3,
} as const;
