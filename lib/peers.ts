// Peer membership and load exchange: every host sends a signed heartbeat to
// every other host each `heartbeatMs`; a peer is up from its first valid
// heartbeat and down when no valid one came for `deadAfterMs`. The routing
// policies read the live set (Maglev table) and the loads (`load` policy).
//
// Only datagrams that are well formed, from a configured peer at its
// configured address, correctly signed and newer than the last accepted one
// from that peer change anything; everything else is counted by reason.
// See docs/peers.md for the wire format, replay rules and timing.
import dgram from 'node:dgram';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { encodeHeartbeat, parseHeartbeat, toU32, verifyHeartbeatMac, type Heartbeat } from './heartbeat';
import { logger, RateLimitedWarning, type Logger } from './log';

export const REJECT_REASONS = [
  'truncated', 'bad_magic', 'bad_type', 'unknown_peer', 'wrong_source', 'bad_mac', 'replay',
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

/** Shorter keys make HMAC forgery by key search plausible. */
export const MIN_KEY_BYTES = 16;

export interface PeerConfig {
  id: number;
  /** The peer's cluster address: heartbeats from it must come from this address. */
  address: string;
  /** UDP port the peer listens on; defaults to the shared `port` (tests run several peers on one address). */
  port?: number;
}

export interface PeersOptions {
  /** This host's id; an entry for it in `peers` is ignored. */
  self: number;
  bindAddress: string;
  /** UDP port to bind, and the port peers listen on unless they say otherwise; 0: any free port (tests; see localPort()). */
  port: number;
  peers: PeerConfig[];
  /** Shared HMAC-SHA256 key, at least MIN_KEY_BYTES long (see loadKey). */
  key: Buffer;
  heartbeatMs: number;
  /** No valid heartbeat for this long: the peer is down. Several heartbeats, so one lost datagram does not flap. */
  deadAfterMs: number;
  /** Active connections this host serves, read once per heartbeat. */
  load: () => number;
  draining?: () => boolean;
  /** This host's own web service passes its health checks (default: always). */
  healthy?: () => boolean;
  /** Called every tick with how late the event loop ran it, in ms (lib/loop-lag.ts). */
  onTick?: (lateMs: number) => void;
  log?: Logger;
}

export interface PeerView {
  id: number;
  address: string;
  up: boolean;
  load: number;
  draining: boolean;
  /** The peer's own web service passes its health checks (as it last said). */
  healthy: boolean;
  /**
   * Which report `load` is: the peer's epoch and heartbeat sequence, one
   * number that grows with every accepted heartbeat (null if none yet). A
   * policy that corrects reports by its own sends since starts over when it
   * changes.
   */
  report: string | null;
  /** Ms since the last valid heartbeat, or null if none yet. */
  lastHeardMs: number | null;
  /** The peer's epoch (its start time in ms), or null if never heard. */
  epoch: number | null;
}

export interface PeersCounters {
  /** Datagrams handed to the kernel (one per peer per heartbeat). */
  sent: number;
  sendErrors: number;
  received: number;
  accepted: number;
  rejected: Record<RejectReason, number>;
}

interface PeersEvents {
  up: [id: number];
  down: [id: number];
  /** The set of live peers, or the draining or health flag of a live one, changed. */
  change: [];
}

interface PeerState {
  readonly id: number;
  readonly address: string;
  readonly port: number;
  up: boolean;
  load: number;
  draining: boolean;
  healthy: boolean;
  epoch: bigint | null;
  seq: bigint;
  /** performance.now() of the last valid heartbeat: monotonic, immune to clock steps. */
  heardAt: number | null;
}

function assertInt(value: number, min: number, max: number, name: string): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`peers: ${name} must be an integer in ${min}..${max}, got ${value}`);
  }
}

function validateOptions(o: PeersOptions): void {
  assertInt(o.self, 0, 0xffff, 'self');
  assertInt(o.port, 0, 0xffff, 'port');
  assertInt(o.heartbeatMs, 1, 3_600_000, 'heartbeatMs');
  assertInt(o.deadAfterMs, o.heartbeatMs + 1, 86_400_000, 'deadAfterMs (more than heartbeatMs)');
  if (net.isIP(o.bindAddress) === 0) throw new RangeError(`peers: bindAddress is not an IP address: ${o.bindAddress}`);
  if (!Buffer.isBuffer(o.key) || o.key.length < MIN_KEY_BYTES) {
    throw new RangeError(`peers: key must be a Buffer of at least ${MIN_KEY_BYTES} bytes`);
  }
  validatePeers(o.peers, net.isIP(o.bindAddress));
}

function validatePeers(peers: readonly PeerConfig[], family: number): void {
  const seen = new Set<number>();
  for (const p of peers) {
    assertInt(p.id, 0, 0xffff, 'peer id');
    if (seen.has(p.id)) throw new RangeError(`peers: duplicate peer id ${p.id}`);
    seen.add(p.id);
    if (net.isIP(p.address) !== family) {
      throw new RangeError(`peers: address of peer ${p.id} (${p.address}) is not an IPv${family} address like bindAddress`);
    }
    if (p.port !== undefined) assertInt(p.port, 1, 0xffff, `port of peer ${p.id}`);
  }
}

/** (epoch, seq) must grow strictly: a captured datagram sent again is refused. */
function isNewer(hb: Heartbeat, peer: PeerState): boolean {
  if (peer.epoch === null) return true;
  if (hb.epoch !== peer.epoch) return hb.epoch > peer.epoch;
  return hb.seq > peer.seq;
}

export class Peers extends EventEmitter<PeersEvents> {
  private readonly opts: PeersOptions;
  private readonly log: Logger;
  private readonly peers = new Map<number, PeerState>();
  private readonly rejectWarnings = new Map<RejectReason, RateLimitedWarning>();
  private readonly sendWarning: RateLimitedWarning;
  private readonly stats: PeersCounters;
  private socket: dgram.Socket | null = null;
  private timer: NodeJS.Timeout | null = null;
  private epoch = 0n;
  private seq = 0n;
  private lastLoad = 0;
  private lastTickAt: number | null = null;

  constructor(opts: PeersOptions) {
    super();
    validateOptions(opts);
    this.opts = opts;
    this.log = opts.log ?? logger('peers');
    this.addPeers(opts.peers);
    for (const reason of REJECT_REASONS) this.rejectWarnings.set(reason, new RateLimitedWarning(this.log));
    this.sendWarning = new RateLimitedWarning(this.log);
    this.stats = {
      sent: 0, sendErrors: 0, received: 0, accepted: 0,
      rejected: Object.fromEntries(REJECT_REASONS.map((r) => [r, 0])) as Record<RejectReason, number>,
    };
  }

  /** Binds the socket, then heartbeats at once (peers see us up without waiting a period) and every heartbeatMs. */
  async start(): Promise<void> {
    if (this.socket) throw new Error('peers: already started');
    const socket = dgram.createSocket(net.isIPv6(this.opts.bindAddress) ? 'udp6' : 'udp4');
    socket.on('message', (buf, rinfo) => this.onMessage(buf, rinfo));
    await bind(socket, this.opts.port, this.opts.bindAddress);
    // After bind, errors are per-datagram trouble (ICMP feedback etc.): log, keep running.
    socket.on('error', (err) => this.log.warn('peers socket error', { error: err.message }));
    this.socket = socket;
    // A restart within the same millisecond must still look newer to peers.
    this.epoch = BigInt(Math.max(Date.now(), Number(this.epoch) + 1));
    this.seq = 0n;
    this.timer = setInterval(() => this.tick(), this.opts.heartbeatMs);
    this.log.info('peers started', {
      self: this.opts.self, bind: `${this.opts.bindAddress}:${this.opts.port}`,
      peers: this.peers.size, heartbeatMs: this.opts.heartbeatMs, deadAfterMs: this.opts.deadAfterMs,
    });
    this.tick();
  }

  /**
   * Stops sending and closes the socket, so nothing keeps the process alive.
   * Peers are then shown down (we no longer know), without events: the owner
   * is shutting down. Replay state is kept for a later start().
   */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.lastTickAt = null;
    const socket = this.socket;
    this.socket = null;
    if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
    for (const peer of this.peers.values()) peer.up = false;
  }

  /** The UDP port the socket is bound to (after start()); the configured one unless that was 0. */
  localPort(): number {
    if (!this.socket) throw new Error('peers: not started');
    return this.socket.address().port;
  }

  /**
   * Changes who the peers are, while running: a new peer starts unheard
   * (down until its first valid heartbeat), a removed one is forgotten (a
   * 'change' if it was up), a kept one keeps its state unless its address or
   * port changed (then it starts unheard again).
   */
  setPeers(peers: readonly PeerConfig[]): void {
    validatePeers(peers, net.isIP(this.opts.bindAddress));
    const wanted = new Map(peers.filter((p) => p.id !== this.opts.self).map((p) => [p.id, p]));
    let changed = false;
    for (const [id, state] of this.peers) {
      const w = wanted.get(id);
      if (w && w.address === state.address && (w.port ?? this.opts.port) === state.port) continue;
      this.peers.delete(id);
      if (state.up) {
        changed = true;
        this.log.info('peer removed', { peer: id });
      }
    }
    this.addPeers([...wanted.values()].filter((p) => !this.peers.has(p.id)));
    if (changed) this.emit('change');
  }

  private addPeers(peers: readonly PeerConfig[]): void {
    for (const p of peers) {
      if (p.id === this.opts.self) continue;
      this.peers.set(p.id, {
        id: p.id, address: p.address, port: p.port ?? this.opts.port,
        up: false, load: 0, draining: false, healthy: true, epoch: null, seq: 0n, heardAt: null,
      });
    }
  }

  snapshot(): PeerView[] {
    const now = performance.now();
    return [...this.peers.values()].map((p) => ({
      id: p.id, address: p.address, up: p.up, load: p.load, draining: p.draining, healthy: p.healthy,
      report: p.epoch === null ? null : `${p.epoch}:${p.seq}`,
      lastHeardMs: p.heardAt === null ? null : Math.round(now - p.heardAt),
      epoch: p.epoch === null ? null : Number(p.epoch),
    }));
  }

  counters(): PeersCounters {
    return { ...this.stats, rejected: { ...this.stats.rejected } };
  }

  /**
   * Sends a heartbeat now, out of turn: this host's draining or health just
   * changed, and peers should not wait a period to hear it.
   */
  announce(): void {
    this.sendHeartbeats();
  }

  private tick(): void {
    const now = performance.now();
    if (this.lastTickAt !== null) this.opts.onTick?.(now - this.lastTickAt - this.opts.heartbeatMs);
    this.lastTickAt = now;
    this.sendHeartbeats();
    this.checkLiveness();
  }

  /** One datagram per period, the same bytes to every peer: one seq, one HMAC. */
  private sendHeartbeats(): void {
    const socket = this.socket;
    if (!socket) return;
    this.seq++;
    const datagram = encodeHeartbeat({
      sender: this.opts.self, draining: this.opts.draining?.() ?? false,
      epoch: this.epoch, seq: this.seq, load: this.readLoad(), healthy: this.opts.healthy?.() ?? true,
    }, this.opts.key);
    for (const peer of this.peers.values()) {
      socket.send(datagram, peer.port, peer.address, (err) => {
        if (!err) {
          this.stats.sent++;
          return;
        }
        // Unreachable peers are expected while they are down: count, never throw.
        this.stats.sendErrors++;
        this.sendWarning.warn('heartbeat send failed', { peer: peer.id, error: err.message });
      });
    }
  }

  /** A throwing load callback must not stop heartbeats (peers would think us dead): resend the last value. */
  private readLoad(): number {
    try {
      this.lastLoad = toU32(this.opts.load());
    } catch (err) {
      this.sendWarning.warn('load() threw; reporting the last value', { error: (err as Error).message });
    }
    return this.lastLoad;
  }

  private checkLiveness(): void {
    const now = performance.now();
    let changed = false;
    for (const peer of this.peers.values()) {
      if (!peer.up || peer.heardAt === null || now - peer.heardAt <= this.opts.deadAfterMs) continue;
      peer.up = false;
      changed = true;
      this.log.warn('peer down', { peer: peer.id, silentMs: Math.round(now - peer.heardAt) });
      this.emit('down', peer.id);
    }
    if (changed) this.emit('change');
  }

  private onMessage(buf: Buffer, rinfo: dgram.RemoteInfo): void {
    this.stats.received++;
    const reason = this.judge(buf, rinfo);
    if (reason === null) return;
    this.stats.rejected[reason]++;
    this.rejectWarnings.get(reason)!.warn('heartbeat rejected', { reason, from: `${rinfo.address}:${rinfo.port}` });
  }

  /** Cheap checks first, the HMAC only for datagrams that claim a real peer from its real address. */
  private judge(buf: Buffer, rinfo: dgram.RemoteInfo): RejectReason | null {
    const parsed = parseHeartbeat(buf);
    if (!parsed.ok) return parsed.reason;
    const hb = parsed.heartbeat;
    // Self is not in the map, so our own id from outside is unknown too.
    const peer = this.peers.get(hb.sender);
    if (!peer) return 'unknown_peer';
    // Address only: the source port is the sender's ephemeral choice.
    if (rinfo.address !== peer.address) return 'wrong_source';
    if (!verifyHeartbeatMac(buf, this.opts.key)) return 'bad_mac';
    if (!isNewer(hb, peer)) return 'replay';
    this.accept(peer, hb);
    return null;
  }

  private accept(peer: PeerState, hb: Heartbeat): void {
    this.stats.accepted++;
    if (peer.epoch !== null && hb.epoch !== peer.epoch) {
      this.log.info('peer restarted', { peer: peer.id, epoch: Number(hb.epoch) });
    }
    const wasUp = peer.up;
    const drainingChanged = peer.draining !== hb.draining;
    const healthChanged = peer.healthy !== hb.healthy;
    peer.up = true;
    peer.load = hb.load;
    peer.draining = hb.draining;
    peer.healthy = hb.healthy;
    peer.epoch = hb.epoch;
    peer.seq = hb.seq;
    peer.heardAt = performance.now();
    if (!wasUp) {
      this.log.info('peer up', { peer: peer.id, draining: hb.draining, healthy: hb.healthy });
      this.emit('up', peer.id);
    } else {
      if (drainingChanged) this.log.info(hb.draining ? 'peer draining' : 'peer no longer draining', { peer: peer.id });
      if (healthChanged) {
        if (hb.healthy) this.log.info('peer healthy again', { peer: peer.id });
        else this.log.warn('peer unhealthy: its web service fails its health checks', { peer: peer.id });
      }
    }
    if (!wasUp || drainingChanged || healthChanged) this.emit('change');
  }
}

function bind(socket: dgram.Socket, port: number, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      socket.close();
      reject(new Error(`peers: cannot bind UDP ${address}:${port}: ${err.message}`));
    };
    socket.once('error', onError);
    socket.bind(port, address, () => {
      socket.off('error', onError);
      resolve();
    });
  });
}

/**
 * The shared HMAC key from config: `peers.key` (hex or base64 text) or
 * `peers.keyFile` (a file holding such text; surrounding whitespace ignored).
 * Exactly one must be set. Error messages never include key material.
 */
export function loadKey(opts: { key?: string; keyFile?: string }): Buffer {
  const { key, keyFile } = opts;
  if (key && keyFile) throw new Error('peers.key and peers.keyFile are both set: set only one');
  if (key) return decodeKey(key, 'peers.key');
  if (keyFile) return decodeKey(readKeyFile(keyFile), `peers.keyFile (${keyFile})`);
  throw new Error(`peers.key or peers.keyFile must be set: a shared secret of at least ${MIN_KEY_BYTES} bytes, hex or base64`);
}

function readKeyFile(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`peers.keyFile: cannot read ${file}: ${(err as Error).message}`);
  }
}

/** Hex wins when the text is valid as both (an even run of hex digits is also valid base64). */
function decodeKey(text: string, name: string): Buffer {
  const t = text.trim();
  let bytes: Buffer;
  if (/^(?:[0-9a-fA-F]{2})+$/.test(t)) bytes = Buffer.from(t, 'hex');
  else if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(t)) bytes = Buffer.from(t, 'base64');
  else throw new Error(`${name}: not hex or base64 text`);
  if (bytes.length < MIN_KEY_BYTES) {
    throw new Error(`${name}: key is ${bytes.length} bytes, at least ${MIN_KEY_BYTES} are needed`);
  }
  return bytes;
}
