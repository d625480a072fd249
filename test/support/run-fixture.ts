// Runs one packet fixture through the real addon: its steps first, then the
// packet under test.
import type { NativeEngine, Outcome } from '../../lib/native';
import { macBytes, makeEngine } from './fixture-engines';
import { DEFAULT_NOW_MS, type FixtureStep, type PacketFixture } from './fixture-format';
import { fromHex } from './packet-builder';

function runStep(engine: NativeEngine, s: FixtureStep): void {
  engine.process(fromHex(s.input), s.csumNotReady, s.nowMs ?? DEFAULT_NOW_MS);
}

export interface FixtureRun {
  outcome: Outcome;
  output: Uint8Array;
}

export function runFixture(f: PacketFixture): FixtureRun {
  const engine = makeEngine(f.engine);
  (f.steps ?? []).forEach((s) => runStep(engine, s));
  const output = fromHex(f.input);
  const meta = { ...(f.srcMac ? { srcMac: macBytes(f.srcMac) } : {}), ...(f.wireLength ? { wireLength: f.wireLength } : {}) };
  const outcome = engine.process(output, f.csumNotReady, f.nowMs ?? DEFAULT_NOW_MS, meta);
  return { outcome, output };
}
