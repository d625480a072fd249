// The only file that loads the addon. Everything native is reached through the
// typed interface below; nothing untyped crosses the boundary.
import path from 'node:path';

/** An error raised by native code: `code` names the failing step, `errno` the OS error (0 if none). */
export class DprNativeError extends Error {
  readonly code: string;
  readonly errno: number;
  constructor(message: string, code: string, errno: number) {
    super(message);
    this.name = 'DprNativeError';
    this.code = code;
    this.errno = errno;
  }
}

export type Role = 'entry' | 'serve';
export type PolicyName = 'hash' | 'load';
export type Action = 'accept' | 'forward' | 'restore' | 'drop';
export type Malformed =
  | 'truncated_ip' | 'not_ipv4' | 'bad_ihl' | 'bad_total_length' | 'fragment'
  | 'not_tcp' | 'truncated_tcp' | 'bad_tcp_offset'
  | 'truncated_ipv6' | 'bad_ipv6_ext';
export type Note =
  | 'not_service' | 'not_peer_port' | 'bad_origin' | 'no_flow' | 'no_flow_hashed'
  | 'table_full' | 'kept_for_local_socket' | 'draining' | 'probe_limit'
  | 'rst_in_window' | 'rst_out_of_window' | 'syn_on_flow' | 'syn_redecided'
  | 'peer_mac_unknown' | 'bad_peer_mac'
  | 'icmp_forwarded' | 'icmp_local' | 'icmp_no_flow' | 'icmp_restored' | 'icmp_not_ours'
  | 'oversize' | 'reused_here' | 'host_gone';

export interface FlowTimeouts {
  synMs: number;
  /** After the SYN, only bare ACKs with one ACK number so far (absent: 30 s). */
  probationMs?: number;
  establishedMs: number;
  closingMs: number;
  /** After a RST within the client's window (absent: 10 s). */
  resetMs?: number;
}

/** What the data path needs to know; validated in TypeScript before it is passed. */
export interface EngineOptions {
  role: Role;
  policy: PolicyName;
  self: number;
  /** Indexed by host id, IPv4 as unsigned 32-bit numbers; 0 = no host with that id. */
  serviceAddrs: Uint32Array;
  clusterAddrs: Uint32Array;
  /**
   * IPv6, indexed like serviceAddrs: 4 words per host id, each the big-endian
   * value of 4 address bytes (2001:2::a = [0x20010002, 0, 0, 0xa]); all zero:
   * that host has no IPv6. Absent, or zero for `self`: the engine handles no
   * IPv6 (such packets count as `not_ipv4` and pass unchanged).
   */
  serviceAddrs6?: Uint32Array;
  clusterAddrs6?: Uint32Array;
  servicePorts: Uint16Array;
  peerPortBase: number;
  forwardMark: number;
  serveMark: number;
  maxFlows: number;
  maxEmbryonic: number;
  timeouts: FlowTimeouts;
  /** Serve role, peers on one L2 segment: a peer-port packet must come from the MAC of the host its port names (setPeerMacs). */
  checkPeerMacs?: boolean;
  /** Routers between peers: a peer's forwarded ICMP error must arrive with TTL > 254 - this (absent: 0). */
  routersBetween?: number;
  /** Kernel modes: forwarded packets go unchanged, marked marks.forward | id in peerMarkMask, for policy routing. */
  kernelForward?: boolean;
  peerMarkMask?: number;
  /** Load policy: connections per unit of weight below which a host keeps every new one (absent: 0). */
  loadThreshold?: number;
  /** Load policy: the seed of the second choice's random draw (absent: random). Tests only. */
  randomSeed?: number;
  /** Maglev hash key (16 bytes), the same on every host; absent: a random one (a single host). */
  hashKey?: Uint8Array;
  /** Flow-table hash key (16 bytes); absent (the daemon): a random one per start. Tests and benches only. */
  flowKey?: Uint8Array;
}

export interface QueueOptions {
  /** Entry: SYNs and ICMP errors (bound with fail-open). Serve: the peer ports. */
  queueNum: number;
  /** Entry only: later packets of flows that may be forwarded, on the same socket and thread, without fail-open. */
  flowsQueueNum?: number;
  maxLen: number;
  rcvBufBytes: number;
  /** SO_SNDBUFFORCE (the kernel doubles it); verdict batches are sized from what the kernel granted. Absent: 2 MiB. */
  sndBufBytes?: number;
  batchSize: number;
  /** Kernel modes, entry: new forwarded flows are written to the ipsets `<prefix>to<id>`. */
  ipsetPrefix?: string;
  /** The same for IPv6 flows (`<prefix6>to<id>`, family inet6); absent: the host forwards no IPv6 in a kernel mode. */
  ipsetPrefix6?: string;
}

export interface Outcome {
  action: Action;
  malformed: Malformed | null;
  note: Note | null;
  mangled: boolean;
  mark: number;
  target: number;
}

/** Flows by state: pending (load policy, waiting for a decision), syn, probation (bare ACKs only), established, closing (FIN), reset (a plausible RST). */
export interface FlowCounts {
  pending: number; syn: number; probation: number; established: number; closing: number; reset: number;
}

export interface EngineStats {
  packets: number;
  bytes: number;
  actions: Record<Action, number>;
  malformed: Record<Malformed, number>;
  notes: Record<Note, number>;
  /** New connections decided here: kept, forwarded, and by serving host id. */
  newFlows: { local: number; forwarded: number; byHost: number[] };
  checksums: { full: number; incremental: number };
  flows: FlowCounts & {
    /** Of the flows above, those another host serves. */
    forwarded: FlowCounts;
    expired: number;
    /** Flows a RST within the client's window moved to `reset`. */
    closed: number;
  };
  /** Of packets, the IPv6 ones (a host with IPv6 only); of the flows above, those in the IPv6 table. */
  ipv6: { packets: number; flows: number };
}

export interface QueueStats extends EngineStats {
  queueNum: number;
  queue: {
    batches: number;
    batchPackets: number;
    batchMax: number;
    /** Receive rounds cut short by their bound (batches or ~2 ms) so housekeeping could run: input was waiting. */
    roundsCut: number;
    recvErrors: number;
    enobufs: number;
    eintr: number;
    /** Verdicts the kernel refused even one at a time (their packets stay queued): must stay 0. */
    sendErrors: number;
    /** Verdict batches the kernel refused whole, then sent one verdict at a time. */
    batchesSplit: number;
    /** Bytes of verdicts sent in one system call at most: the socket's real send buffer less 32. */
    sendLimit: number;
    verdictErrors: number;
    /** Packets that came while binding: accepted on the fail-open queue, dropped on the flows queue. */
    startupAccepted: number;
    startupDropped: number;
    /** Entry: the flows queue's number and the packets that came from it (of batchPackets). */
    flowsQueueNum?: number;
    flowsPackets?: number;
    /** Kernel modes, entry: the ipset writer (adds and dels sent; errors are the kernel's refusals). */
    ipset?: { adds: number; dels: number; sends: number; errors: number; existing: number; sendErrors: number; lastErrno: number };
    /** Load policy: looking up whether a 4-tuple still has a local socket failed (the forward went ahead). */
    sockDiagErrors: number;
  };
}

export interface EngineInfo {
  flows: number;
  capacity: number;
  maxFlows: number;
  entryBytes: number;
  bytesPerFlowAtMax: number;
  /** The farthest any flow sits from its home slot (0: at home). */
  longestProbe: number;
  /** The IPv6 table, on a host with IPv6 (its entries are 36 bytes). */
  ipv6?: { flows: number; entryBytes: number; longestProbe: number; bytesPerFlowAtMax: number };
}

export interface PacketMeta {
  wireLength?: number;
  srcMac?: Uint8Array;
}

/** The data path on bytes the caller supplies (tests, fixtures, benches). */
export interface NativeEngine {
  /**
   * Runs one packet; rewrites `bytes` in place when the outcome is `mangled`.
   * `meta`: what the queue reads from the kernel besides the bytes: the real
   * length when the copy was cut short (NFQA_CAP_LEN), the source MAC (NFQA_HWADDR).
   */
  process(bytes: Uint8Array, csumNotReady: boolean, nowMs: number, meta?: PacketMeta): Outcome;
  setLookupTable(table: Uint16Array): void;
  /** Load policy: hosts[].weight by host id (ids past the end weigh 1). */
  setWeights(weights: Uint8Array): void;
  setLoadThreshold(threshold: number): void;
  /** Load policy: this host's load, as the daemon's load meter counts it; inUse < 0: the value stands as it is. */
  calibrateLoad(value: number, inUse: number): void;
  /** Load policy: a peer's report, as the heartbeat thread publishes it. */
  publishPeerLoad(id: number, load: number): void;
  /** Load policy: whether every report of the peer reaches this host (docs/peers.md, "Watchers"), as the heartbeat thread sets it. */
  setPeerHeardOften(id: number, often: boolean): void;
  /** Load policy: a peer's load as the engine estimates it now. */
  loadEstimate(id: number): number;
  /** Its peer-load board, as an entry Queue's (a PeerLink may feed it). */
  loadBoard(): LoadBoard;
  setDraining(draining: boolean): void;
  /** Serve role: each host id's MAC address, 6 bytes each (zeros: not known). */
  setPeerMacs(macs: Uint8Array): void;
  /** A reload's host lists, as NativeQueue.setHosts. */
  setHosts(serviceAddrs: Uint32Array, clusterAddrs: Uint32Array, serviceAddrs6?: Uint32Array, clusterAddrs6?: Uint32Array): void;
  hashTarget(clientAddr: number, clientPort: number): number;
  sweep(budget: number, nowMs: number): number;
  stats(): EngineStats;
  info(): EngineInfo;
  exportFlows(nowMs: number): Uint32Array;
  importFlows(words: Uint32Array, nowMs: number): number;
  /** The IPv6 table, FLOW_WORDS6 per flow (empty without IPv6). */
  exportFlows6(nowMs: number): Uint32Array;
  importFlows6(words: Uint32Array, nowMs: number): number;
}

/**
 * Words per flow in exportFlows()/importFlows(): client address, service
 * address (as they lie in the packet: on this little-endian machine a word
 * reads byte-swapped), clientPort << 16 | servicePort, target << 16 | state,
 * the client's next sequence number, age in ms.
 */
export const FLOW_WORDS = 6;
/** The same for IPv6 (exportFlows6()): the two addresses take 4 words each. */
export const FLOW_WORDS6 = 12;

export interface NativeQueue {
  start(): void;
  stop(): void;
  setLookupTable(table: Uint16Array): void;
  setDraining(draining: boolean): void;
  /**
   * A reload changed the hosts: addresses indexed by id (0: none); this
   * host's own must not change. The IPv6 lists as EngineOptions.serviceAddrs6
   * (absent or empty: no host has IPv6).
   */
  setHosts(serviceAddrs: Uint32Array, clusterAddrs: Uint32Array, serviceAddrs6?: Uint32Array, clusterAddrs6?: Uint32Array): void;
  /** Serve role: each host id's MAC address, 6 bytes each (zeros: not known). */
  setPeerMacs(macs: Uint8Array): void;
  /** Load policy: hosts[].weight by host id (ids past the end weigh 1). */
  setWeights(weights: Uint8Array): void;
  /** Load policy: load.threshold. */
  setLoadThreshold(threshold: number): void;
  /**
   * Load policy: this host's load as the load meter counted it exactly, and
   * the kernel's TCP sockets in use read with it (the queue carries the count
   * forward by them between two counts; negative: none, the value stands).
   */
  calibrateLoad(value: number, inUse: number): void;
  /** Where a PeerLink publishes peers' reports for this queue's decisions (PeerLink.feedLoads). */
  loadBoard(): LoadBoard;
  stats(): QueueStats;
  /** The flow table, FLOW_WORDS per flow; safe while running. Blocks the caller while the queue thread walks the table. */
  exportFlows(): Uint32Array;
  /** The same, waited for on a worker thread (the event loop runs on), the words handed over without a copy. */
  exportFlowsAsync(): Promise<Uint32Array>;
  /** Before start() only; returns how many flows were taken. */
  importFlows(words: Uint32Array): number;
  /** The IPv6 table likewise, FLOW_WORDS6 per flow (empty without IPv6). */
  exportFlows6(): Uint32Array;
  exportFlows6Async(): Promise<Uint32Array>;
  importFlows6(words: Uint32Array): number;
  /** Packets the queue has seen (stats().packets), cheaply. */
  packets(): number;
  readonly running: boolean;
}

/** An entry queue's peer-load board, opaque: only PeerLink.feedLoads takes it. */
export interface LoadBoard {
  readonly __loadBoard: unique symbol;
}

export interface PeerLinkOptions {
  self: number;
  bindAddress: string;
  /** 0: any free port (see localPort()). */
  port: number;
  key: Uint8Array;
  heartbeatMs: number;
  deadAfterMs: number;
  /** More peers than this: watchers and slow rounds instead of all-to-all (default 8; docs/peers.md). */
  watchers?: number;
  /** Every slowEvery-th heartbeat goes to everybody (default 10). */
  slowEvery?: number;
  /** Service ports whose listeners the thread watches; events 6/7 when one is lost or back. */
  watchPorts?: Uint16Array;
  watchEveryMs?: number;
}

/** What the heartbeat thread says happened: [type, id, value] triples (native/peer_link.h PeerEventType). */
export const PEER_EVENTS = ['up', 'down', 'restarted', 'draining', 'health', 'removed', 'listenerLost', 'listenerBack'] as const;
export type PeerEventName = (typeof PEER_EVENTS)[number];

export interface NativePeerView {
  id: number;
  address: string;
  port: number;
  up: boolean;
  draining: boolean;
  healthy: boolean;
  load: number;
  epoch: number | null;
  seq: number | null;
  lastHeardMs: number | null;
  /** Hears our every heartbeat (every peer, in all-to-all). */
  watcher: boolean;
  /** We watch it: held to deadAfterMs, and a DOWN notice from us when it falls silent. */
  subject: boolean;
}

export interface NativePeerCounters {
  sent: number;
  sendErrors: number;
  received: number;
  accepted: number;
  rejected: Record<'truncated' | 'bad_magic' | 'bad_type' | 'unknown_peer' | 'wrong_source' | 'bad_mac' | 'replay', number>;
  ticks: number;
  /** The thread's largest lateness since the last read (reset by reading). */
  tickLateMaxMs: number;
  downNoticesSent: number;
  downNoticesAccepted: number;
  downNoticesActedOn: number;
}

/** Heartbeats in a native thread (native/peer_link.h); lib/peers.ts is its one user. */
export interface NativePeerLink {
  start(): void;
  stop(): void;
  setPeers(peers: Array<{ id: number; address: string; port: number }>): void;
  setLocal(load: number, draining: boolean, healthy: boolean): void;
  announce(): void;
  /** Key rotation: sign with `sign`, accept it and every one of `others`. */
  setKeys(sign: Uint8Array, others: Uint8Array[]): void;
  /** Every accepted report also goes to this entry queue's board (the load policy decides on it). */
  feedLoads(board: LoadBoard): void;
  snapshot(): NativePeerView[];
  counters(): NativePeerCounters;
  localPort(): number;
}

interface Addon {
  Engine: new (options: EngineOptions) => NativeEngine;
  PeerLink: new (options: PeerLinkOptions, onEvents: (events: Uint32Array) => void) => NativePeerLink;
  Queue: new (queue: QueueOptions, engine: EngineOptions) => NativeQueue;
  setErrorClass(ctor: typeof DprNativeError): void;
  countEstablished(ports: Uint16Array): number;
  listListeners(ports: Uint16Array): Listener[];
  listNeighbours6(): Neighbour6[];
  hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array;
  sdNotify(socketPath: string, state: string): void;
  siphash24(key: Uint8Array, data: Uint8Array): bigint;
}

function load(): Addon {
  // dist/lib/native.js and lib/native.ts both sit two levels under the root.
  const file = path.resolve(__dirname, '..', '..', 'build', 'Release', 'dpr.node');
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(file) as Addon;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new DprNativeError(`cannot load the dpr addon at ${file}: ${e.message} (run: npm run setup)`, 'ENOADDON', 0);
  }
}

const addon = load();
addon.setErrorClass(DprNativeError);

export const Engine = addon.Engine;
export const Queue = addon.Queue;
export const PeerLink = addon.PeerLink;

/**
 * Established TCP sockets on these local ports, IPv4 and IPv6 (dual-stack
 * listeners' IPv4 clients included), in this network namespace: a filtered
 * kernel dump, so TIME_WAIT sockets cost nothing. The kernel walks its whole
 * established hash for it (~2 ms of CPU): call it rarely (lib/load-meter.ts).
 */
export function countEstablished(ports: readonly number[]): number {
  return addon.countEstablished(Uint16Array.from(ports));
}

/** A listening TCP socket, from sock_diag. */
export interface Listener {
  family: 4 | 6;
  address: string;
  port: number;
  /** IPv6 only: takes no IPv4 connections (IPV6_V6ONLY). */
  v6only: boolean;
}

/** The heartbeats' own HMAC-SHA256 (native/sha256.h); tests hold it to RFC 4231 and Node's crypto. */
export function hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array {
  return addon.hmacSha256(key, data);
}

/** Listening TCP sockets on these ports, both families, in this network namespace. */
export function listListeners(ports: readonly number[]): Listener[] {
  return addon.listListeners(Uint16Array.from(ports));
}

/** A resolved IPv6 neighbour: its address (canonical) and MAC (lower case, colon separated). */
export interface Neighbour6 {
  address: string;
  mac: string;
}

/** The resolved IPv6 neighbours of this network namespace (rtnetlink: IPv6 has no /proc/net/arp). */
export function listNeighbours6(): Neighbour6[] {
  return addon.listNeighbours6();
}

/**
 * Tells systemd (Type=notify) what the daemon does: 'READY=1', 'STOPPING=1'.
 * Returns false when no service manager listens (NOTIFY_SOCKET unset).
 */
export function notifyServiceManager(state: string, socketPath = process.env.NOTIFY_SOCKET): boolean {
  if (!socketPath) return false;
  addon.sdNotify(socketPath, state);
  return true;
}

/** SipHash-2-4 as the data path computes it (flow table slots, Maglev slots). `key`: 16 bytes. */
export function siphash24(key: Uint8Array, data: Uint8Array): bigint {
  return addon.siphash24(key, data);
}
