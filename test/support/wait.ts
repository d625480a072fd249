// Waiting for conditions instead of for fixed times: a busy 2-core machine
// stretches every delay, and a test that sleeps "long enough" is flaky by
// construction.
import assert from 'node:assert/strict';
import type { HeldConnection } from '../../tools/hold';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` every `everyMs` until it holds; throws naming `what` after `timeoutMs`. Returns the ms waited. */
export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 50): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await cond()) return Date.now() - start;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

export interface HeldExpectation {
  /** Answers every connection must have had (a hung one has few). */
  minOk: number;
  /** Only these connections are judged (default: all). */
  only?: (c: HeldConnection) => boolean;
  /** At least this many connections must be judged (else the test shows nothing). */
  atLeast?: number;
  /** No answer took longer than this (a stall shows here whatever the hold's length). */
  maxWaitMs?: number;
}

/** Every judged connection lived to the end, on one host, answered at least minOk times. */
export function assertHeld(conns: readonly HeldConnection[], e: HeldExpectation): void {
  const judged = conns.filter(e.only ?? (() => true));
  assert.ok(judged.length >= (e.atLeast ?? 1), `only ${judged.length} connections to judge: the test shows nothing`);
  for (const c of judged) {
    assert.equal(c.error, null, `a connection served by ${c.servedBy} broke: ${c.error} (after ${c.ok} answers, longest wait ${c.maxWaitMs} ms)`);
    assert.equal(c.moved, false, `a connection moved between hosts (last ${c.servedBy})`);
    assert.ok(c.ok >= e.minOk, `a connection served by ${c.servedBy} had only ${c.ok} answers (at least ${e.minOk} expected; longest wait ${c.maxWaitMs} ms)`);
    if (e.maxWaitMs !== undefined) assert.ok(c.maxWaitMs <= e.maxWaitMs, `a connection served by ${c.servedBy} waited ${c.maxWaitMs} ms for an answer (at most ${e.maxWaitMs} expected)`);
  }
}

/**
 * The stall limit for connections held across a crash and restart of the
 * daemon that routes them: their packets wait for the new daemon, and TCP
 * sends again 0.2, 0.6, 1.4, 3.0 and 6.2 s after the first try. A restart
 * within 3.0 s (about 0.5 s alone, 1.5 s beside a CPU hog) is answered by
 * then; at the default 3 s, one beside the hog failed at 3039 ms.
 */
export const RESTART_STALL_MS = 6000;
