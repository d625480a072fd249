// The heartbeat datagram peers exchange over UDP (docs/peers.md).
//
// Fixed length, network byte order:
//
//   offset size  field
//        0    4  magic     'DPR1' (0x44 0x50 0x52 0x31)
//        4    1  type      1 = heartbeat, 2 = DOWN notice (a watcher's: docs/peers.md)
//        5    1  flags     bit 0: sender is draining; bit 1: sender's own web
//                          service fails its health checks; bit 2: sent to
//                          every peer, not only the sender's watchers; other
//                          bits ignored
//        6    2  sender    host id of the sender (u16)
//        8    8  epoch     sender's start time, ms since 1970 (u64)
//       16    8  seq       +1 per datagram within an epoch (u64)
//       24    4  load      active connections the sender serves (u32);
//                          DOWN: the id of the host that fell silent
//       28    4  reserved  sent as 0, ignored (was a capacity hint nobody filled in);
//                          DOWN: low 32 bits of the last seq accepted from that host
//       32   32  mac       HMAC-SHA256(key, bytes 0..31)
//   total 64 bytes
//
// One length and no options: a parser with no choices has no parsing bugs, and
// anything that is not exactly 64 bytes is refused before the MAC is computed.
import { createHmac, timingSafeEqual } from 'node:crypto';

export const HEARTBEAT_MAGIC = Buffer.from('DPR1', 'ascii');
export const HEARTBEAT_TYPE = 1;
export const DOWN_NOTICE_TYPE = 2;
export const HEARTBEAT_BODY_LENGTH = 32;
export const HEARTBEAT_MAC_LENGTH = 32;
export const HEARTBEAT_LENGTH = HEARTBEAT_BODY_LENGTH + HEARTBEAT_MAC_LENGTH;
const FLAG_DRAINING = 0x01;
// "Unhealthy" rather than "healthy": a sender that predates health checks
// leaves the bit clear and is taken for healthy, as it was before.
const FLAG_UNHEALTHY = 0x02;
const FLAG_TO_ALL = 0x04;
const U32_MAX = 0xffff_ffff;

export interface Heartbeat {
  sender: number;
  draining: boolean;
  /** The sender's own web service passes its health checks. */
  healthy: boolean;
  /** Sender's start time in ms; a restarted sender has a larger one. */
  epoch: bigint;
  seq: bigint;
  load: number;
  /** Sent to every peer (a slow round or an announcement), not only to the sender's watchers. */
  toAll?: boolean;
  /** Set in a DOWN notice: the silent host, and the low 32 bits of its last seq the watcher accepted (`load` carries the id on the wire). */
  down?: { subject: number; subjectSeq: number };
}

/** Why a datagram was refused before its sender was even looked up. */
export type FormatReject = 'truncated' | 'bad_magic' | 'bad_type';

export type ParseResult = { ok: true; heartbeat: Heartbeat } | { ok: false; reason: FormatReject };

/** Clamps a counter into u32: a wrong load report must not make the sender throw. */
export function toU32(value: number): number {
  if (!Number.isFinite(value) || value <= 0) return 0;
  return Math.min(Math.floor(value), U32_MAX);
}

function mac(key: Buffer, body: Buffer): Buffer {
  return createHmac('sha256', key).update(body).digest();
}

export function encodeHeartbeat(hb: Heartbeat, key: Buffer): Buffer {
  const buf = Buffer.alloc(HEARTBEAT_LENGTH);
  HEARTBEAT_MAGIC.copy(buf, 0);
  buf.writeUInt8(hb.down ? DOWN_NOTICE_TYPE : HEARTBEAT_TYPE, 4);
  buf.writeUInt8((hb.draining ? FLAG_DRAINING : 0) | (hb.healthy ? 0 : FLAG_UNHEALTHY) | (hb.toAll ? FLAG_TO_ALL : 0), 5);
  buf.writeUInt16BE(hb.sender, 6);
  buf.writeBigUInt64BE(hb.epoch, 8);
  buf.writeBigUInt64BE(hb.seq, 16);
  buf.writeUInt32BE(hb.down ? hb.down.subject : toU32(hb.load), 24);
  if (hb.down) buf.writeUInt32BE(hb.down.subjectSeq >>> 0, 28);
  mac(key, buf.subarray(0, HEARTBEAT_BODY_LENGTH)).copy(buf, HEARTBEAT_BODY_LENGTH);
  return buf;
}

/** Reads the fields. Says nothing about authenticity: call verifyHeartbeatMac too. */
export function parseHeartbeat(buf: Buffer): ParseResult {
  if (buf.length !== HEARTBEAT_LENGTH) return { ok: false, reason: 'truncated' };
  if (!buf.subarray(0, 4).equals(HEARTBEAT_MAGIC)) return { ok: false, reason: 'bad_magic' };
  const type = buf.readUInt8(4);
  if (type !== HEARTBEAT_TYPE && type !== DOWN_NOTICE_TYPE) return { ok: false, reason: 'bad_type' };
  const heartbeat: Heartbeat = {
    draining: (buf.readUInt8(5) & FLAG_DRAINING) !== 0,
    healthy: (buf.readUInt8(5) & FLAG_UNHEALTHY) === 0,
    toAll: (buf.readUInt8(5) & FLAG_TO_ALL) !== 0,
    sender: buf.readUInt16BE(6),
    epoch: buf.readBigUInt64BE(8),
    seq: buf.readBigUInt64BE(16),
    load: buf.readUInt32BE(24),
  };
  if (type === DOWN_NOTICE_TYPE) heartbeat.down = { subject: buf.readUInt32BE(24), subjectSeq: buf.readUInt32BE(28) };
  return { ok: true, heartbeat };
}

/** Constant-time comparison, so response timing tells a forger nothing about the MAC. */
export function verifyHeartbeatMac(buf: Buffer, key: Buffer): boolean {
  if (buf.length !== HEARTBEAT_LENGTH) return false;
  const expected = mac(key, buf.subarray(0, HEARTBEAT_BODY_LENGTH));
  return timingSafeEqual(expected, buf.subarray(HEARTBEAT_BODY_LENGTH));
}
