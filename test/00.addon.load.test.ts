import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DprNativeError, Engine } from '../lib/native';

test('00.addon: a bad option is refused with DprNativeError naming the option', () => {
  assert.throws(
    () => new Engine({} as never),
    (err: unknown) => err instanceof DprNativeError && err.code === 'EINVAL' && /role/.test(err.message),
  );
});
