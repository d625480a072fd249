// A stand-in for the addon's Queue, for running the daemon without root and
// without a kernel queue: it records what the daemon pushes (lookup tables,
// draining, weights, the threshold, load counts, host lists, peers' MACs).
import { Engine, type EngineOptions, type LoadBoard, type NativeEngine, type FlowCounts, type Malformed, type NativeQueue, type Note, type QueueOptions, type QueueStats } from '../../lib/native';

const zeroFlows: FlowCounts = { pending: 0, syn: 0, probation: 0, established: 0, closing: 0, reset: 0 };
// Typed in full, so a counter the addon gains must be added here too.
const zeroNotes: Record<Note, number> = {
  not_service: 0, not_peer_port: 0, bad_origin: 0, no_flow: 0, no_flow_hashed: 0, table_full: 0, kept_for_local_socket: 0,
  draining: 0, probe_limit: 0, rst_in_window: 0, rst_out_of_window: 0, syn_on_flow: 0, syn_redecided: 0,
  peer_mac_unknown: 0, bad_peer_mac: 0, icmp_forwarded: 0, icmp_local: 0, icmp_no_flow: 0, icmp_restored: 0,
  icmp_not_ours: 0, oversize: 0, reused_here: 0, host_gone: 0,
};
const zeroMalformed: Record<Malformed, number> = {
  truncated_ip: 0, not_ipv4: 0, bad_ihl: 0, bad_total_length: 0, fragment: 0, not_tcp: 0, truncated_tcp: 0, bad_tcp_offset: 0,
  truncated_ipv6: 0, bad_ipv6_ext: 0,
};

function zeroStats(queueNum: number): QueueStats {
  return {
    queueNum, packets: 0, bytes: 0,
    actions: { accept: 0, forward: 0, restore: 0, drop: 0 },
    malformed: { ...zeroMalformed },
    notes: { ...zeroNotes },
    newFlows: { local: 0, forwarded: 0, byHost: [] },
    checksums: { full: 0, incremental: 0 },
    flows: { ...zeroFlows, forwarded: { ...zeroFlows }, expired: 0, closed: 0 },
    ipv6: { packets: 0, flows: 0 },
    queue: {
      batches: 0, batchPackets: 0, batchMax: 0, roundsCut: 0, recvErrors: 0, enobufs: 0, eintr: 0, sendErrors: 0,
      batchesSplit: 0, sendLimit: 0, verdictErrors: 0, startupAccepted: 0, startupDropped: 0, sockDiagErrors: 0,
    },
  };
}

export class FakeQueue implements NativeQueue {
  /** Every FakeQueue made, by role, so a test can reach the daemon's. */
  static readonly made: FakeQueue[] = [];
  readonly tables: number[][] = [];
  readonly draining: boolean[] = [];
  /** Every host list pushed by a reload: [serviceAddrs, clusterAddrs]; the IPv6 lists beside (empty: none). */
  readonly hosts: Array<[number[], number[]]> = [];
  readonly hosts6: Array<[number[], number[]]> = [];
  /** Every weight list pushed (by host id), every threshold, every load count as [value, inUse]. */
  readonly weights: number[][] = [];
  readonly thresholds: number[] = [];
  readonly loadCounts: Array<[number, number]> = [];
  /** Every peer-MAC table pushed (6 bytes per host id). */
  readonly peerMacs: number[][] = [];
  running = false;
  stopped = false;
  private packetCount = 0;
  private loadEngine: NativeEngine | null = null;

  constructor(readonly options: QueueOptions, readonly engine: EngineOptions) {
    FakeQueue.made.push(this);
  }

  static reset(): void {
    FakeQueue.made.length = 0;
  }

  /** The hosts of the last table pushed (distinct, ascending). */
  lastHosts(): number[] {
    return this.tables.at(-1) ?? [];
  }

  start(): void {
    this.running = true;
  }
  stop(): void {
    this.running = false;
    this.stopped = true;
  }
  setLookupTable(table: Uint16Array): void {
    this.tables.push([...new Set(table)].sort((a, b) => a - b));
  }
  setDraining(draining: boolean): void {
    this.draining.push(draining);
  }
  setHosts(serviceAddrs: Uint32Array, clusterAddrs: Uint32Array, serviceAddrs6?: Uint32Array, clusterAddrs6?: Uint32Array): void {
    this.hosts.push([[...serviceAddrs], [...clusterAddrs]]);
    this.hosts6.push([[...(serviceAddrs6 ?? [])], [...(clusterAddrs6 ?? [])]]);
  }
  setPeerMacs(macs: Uint8Array): void {
    this.peerMacs.push([...macs]);
  }
  setWeights(weights: Uint8Array): void {
    this.weights.push([...weights]);
  }
  setLoadThreshold(threshold: number): void {
    this.thresholds.push(threshold);
  }
  calibrateLoad(value: number, inUse: number): void {
    this.loadCounts.push([value, inUse]);
  }
  /** The board the daemon's peers publish to: a real engine's, so a test can read what arrived (loadEstimate). */
  loadBoard(): LoadBoard {
    return this.engineForLoads().loadBoard();
  }
  engineForLoads(): NativeEngine {
    this.loadEngine ??= new Engine(this.engine);
    return this.loadEngine;
  }
  stats(): QueueStats {
    return zeroStats(this.options.queueNum);
  }
  exportFlows(): Uint32Array {
    return new Uint32Array(0);
  }
  exportFlowsAsync(): Promise<Uint32Array> {
    return Promise.resolve(new Uint32Array(0));
  }
  importFlows(): number {
    return 0;
  }
  exportFlows6(): Uint32Array {
    return new Uint32Array(0);
  }
  exportFlows6Async(): Promise<Uint32Array> {
    return Promise.resolve(new Uint32Array(0));
  }
  importFlows6(): number {
    return 0;
  }
  packets(): number {
    return this.packetCount;
  }
}
