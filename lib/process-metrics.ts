// The daemon process's own metrics, read at scrape time only: CPU, memory,
// file descriptors, start time, and how late the event loop runs (from the
// daemon's 1-s report timer, lib/loop-lag.ts). Not prom-client's default set, whose
// event-loop monitor wakes the process every 10 ms: about 7 ms of CPU per
// second on an idle daemon, seven times the whole daemon's idle budget.
import fs from 'node:fs';
import { Counter, Gauge, type Registry } from 'prom-client';

export function registerProcessMetrics(registry: Registry, loopLagMs: () => number): void {
  const startSeconds = Math.round(Date.now() / 1000 - process.uptime());
  let cpuSeen = 0;
  new Counter({
    name: 'dpr_process_cpu_seconds_total', help: 'CPU time of the daemon (user and system, every thread: the native queue threads too).', registers: [registry],
    collect() {
      const u = process.cpuUsage();
      const total = (u.user + u.system) / 1e6;
      this.inc(Math.max(0, total - cpuSeen));
      cpuSeen = total;
    },
  });
  new Gauge({ name: 'dpr_process_resident_memory_bytes', help: 'Resident memory of the daemon.', registers: [registry], collect() { this.set(process.memoryUsage.rss()); } });
  new Gauge({ name: 'dpr_process_open_fds', help: 'Open file descriptors of the daemon.', registers: [registry], collect() {
    try {
      this.set(fs.readdirSync('/proc/self/fd').length);
    } catch {
      // not Linux: no value
    }
  } });
  new Gauge({ name: 'dpr_process_start_time_seconds', help: 'When the daemon started, seconds since 1970.', registers: [registry] }).set(startSeconds);
  new Gauge({ name: 'dpr_nodejs_heap_size_used_bytes', help: 'JavaScript heap in use.', registers: [registry], collect() { this.set(process.memoryUsage().heapUsed); } });
  new Gauge({
    name: 'dpr_nodejs_eventloop_lag_max_seconds', help: 'The longest the event loop ran a 1-s timer of the daemon late over the last 10 s.', registers: [registry],
    collect() { this.set(loopLagMs() / 1000); },
  });
}
