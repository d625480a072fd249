// The flow table on disk, so that a restarted daemon (an upgrade, a crash)
// routes established connections exactly as before: forwarded flows go on to
// the same peer instead of being reset by the local stack.
//
// File: 'DPRF' | version u32 | saved-at (wall clock, ms) f64 | flow words...
// (lib/native.ts FLOW_WORDS per flow, little-endian). Written to a temporary
// file and renamed, so a crash mid-write leaves the previous snapshot.
import fs from 'node:fs';
import path from 'node:path';
import { FLOW_WORDS } from './native';

const MAGIC = 'DPRF';
// Version 2: FLOW_WORDS 6 (the client's next sequence number, issue 11). A
// version-1 file is not read: drain before such an upgrade, as docs/operations.md says.
const VERSION = 2;
const HEADER = 16;

/**
 * Writes the snapshot off the event loop (libuv's thread pool does the
 * writing and the fsync: 1M flows are 20 MB, tens of ms of disk work).
 */
export async function saveFlows(file: string, words: Uint32Array, now = Date.now()): Promise<void> {
  await fs.promises.mkdir(path.dirname(file), { recursive: true });
  const header = Buffer.alloc(HEADER);
  header.write(MAGIC, 0, 'ascii');
  header.writeUInt32LE(VERSION, 4);
  header.writeDoubleLE(now, 8);
  const tmp = `${file}.tmp-${process.pid}`;
  const fh = await fs.promises.open(tmp, 'w', 0o600);
  try {
    await fh.writev([header, Buffer.from(words.buffer, words.byteOffset, words.byteLength)]);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fs.promises.rename(tmp, file);
}

/**
 * The saved flows with their ages advanced by the time since the save, or
 * null when there is no usable file (absent, foreign, truncated).
 */
export function loadFlows(file: string, now = Date.now()): { words: Uint32Array; savedAgoMs: number } | null {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch {
    return null;
  }
  if (buf.length < HEADER || buf.toString('ascii', 0, 4) !== MAGIC || buf.readUInt32LE(4) !== VERSION) return null;
  const body = buf.length - HEADER;
  if (body % (4 * FLOW_WORDS) !== 0) return null;
  const savedAgoMs = Math.max(0, now - buf.readDoubleLE(8));
  const words = new Uint32Array(body / 4);
  for (let i = 0; i < words.length; i++) words[i] = buf.readUInt32LE(HEADER + i * 4);
  for (let i = FLOW_WORDS - 1; i < words.length; i += FLOW_WORDS) {
    words[i] = Math.min(0xffffffff, words[i]! + savedAgoMs);
  }
  return { words, savedAgoMs };
}
