// The last file of the suite: every earlier test cleaned up after itself.
// Only under scripts/test.sh (npm test), which names this run's namespaces
// (DPR_TEST_RUN) and gives it a temporary folder of its own (TMPDIR): other
// runs on the same machine are none of this run's business.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import { leftoverNamespaces } from './support/netns';

const skip = process.env.DPR_TEST_RUN ? false : 'only under npm test (scripts/test.sh sets DPR_TEST_RUN and TMPDIR)';

test('99.leftovers: no namespace of this run is left', { skip }, () => {
  assert.deepEqual(leftoverNamespaces(), []);
});

test('99.leftovers: no temporary file or folder of this run is left', { skip }, () => {
  assert.ok(os.tmpdir().includes(`dpr-test-${process.env.DPR_TEST_RUN}-`), `TMPDIR is ${os.tmpdir()}`);
  assert.deepEqual(fs.readdirSync(os.tmpdir()), []);
});
