// The flow table on disk, so that a restarted daemon (an upgrade, a crash)
// routes established connections exactly as before: forwarded flows go on to
// the same peer instead of being reset by the local stack.
//
// File: 'DPRF' | version u32 | saved-at (wall clock, ms) f64 | IPv4 flows u32
// | IPv6 flows u32 | IPv4 flow words | IPv6 flow words (lib/native.ts
// FLOW_WORDS and FLOW_WORDS6 per flow, little-endian). Version 2 (before
// IPv6) had no counts and IPv4 words only; it is still read. Written to a
// temporary file and renamed, so a crash mid-write leaves the previous snapshot.
import fs from 'node:fs';
import path from 'node:path';
import { FLOW_WORDS, FLOW_WORDS6 } from './native';

const MAGIC = 'DPRF';
// Version 2: FLOW_WORDS 6 (the client's next sequence number, issue 11).
// Version 3: the IPv6 flows beside (issue 15). A version-1 file is not read:
// drain before such an upgrade, as docs/operations.md says.
const VERSION = 3;
const V2 = 2;
const HEADER = 16;
const COUNTS = 8;

/**
 * Writes the snapshot off the event loop (libuv's thread pool does the
 * writing and the fsync: 1M flows are 20 MB, tens of ms of disk work).
 */
export async function saveFlows(file: string, words: Uint32Array, words6: Uint32Array = new Uint32Array(0), now = Date.now()): Promise<void> {
  await fs.promises.mkdir(path.dirname(file), { recursive: true });
  const header = Buffer.alloc(HEADER + COUNTS);
  header.write(MAGIC, 0, 'ascii');
  header.writeUInt32LE(VERSION, 4);
  header.writeDoubleLE(now, 8);
  header.writeUInt32LE(words.length / FLOW_WORDS, HEADER);
  header.writeUInt32LE(words6.length / FLOW_WORDS6, HEADER + 4);
  const tmp = `${file}.tmp-${process.pid}`;
  const fh = await fs.promises.open(tmp, 'w', 0o600);
  try {
    await fh.writev([header, Buffer.from(words.buffer, words.byteOffset, words.byteLength), Buffer.from(words6.buffer, words6.byteOffset, words6.byteLength)]);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fs.promises.rename(tmp, file);
}

/**
 * The saved flows (IPv4, and IPv6 beside: empty in a version-2 file) with
 * their ages advanced by the time since the save, or null when there is no
 * usable file (absent, foreign, truncated).
 */
export function loadFlows(file: string, now = Date.now()): { words: Uint32Array; words6: Uint32Array; savedAgoMs: number } | null {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch {
    return null;
  }
  if (buf.length < HEADER || buf.toString('ascii', 0, 4) !== MAGIC) return null;
  const version = buf.readUInt32LE(4);
  let n4: number;
  let n6: number;
  let body: number;
  if (version === V2) {
    if ((buf.length - HEADER) % (4 * FLOW_WORDS) !== 0) return null;
    [n4, n6, body] = [(buf.length - HEADER) / (4 * FLOW_WORDS), 0, HEADER];
  } else if (version === VERSION && buf.length >= HEADER + COUNTS) {
    [n4, n6, body] = [buf.readUInt32LE(HEADER), buf.readUInt32LE(HEADER + 4), HEADER + COUNTS];
    if (buf.length !== body + 4 * (n4 * FLOW_WORDS + n6 * FLOW_WORDS6)) return null;
  } else {
    return null;
  }
  const savedAgoMs = Math.max(0, now - buf.readDoubleLE(8));
  const words = readWords(buf, body, n4 * FLOW_WORDS, FLOW_WORDS, savedAgoMs);
  const words6 = readWords(buf, body + 4 * n4 * FLOW_WORDS, n6 * FLOW_WORDS6, FLOW_WORDS6, savedAgoMs);
  return { words, words6, savedAgoMs };
}

/** `count` little-endian words from `at`; the last word of each flow is its age, advanced by `agoMs`. */
function readWords(buf: Buffer, at: number, count: number, perFlow: number, agoMs: number): Uint32Array {
  const words = new Uint32Array(count);
  for (let i = 0; i < count; i++) words[i] = buf.readUInt32LE(at + i * 4);
  for (let i = perFlow - 1; i < count; i += perFlow) words[i] = Math.min(0xffffffff, words[i]! + agoMs);
  return words;
}
