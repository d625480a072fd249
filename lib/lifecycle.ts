// The daemon process's life between `dpr start` and exit: signal handlers
// from before the daemon starts, one shutdown whatever asks for it, a second
// SIGTERM that cuts a drain short, and a shutdown that fails is logged and
// ends the process non-zero instead of vanishing as an unhandled rejection.
import { EventEmitter } from 'node:events';
import { EXIT } from './exit-codes';

export interface Runnable {
  start(): Promise<void>;
  /** Resolves true when nothing forwarded is left, false on its timeout. */
  drain(): Promise<boolean>;
  stop(): Promise<void>;
}

interface Log {
  info(message: string, meta?: object): unknown;
  warn(message: string, meta?: object): unknown;
  error(message: string, meta?: object): unknown;
}

export interface LifecycleOptions {
  daemon: Runnable;
  log: Log;
  /** Runs after the daemon started (metrics server, readiness); part of start-up. */
  afterStart?: () => Promise<void>;
  /** Runs after the daemon stopped, before exit (closing the metrics server). */
  afterStop?: () => void;
  /** Tells the service manager what happens ('READY=1', 'STOPPING=1'); see lib/notify.ts. */
  notify?: (state: string) => void;
  /** SIGHUP. Absent: logged and ignored, so a reload never kills the daemon. */
  reload?: () => Promise<void>;
  /** Where signals come from (tests pass an emitter). */
  signals?: EventEmitter;
  exit?: (code: number) => void;
}

type Phase = 'starting' | 'running' | 'draining' | 'stopping';

export class Lifecycle {
  private phase: Phase = 'starting';
  /** A stop asked for during start-up: carried out once start() is done. */
  private pending: 'drain' | 'now' | null = null;
  private hurry: (() => void) | null = null;
  private readonly stopped = new AbortController();
  private readonly o: Required<Omit<LifecycleOptions, 'afterStart' | 'afterStop' | 'reload'>> & LifecycleOptions;

  constructor(options: LifecycleOptions) {
    this.o = { notify: () => {}, signals: process, exit: (code) => process.exit(code), ...options };
    this.o.signals.on('SIGTERM', () => this.onSignal('SIGTERM', 'drain'));
    this.o.signals.on('SIGINT', () => this.onSignal('SIGINT', 'now'));
    this.o.signals.on('SIGHUP', () => this.onReload());
  }

  /** Aborted once a stop begins: for waits that should end with it. */
  get signal(): AbortSignal {
    return this.stopped.signal;
  }

  /** Starts the daemon; a signal that came meanwhile is obeyed right after. Rejects if start-up fails. */
  async run(): Promise<void> {
    await this.o.daemon.start();
    await this.o.afterStart?.();
    this.phase = 'running';
    this.o.notify('READY=1');
    if (this.pending) void this.shutdown(this.pending);
  }

  private onSignal(signal: string, how: 'drain' | 'now'): void {
    this.o.log.info('signal', { signal, phase: this.phase });
    if (this.phase === 'starting') {
      // Stopping half-way would leave queues bound with nobody to stop them.
      this.pending = this.pending === 'now' ? 'now' : how;
      this.stopped.abort();
      return;
    }
    if (this.phase === 'running') {
      void this.shutdown(how);
      return;
    }
    if (this.phase === 'draining' && this.hurry) {
      // A second SIGTERM (or a SIGINT) during a drain: stop at once.
      this.o.log.warn('second signal during the drain: stopping now; forwarded connections left may stall until a daemon runs again');
      this.hurry();
    }
  }

  private onReload(): void {
    if (this.phase !== 'running') {
      this.o.log.warn('SIGHUP while the daemon is not running (starting or stopping): nothing reloaded', { phase: this.phase });
      return;
    }
    if (!this.o.reload) {
      this.o.log.warn('SIGHUP: this version cannot reload its configuration; restart dpr to apply a change');
      return;
    }
    this.o.reload().catch((err: Error) => this.o.log.error('reload failed', { error: err.message }));
  }

  private async shutdown(how: 'drain' | 'now'): Promise<void> {
    this.stopped.abort();
    this.o.notify('STOPPING=1');
    try {
      if (how === 'drain') {
        this.phase = 'draining';
        const cut = new Promise<'cut'>((resolve) => (this.hurry = () => resolve('cut')));
        await Promise.race([this.o.daemon.drain(), cut]);
      }
      this.phase = 'stopping';
      await this.o.daemon.stop();
      this.o.afterStop?.();
    } catch (err) {
      this.o.log.error('shutdown failed', { error: (err as Error).message });
      this.o.exit(EXIT.failure);
      return;
    }
    this.o.exit(EXIT.ok);
  }
}
