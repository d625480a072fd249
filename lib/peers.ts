// Peer membership and load exchange: every host sends a signed heartbeat to
// every other host each `heartbeatMs`; a peer is up from its first valid
// heartbeat and down when no valid one came for `deadAfterMs`. The routing
// policies read who is eligible (lib/eligibility.ts) and the loads (`load`
// policy).
//
// Only datagrams that are well formed, from a configured peer at its
// configured address, correctly signed and newer than the last accepted one
// from that peer change anything; everything else is counted by reason.
// See docs/peers.md for the wire format, replay rules and timing.
//
// The heartbeats themselves run in a native thread (native/peer_link.h): one
// wakeup per period for sending and reading everything that arrived, where a
// JavaScript socket woke the event loop once per datagram. This class is the
// TypeScript face of it: validation, events, logs. lib/heartbeat.ts is the
// same wire format in TypeScript, for tests and tools.
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { MIN_KEY_BYTES } from './keys';
import { logger, type Logger } from './log';
import { PEER_EVENTS, PeerLink, type LoadBoard, type NativePeerLink, type NativePeerView } from './native';

export const REJECT_REASONS = [
  'truncated', 'bad_magic', 'bad_type', 'unknown_peer', 'wrong_source', 'bad_mac', 'replay',
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

export { MIN_KEY_BYTES };

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
  /** Shared HMAC-SHA256 key, at least MIN_KEY_BYTES long (see loadKey): heartbeats are signed with it. */
  key: Buffer;
  /** During a key rotation: the other key(s), accepted too. */
  alsoAccept?: Buffer[];
  heartbeatMs: number;
  /** No valid heartbeat for this long: the peer is down. Several heartbeats, so one lost datagram does not flap. */
  deadAfterMs: number;
  /** More peers than this: a heartbeat goes to this many watchers, and to everybody every `slowEvery`-th time (docs/peers.md, "Watchers"); default 8. */
  watchers?: number;
  /** Default 10. */
  slowEvery?: number;
  /** Service ports whose listeners the heartbeat thread watches (health: lib/health.ts); 'listener' events. */
  watchPorts?: readonly number[];
  watchEveryMs?: number;
  /** Every accepted report also goes here: the entry queue's board (the load policy decides on it there). */
  loadBoard?: LoadBoard;
  log?: Logger;
}

/** What this host says about itself in its heartbeats. */
export interface LocalState {
  /** Active connections it serves. */
  load: number;
  draining: boolean;
  /** Its own web service passes its health checks. */
  healthy: boolean;
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
   * value that changes with every accepted heartbeat (null if none yet). A
   * policy that corrects reports by its own sends since starts over when it
   * changes.
   */
  report: string | null;
  /** Ms since the last valid heartbeat, or null if none yet. */
  lastHeardMs: number | null;
  /** The peer's epoch (its start time in ms), or null if never heard. */
  epoch: number | null;
  /** Ring roles (docs/peers.md, "Watchers"): it hears our every heartbeat; we watch it. Every peer is both in all-to-all. */
  watcher?: boolean;
  subject?: boolean;
}

export interface PeersCounters {
  /** Datagrams handed to the kernel (one per peer per heartbeat). */
  sent: number;
  sendErrors: number;
  received: number;
  accepted: number;
  rejected: Record<RejectReason, number>;
  /** DOWN notices this host sent (each to every peer), accepted about a peer, and acted on (the peer went down here). */
  downNotices: { sent: number; accepted: number; actedOn: number };
}

interface PeersEvents {
  up: [id: number];
  /** `silentMs`: how long the peer had been silent when the heartbeat thread found it down. */
  down: [id: number, silentMs: number];
  /** The set of live peers, or the draining or health flag of a live one, changed. */
  change: [];
  /** A watched service port lost its listener (true) or has one again (false). */
  listener: [port: number, lost: boolean];
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
  if (o.watchers !== undefined) assertInt(o.watchers, 1, 0xffff, 'watchers');
  if (o.slowEvery !== undefined) assertInt(o.slowEvery, 1, 1000, 'slowEvery');
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

export class Peers extends EventEmitter<PeersEvents> {
  private readonly opts: PeersOptions;
  private readonly log: Logger;
  private readonly link: NativePeerLink;
  private peerList: PeerConfig[];
  private local: LocalState = { load: 0, draining: false, healthy: true };
  private lastRejected: Record<RejectReason, number> | null = null;

  constructor(opts: PeersOptions) {
    super();
    validateOptions(opts);
    this.opts = opts;
    this.log = opts.log ?? logger('peers');
    this.link = new PeerLink({
      self: opts.self, bindAddress: opts.bindAddress, port: opts.port, key: opts.key,
      heartbeatMs: opts.heartbeatMs, deadAfterMs: opts.deadAfterMs,
      ...(opts.watchers === undefined ? {} : { watchers: opts.watchers }),
      ...(opts.slowEvery === undefined ? {} : { slowEvery: opts.slowEvery }),
      watchPorts: Uint16Array.from(opts.watchPorts ?? []), watchEveryMs: opts.watchEveryMs ?? 250,
    }, (events) => this.onEvents(events));
    if (opts.alsoAccept?.length) this.setKeys(opts.key, opts.alsoAccept);
    if (opts.loadBoard) this.link.feedLoads(opts.loadBoard);
    this.peerList = [];
    this.setPeers(opts.peers);
  }

  /** Binds the socket and starts heartbeating at once (peers see us up within a round trip) and every heartbeatMs. */
  async start(): Promise<void> {
    this.link.start();
    this.log.info('peers started', {
      self: this.opts.self, bind: `${this.opts.bindAddress}:${this.link.localPort()}`,
      peers: this.peerList.length, heartbeatMs: this.opts.heartbeatMs, deadAfterMs: this.opts.deadAfterMs,
    });
  }

  /**
   * Stops sending and closes the socket. Peers are then shown down (we no
   * longer know), without events: the owner is shutting down. Replay state is
   * kept for a later start().
   */
  async stop(): Promise<void> {
    this.link.stop();
  }

  /** The UDP port the socket is bound to (after start()); the configured one unless that was 0. */
  localPort(): number {
    const port = this.link.localPort();
    if (port === 0) throw new Error('peers: not started');
    return port;
  }

  /**
   * Changes who the peers are, while running: a new peer starts unheard
   * (down until its first valid heartbeat), a removed one is forgotten (a
   * 'change' if it was up), a kept one keeps its state unless its address or
   * port changed (then it starts unheard again).
   */
  setPeers(peers: readonly PeerConfig[]): void {
    validatePeers(peers, net.isIP(this.opts.bindAddress));
    this.peerList = peers.filter((p) => p.id !== this.opts.self).map((p) => ({ ...p }));
    this.link.setPeers(this.peerList.map((p) => ({ id: p.id, address: p.address, port: p.port ?? this.opts.port })));
  }

  /** What this host's heartbeats say about it; a change of draining or health is announced at once. */
  setLocal(state: Partial<LocalState>): void {
    this.local = { ...this.local, ...state };
    this.link.setLocal(Math.min(Math.max(Math.floor(this.local.load), 0), 0xffff_ffff), this.local.draining, this.local.healthy);
  }

  /** Sends a heartbeat now, out of turn. */
  announce(): void {
    this.link.announce();
  }

  /**
   * Key rotation (docs/operations.md): heartbeats are signed with `sign` and
   * accepted when signed with it or with any of `alsoAccept`.
   */
  setKeys(sign: Buffer, alsoAccept: readonly Buffer[] = []): void {
    for (const k of [sign, ...alsoAccept]) {
      if (!Buffer.isBuffer(k) || k.length < MIN_KEY_BYTES) throw new RangeError(`peers: keys must be Buffers of at least ${MIN_KEY_BYTES} bytes`);
    }
    this.link.setKeys(sign, [...alsoAccept]);
  }

  snapshot(): PeerView[] {
    return this.link.snapshot().map((p: NativePeerView) => ({
      id: p.id, address: p.address, up: p.up, load: p.load, draining: p.draining, healthy: p.healthy,
      report: p.epoch === null ? null : `${p.epoch}:${p.seq}`,
      lastHeardMs: p.lastHeardMs, epoch: p.epoch, watcher: p.watcher, subject: p.subject,
    }));
  }

  counters(): PeersCounters {
    const c = this.link.counters();
    return {
      sent: c.sent, sendErrors: c.sendErrors, received: c.received, accepted: c.accepted, rejected: { ...c.rejected },
      downNotices: { sent: c.downNoticesSent, accepted: c.downNoticesAccepted, actedOn: c.downNoticesActedOn },
    };
  }

  /** One warning with the rejected heartbeats since the last call, if any (the daemon calls it every 10 s). */
  logRejections(): void {
    const now = this.counters().rejected;
    const before = this.lastRejected;
    this.lastRejected = now;
    if (!before) return;
    const grown = Object.fromEntries(REJECT_REASONS.map((r) => [r, now[r] - before[r]]).filter(([, n]) => (n as number) > 0));
    if (Object.keys(grown).length) this.log.warn('heartbeats rejected', { byReason: grown });
  }

  private onEvents(events: Uint32Array): void {
    let changed = false;
    for (let i = 0; i + 2 < events.length; i += 3) {
      const type = PEER_EVENTS[events[i]!];
      const id = events[i + 1]!;
      const value = events[i + 2]!;
      switch (type) {
        case 'up':
          this.log.info('peer up', { peer: id, draining: (value & 1) !== 0, healthy: (value & 2) === 0 });
          this.emit('up', id);
          changed = true;
          break;
        case 'down':
          this.log.warn('peer down', { peer: id, silentMs: value });
          this.emit('down', id, value);
          changed = true;
          break;
        case 'restarted':
          this.log.info('peer restarted', { peer: id });
          break;
        case 'draining':
          this.log.info(value ? 'peer draining' : 'peer no longer draining', { peer: id });
          changed = true;
          break;
        case 'health':
          if (value) this.log.info('peer healthy again', { peer: id });
          else this.log.warn('peer unhealthy: its web service fails its health checks', { peer: id });
          changed = true;
          break;
        case 'removed':
          this.log.info('peer removed', { peer: id });
          changed = true;
          break;
        case 'listenerLost':
        case 'listenerBack':
          this.emit('listener', id, type === 'listenerLost');
          break;
        default:
          break;
      }
    }
    if (changed) this.emit('change');
  }
}
