// Rule counters inside a test host's namespace, for assertions on what the
// installed rules did during a test (always as a change over the test, never
// a cumulative count that earlier tests may have filled).
import { parseRuleCounters } from '../../lib/kernel-queue';
import type { Testbed } from './netns';

/** Packets matched so far by the rules of `chain` in `table` whose text matches `rule`. */
export function ruleTotals(bed: Testbed, host: string, table: string, chain: string, rule: RegExp): number {
  return parseRuleCounters(bed.exec(host, ['iptables-save', '-c', '-t', table]))
    .filter((r) => r.chain === chain && rule.test(r.rule))
    .reduce((sum, r) => sum + r.packets, 0);
}
