// Runs one packet fixture through the real addon: its steps first (resolving
// deferred flows as the load policy would), then the packet under test.
import assert from 'node:assert/strict';
import type { NativeEngine, Outcome } from '../../lib/native';
import { macBytes, makeEngine } from './fixture-engines';
import { DEFAULT_NOW_MS, type FixtureStep, type PacketFixture } from './fixture-format';
import { fromHex } from './packet-builder';

function u32(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}

function u16(b: Uint8Array, at: number): number {
  return (b[at]! << 8) | b[at + 1]!;
}

/** Answers a deferred step the way the daemon does: resolve, keyed by the packet's 4-tuple. */
function resolveStep(engine: NativeEngine, bytes: Uint8Array, target: number, nowMs: number): void {
  const tcp = (bytes[0]! & 0x0f) * 4;
  const ok = engine.resolve(u32(bytes, 12), u16(bytes, tcp), u32(bytes, 16), u16(bytes, tcp + 2), target, nowMs);
  assert.ok(ok, 'resolve() found no pending flow for a deferred step');
}

function runStep(engine: NativeEngine, s: FixtureStep, index: number): void {
  const bytes = fromHex(s.input);
  const nowMs = s.nowMs ?? DEFAULT_NOW_MS;
  const out = engine.process(bytes, s.csumNotReady, nowMs);
  if (s.resolveTo === undefined) return;
  assert.equal(out.action, 'defer', `step ${index} has resolveTo but was not deferred`);
  resolveStep(engine, bytes, s.resolveTo, nowMs);
}

export interface FixtureRun {
  outcome: Outcome;
  output: Uint8Array;
}

export function runFixture(f: PacketFixture): FixtureRun {
  const engine = makeEngine(f.engine);
  (f.steps ?? []).forEach((s, i) => runStep(engine, s, i));
  const output = fromHex(f.input);
  const meta = { ...(f.srcMac ? { srcMac: macBytes(f.srcMac) } : {}), ...(f.wireLength ? { wireLength: f.wireLength } : {}) };
  const outcome = engine.process(output, f.csumNotReady, f.nowMs ?? DEFAULT_NOW_MS, meta);
  return { outcome, output };
}
