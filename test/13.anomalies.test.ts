import { test } from 'node:test';
import assert from 'node:assert/strict';
import winston from 'winston';
import Transport from 'winston-transport';
import { AnomalyLog } from '../lib/anomalies';
import { Engine, type QueueStats } from '../lib/native';
import { baseOptions } from './support/fixture-engines';

class Capture extends Transport {
  readonly lines: Array<Record<string, unknown>> = [];
  override log(info: Record<string, unknown>, next: () => void): void {
    this.lines.push(info);
    next();
  }
}

function asQueueStats(e: InstanceType<typeof Engine>): QueueStats {
  const zero = { batches: 0, batchPackets: 0, batchMax: 0, roundsCut: 0, recvErrors: 0, enobufs: 0, eintr: 0, sendErrors: 0, batchesSplit: 0,
    sendLimit: 0, verdictErrors: 0, startupAccepted: 0, startupDropped: 0, sockDiagErrors: 0 };
  return { ...e.stats(), queueNum: 0, queue: zero };
}

test('13.anomalies: a burst of malformed packets gives one warning with the counts, not a line per packet', () => {
  const capture = new Capture();
  const log = winston.createLogger({ transports: [capture] });
  const anomalies = new AnomalyLog(log);
  const engine = new Engine(baseOptions());
  anomalies.check('entry', asQueueStats(engine));
  for (let i = 0; i < 1000; i++) engine.process(new Uint8Array(10), false, 0); // truncated IP
  for (let i = 0; i < 7; i++) engine.process(Uint8Array.from([0x50, ...new Array(39).fill(0)]), false, 0); // version 5
  for (let i = 0; i < 3; i++) engine.process(Uint8Array.from([0x60, ...new Array(38).fill(0)]), false, 0); // IPv6, 39 bytes
  anomalies.check('entry', asQueueStats(engine));
  assert.equal(capture.lines.length, 1);
  assert.equal(capture.lines[0]!['malformed.truncated_ip'], 1000);
  assert.equal(capture.lines[0]!['malformed.not_ipv4'], 7);
  assert.equal(capture.lines[0]!['malformed.truncated_ipv6'], 3);
  anomalies.check('entry', asQueueStats(engine));
  assert.equal(capture.lines.length, 1, 'nothing grew: nothing logged');
});
