// The heartbeats' HMAC-SHA256 (native/sha256.cc, written for speed: a MAC
// from precomputed pads) against RFC 4231's test vectors and Node's crypto.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { hmacSha256 } from '../lib/native';

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'));
const mac = (key: Uint8Array, data: Uint8Array): string => Buffer.from(hmacSha256(key, data)).toString('hex');

test('25.hmac: RFC 4231 test cases 1-4, 6 and 7', () => {
  const cases: Array<[Uint8Array, Uint8Array, string]> = [
    [hex('0b'.repeat(20)), Buffer.from('Hi There'), 'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7'],
    [Buffer.from('Jefe'), Buffer.from('what do ya want for nothing?'), '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843'],
    [hex('aa'.repeat(20)), hex('dd'.repeat(50)), '773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe'],
    [hex('0102030405060708090a0b0c0d0e0f10111213141516171819'), hex('cd'.repeat(50)), '82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b'],
    [hex('aa'.repeat(131)), Buffer.from('Test Using Larger Than Block-Size Key - Hash Key First'), '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54'],
    [hex('aa'.repeat(131)), Buffer.from('This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.'),
      '9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2'],
  ];
  for (const [key, data, want] of cases) assert.equal(mac(key, data), want);
});

test('25.hmac: the same as Node\'s crypto for every length around the block boundaries, and random keys', () => {
  for (let len = 0; len <= 200; len++) {
    const key = randomBytes(16 + (len % 80));
    const data = randomBytes(len);
    assert.equal(mac(key, data), createHmac('sha256', key).update(data).digest('hex'), `length ${len}`);
  }
});
