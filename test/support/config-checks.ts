// Loading a configuration as the config tests do (from a written file, the
// ephemeral port range fixed so the peer-port checks do not depend on this
// machine), and the check that one is refused with its key and reason named.
import assert from 'node:assert/strict';
import { ConfigError, loadConfig } from '../../lib/config';
import { writeConfig } from './configs';

export const EPHEMERAL_RANGE: [number, number] = [32768, 60999];

export const load = (config: unknown, env: NodeJS.ProcessEnv = {}) => loadConfig({ file: writeConfig(config), env, ephemeralRange: EPHEMERAL_RANGE });

export function refuses(config: unknown, key: string, reason: RegExp, env: NodeJS.ProcessEnv = {}): void {
  assert.throws(() => load(config, env), (err: unknown) => {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    assert.equal(err.key, key);
    assert.match(err.reason, reason);
    return true;
  });
}
