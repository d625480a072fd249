// The cluster's shared heartbeat key(s), from the configuration: `peers.key`
// or `peers.keyFile`, and during a rotation `peers.rotationKey` or
// `peers.rotationKeyFile` (accepted, never signed with). Error messages name
// the setting and never hold key material.
import { readFileSync } from 'node:fs';

/** Shorter keys make HMAC forgery by key search plausible. */
export const MIN_KEY_BYTES = 16;

interface KeySettings {
  key: string;
  keyFile: string;
  rotationKey: string;
  rotationKeyFile: string;
}

/** The key heartbeats are signed with, and the other one a rotation accepts too (docs/operations.md). */
export function loadKeys(p: KeySettings): { sign: Buffer; alsoAccept: Buffer[] } {
  const sign = loadKey({ key: p.key || undefined, keyFile: p.keyFile || undefined });
  const alsoAccept = p.rotationKey || p.rotationKeyFile
    ? [loadKey({ key: p.rotationKey || undefined, keyFile: p.rotationKeyFile || undefined }, 'peers.rotationKey')]
    : [];
  return { sign, alsoAccept };
}

/**
 * The shared HMAC key from config: `peers.key` (hex or base64 text) or
 * `peers.keyFile` (a file holding such text; surrounding whitespace ignored).
 * Exactly one must be set. Error messages never include key material.
 */
export function loadKey(opts: { key?: string; keyFile?: string }, name = 'peers.key'): Buffer {
  const { key, keyFile } = opts;
  if (key && keyFile) throw new Error(`${name} and ${name}File are both set: set only one`);
  if (key) return decodeKey(key, name);
  if (keyFile) return decodeKey(readKeyFile(keyFile, `${name}File`), `${name}File (${keyFile})`);
  throw new Error(`${name} or ${name}File must be set: a shared secret of at least ${MIN_KEY_BYTES} bytes, hex or base64`);
}

function readKeyFile(file: string, name: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`${name}: cannot read ${file}: ${(err as Error).message}`);
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
