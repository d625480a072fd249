// This host's load: established TCP connections on the service ports, IPv4
// and IPv6 (a dual-stack server's IPv4 clients are IPv6 sockets), local and
// forwarded-in alike (both end at the local server).
//
// Measuring costs: the kernel walks its whole established hash for one dump
// (~2 ms of CPU on the development machine, however few sockets match). So it
// is measured only as often as someone needs it fresh: a heartbeat report
// (looked at every heartbeat while traffic passes, every second when idle)
// is re-measured once `reportMaxAgeMs` has passed if traffic passed through
// the queues since, or once `idleMaxAgeMs` has passed anyway (connections
// that close while no new ones come only make an idle host look busier than
// it is, which nobody acts on). Between two dumps (at most `calibrateMs`
// apart), the kernel's count of TCP sockets in use (lib/sockstat.ts, ~4 µs)
// minus its difference to the last dump stands in for a dump.
//
// Every new value goes to the heartbeats (onMeasured); every dump, with the
// sockets-in-use count read with it, goes to the entry queue (onCounted),
// which carries it forward the same way for the load policy's decisions
// (native/own_load.h).
import { countEstablished } from './native';
import { activeConnections } from './host';
import { RateLimitedWarning, type Logger } from './log';

export interface LoadMeterOptions {
  ports: readonly number[];
  reportMaxAgeMs: number;
  idleMaxAgeMs: number;
  /** Packets the queues have seen: a change means traffic passed. */
  activity: () => number;
  log: Logger;
  /** The kernel dump (lib/native.ts); its fallback reads /proc (lib/host.ts). */
  count?: (ports: readonly number[]) => number;
  fallback?: (ports: readonly number[]) => number;
  now?: () => number;
  /** Told every new value (the heartbeats carry it). */
  onMeasured?: (load: number) => void;
  /** Told every exact count, with the quick count read with it (null: none). */
  onCounted?: (load: number, quick: number | null) => void;
  /** A cheap count that moves with the load (lib/sockstat.ts), for measurements between dumps; null: none. */
  quick?: (() => number | null) | null;
  /** A dump at least this often while the quick count stands in (it drifts from the exact one). */
  calibrateMs?: number;
}

export class LoadMeter {
  private value = 0;
  private measuredAt = -Infinity;
  /** When the last dump ran, and the quick count's difference to it. */
  private dumpedAt = -Infinity;
  private quickOffset: number | null = null;
  private activityAtReport = -1;
  private readonly warning: RateLimitedWarning;
  private readonly count: (ports: readonly number[]) => number;
  private readonly fallback: (ports: readonly number[]) => number;
  private readonly now: () => number;
  /** Dumps, and quick counts that stood in for one (for the bench and tests). */
  measurements = 0;
  quickMeasurements = 0;

  constructor(private readonly o: LoadMeterOptions) {
    this.count = o.count ?? countEstablished;
    this.fallback = o.fallback ?? activeConnections;
    this.now = o.now ?? (() => performance.now());
    this.warning = new RateLimitedWarning(o.log);
  }

  /** The last measured value, as /status shows it. */
  get last(): number {
    return this.value;
  }

  /** The quick count in place of a dump, while the calibration is recent; false if it cannot. */
  private quickMeasure(now: number): boolean {
    if (this.quickOffset === null || now - this.dumpedAt >= (this.o.calibrateMs ?? 1000)) return false;
    const q = this.o.quick?.() ?? null;
    if (q === null) return false;
    this.measuredAt = now;
    this.value = Math.max(0, q - this.quickOffset);
    this.quickMeasurements++;
    this.o.onMeasured?.(this.value);
    return true;
  }

  /** Own load for /status (`dpr status`): at most `maxAgeMs` old. */
  forStatus(maxAgeMs: number): number {
    if (this.now() - this.measuredAt >= maxAgeMs) this.measure();
    return this.value;
  }

  /** Own load for a heartbeat; true when traffic passed since the last look (the caller looks again sooner then). */
  forReport(): boolean {
    const now = this.now();
    const age = now - this.measuredAt;
    const activity = this.o.activity();
    const busy = activity !== this.activityAtReport;
    this.activityAtReport = activity;
    if (age >= this.o.idleMaxAgeMs || (busy && age >= this.o.reportMaxAgeMs)) {
      if (!(busy && this.quickMeasure(now))) this.measure();
    }
    return busy;
  }

  measure(): void {
    this.measuredAt = this.now();
    this.measurements++;
    try {
      this.value = this.count(this.o.ports);
      this.dumpedAt = this.measuredAt;
      const q = this.o.quick?.() ?? null;
      this.quickOffset = q === null ? null : q - this.value;
      this.o.onMeasured?.(this.value);
      this.o.onCounted?.(this.value, q);
      return;
    } catch (err) {
      // sock_diag missing (a kernel without inet_diag): /proc is slower but right.
      this.warning.warn('cannot count established connections with sock_diag; reading /proc/net/tcp and tcp6', { error: (err as Error).message });
    }
    try {
      this.value = this.fallback(this.o.ports);
      this.o.onMeasured?.(this.value);
      this.o.onCounted?.(this.value, null);
    } catch (err) {
      this.warning.warn('cannot read /proc/net/tcp either; the load stays at its last value', { error: (err as Error).message });
    }
  }
}
