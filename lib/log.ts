// One winston logger for the process; modules take a child with their name.
// JSON when stdout is not a terminal (journald, files, collectors), readable
// text when a person watches.
import winston from 'winston';

const level = process.env.DPR_LOG_LEVEL ?? 'info';

const format = process.stdout.isTTY
  ? winston.format.combine(
      winston.format.timestamp({ format: 'HH:mm:ss.SSS' }),
      winston.format.printf(({ timestamp, level: lvl, message, module, ...rest }) => {
        const extra = Object.keys(rest).length ? ' ' + JSON.stringify(rest) : '';
        return `${timestamp} ${lvl} [${module ?? 'dpr'}] ${message}${extra}`;
      }),
    )
  : winston.format.combine(winston.format.timestamp(), winston.format.json());

export const rootLogger = winston.createLogger({
  level,
  format,
  transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn'] })],
});

export type Logger = winston.Logger;

export function logger(module: string): Logger {
  return rootLogger.child({ module });
}

export function setLogLevel(newLevel: string): void {
  rootLogger.level = newLevel;
}

/**
 * Logs at most one line per `intervalMs` for a recurring condition, with the
 * number of times it happened since the last line (for per-packet anomalies).
 */
export class RateLimitedWarning {
  private last = 0;
  private suppressed = 0;
  constructor(private readonly log: Logger, private readonly intervalMs = 10_000) {}

  warn(message: string, meta: Record<string, unknown> = {}): void {
    const now = Date.now();
    if (now - this.last < this.intervalMs) {
      this.suppressed++;
      return;
    }
    this.log.warn(message, this.suppressed ? { ...meta, suppressed: this.suppressed } : meta);
    this.last = now;
    this.suppressed = 0;
  }
}
