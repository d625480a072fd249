// The packet-fixture file format (test/fixtures/packets/*.json), shared by the
// generator and the fixture test; scripts/fuzz-seeds.mjs reads the same files. No addon here.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Action, Malformed, Note } from '../../lib/native';
import { ENGINE_NAMES, type EngineName } from './cluster';
import { repoRoot } from './repo';

/** A packet run before the one under test, to put the flow table in a state. */
export interface FixtureStep {
  input: string;
  csumNotReady: boolean;
  /** Engine clock for this packet; 1000 when absent. */
  nowMs?: number;
}

export interface PacketFixture {
  description: string;
  engine: EngineName;
  csumNotReady: boolean;
  steps?: FixtureStep[];
  /** Engine clock for the input packet; 1000 when absent. */
  nowMs?: number;
  /** The source MAC the queue read (NFQA_HWADDR), as aa:bb:..; absent: none (not Ethernet). */
  srcMac?: string;
  /** The packet's real length when the queue's copy was cut short (NFQA_CAP_LEN). */
  wireLength?: number;
  input: string;
  expected: {
    action: Action;
    malformed: Malformed | null;
    note: Note | null;
    mark: number;
    output: string;
  };
}

export const DEFAULT_NOW_MS = 1000;

/** test/fixtures/packets of the repository this file runs from. */
export function fixtureDir(): string {
  return path.join(repoRoot(), 'test', 'fixtures', 'packets');
}

function check(cond: boolean, file: string, what: string): void {
  if (!cond) throw new Error(`fixture ${file}: ${what}`);
}

/** Reads and shape-checks every fixture, sorted by file name. */
export function loadFixtures(dir = fixtureDir()): { file: string; fixture: PacketFixture }[] {
  const files = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
  return files.map((file) => {
    const fixture = JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as PacketFixture;
    check(typeof fixture.description === 'string', file, 'description missing');
    check(ENGINE_NAMES.includes(fixture.engine), file, `unknown engine '${fixture.engine}'`);
    check(typeof fixture.csumNotReady === 'boolean', file, 'csumNotReady must be a boolean');
    check(typeof fixture.input === 'string' && typeof fixture.expected?.output === 'string', file, 'hex missing');
    return { file, fixture };
  });
}
