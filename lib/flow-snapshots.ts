// The flow tables (IPv4 and IPv6) kept across restarts (lib/flow-state.ts is the file format):
// read back before the entry queue starts, saved every `flows.snapshotMs`
// while running (for a crash) and once at exit. A snapshot is skipped when no
// packet passed the entry queue since the last one: the table only aged, and
// ages are what the file records anyway.
import { loadFlows, saveFlows } from './flow-state';
import type { Logger } from './log';
import type { NativeQueue } from './native';

export interface RestoredFlows {
  flows: number;
  /** Of those, the ones another host serves. */
  forwarded: number;
}

export class FlowSnapshots {
  private timer: NodeJS.Timeout | null = null;
  private packetsAtSave = -1;
  private writing: Promise<void> = Promise.resolve();
  saves = 0;

  constructor(private readonly file: string, private readonly everyMs: number, private readonly log: Logger) {}

  /** Before the entry queue starts: the previous run's flows go on where they went before. */
  restore(entry: NativeQueue): RestoredFlows {
    if (!this.file) return { flows: 0, forwarded: 0 };
    const saved = loadFlows(this.file);
    if (!saved) return { flows: 0, forwarded: 0 };
    // A file with IPv6 flows read by a host without IPv6 (it left the cluster's IPv6): the engine takes none of them.
    const taken = entry.importFlows(saved.words) + (saved.words6.length ? entry.importFlows6(saved.words6) : 0);
    const f = entry.stats().flows.forwarded;
    const restored = { flows: taken, forwarded: f.syn + f.established + f.closing };
    this.log.info('flow table restored', { file: this.file, ...restored, savedAgoMs: saved.savedAgoMs });
    return restored;
  }

  start(entry: NativeQueue): void {
    if (!this.file || this.everyMs <= 0) return;
    this.timer = setInterval(() => void this.save(entry, false), this.everyMs);
    this.timer.unref();
  }

  /** Stops the timer and writes a last snapshot (the queue has stopped: the table is final). */
  async stop(entry: NativeQueue | null): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (entry) await this.save(entry, true);
  }

  private async save(entry: NativeQueue, always: boolean): Promise<void> {
    if (!this.file) return;
    const packets = entry.packets();
    if (!always && packets === this.packetsAtSave) return;
    // One write at a time: a slow disk must not pile snapshots up.
    const previous = this.writing;
    this.writing = (async () => {
      await previous;
      try {
        // Off the event loop: 1M flows take the queue thread tens of ms to walk.
        // Both walks in the queue thread, one after the other; IPv6 beside IPv4 in one file.
        const words = await entry.exportFlowsAsync();
        await saveFlows(this.file, words, await entry.exportFlows6Async());
        this.packetsAtSave = packets;
        this.saves++;
      } catch (err) {
        this.log.warn('cannot save the flow table', { file: this.file, error: (err as Error).message });
      }
    })();
    await this.writing;
  }
}
