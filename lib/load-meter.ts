// This host's load: established TCP connections on the service ports, IPv4
// and IPv6 (a dual-stack server's IPv4 clients are IPv6 sockets), local and
// forwarded-in alike (both end at the local server).
//
// Measuring costs: the kernel walks its whole established hash for one dump
// (~2 ms of CPU on the development machine, however few sockets match). So it
// is measured only as often as someone needs it fresh:
// - a load-policy decision: at most `decisionMaxAgeMs` old, plus the new
//   connections kept here since (not established yet when measured). Between
//   two dumps (at most `calibrateMs` apart while decisions come), the
//   kernel's count of TCP sockets in use (lib/sockstat.ts, ~4 µs) minus its
//   difference to the last dump stands in for a dump;
// - a heartbeat report (looked at every second by the daemon): re-measured
//   once `reportMaxAgeMs` has passed if traffic passed through the queues
//   since, or once `idleMaxAgeMs` has passed anyway (connections that close
//   while no new ones come only make an idle host look busier than it is,
//   which nobody acts on).
// Every new value goes to the heartbeats (onMeasured), so under the load
// policy, which measures at decision time, reports are as fresh as that.
import { countEstablished } from './native';
import { activeConnections } from './host';
import { RateLimitedWarning, type Logger } from './log';

export interface LoadMeterOptions {
  ports: readonly number[];
  decisionMaxAgeMs: number;
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
  /** A cheap count that moves with the load (lib/sockstat.ts), for decisions between dumps; null: none. */
  quick?: (() => number | null) | null;
  /** Decisions re-dump at least this often (the quick count drifts from the exact one). */
  calibrateMs?: number;
}

export class LoadMeter {
  private value = 0;
  private measuredAt = -Infinity;
  /** When the last dump ran, and the quick count's difference to it. */
  private dumpedAt = -Infinity;
  private quickOffset: number | null = null;
  private activityAtReport = -1;
  /** New connections kept here since the last measurement. */
  private kept = 0;
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

  /** Own load for a new-flow decision: fresh, with the connections kept since counted in. */
  forDecision(): number {
    const now = this.now();
    if (now - this.measuredAt < this.o.decisionMaxAgeMs) return this.value + this.kept;
    if (!this.quickMeasure(now)) this.measure();
    return this.value + this.kept;
  }

  /** The quick count in place of a dump, while the calibration is recent; false if it cannot. */
  private quickMeasure(now: number): boolean {
    if (this.quickOffset === null || now - this.dumpedAt >= (this.o.calibrateMs ?? 1000)) return false;
    const q = this.o.quick?.() ?? null;
    if (q === null) return false;
    this.measuredAt = now;
    this.kept = 0;
    this.value = Math.max(0, q - this.quickOffset);
    this.quickMeasurements++;
    this.o.onMeasured?.(this.value);
    return true;
  }

  /** A new connection was kept here: it counts until the next measurement sees it. */
  noteKept(): void {
    this.kept++;
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
    // Whatever happens below, what was kept before now is in the kernel's
    // count or gone: counting it again would inflate the load for ever.
    this.kept = 0;
    try {
      this.value = this.count(this.o.ports);
      this.dumpedAt = this.measuredAt;
      const q = this.o.quick?.() ?? null;
      this.quickOffset = q === null ? null : q - this.value;
      this.o.onMeasured?.(this.value);
      return;
    } catch (err) {
      // sock_diag missing (a kernel without inet_diag): /proc is slower but right.
      this.warning.warn('cannot count established connections with sock_diag; reading /proc/net/tcp and tcp6', { error: (err as Error).message });
    }
    try {
      this.value = this.fallback(this.o.ports);
      this.o.onMeasured?.(this.value);
    } catch (err) {
      this.warning.warn('cannot read /proc/net/tcp either; the load stays at its last value', { error: (err as Error).message });
    }
  }
}
