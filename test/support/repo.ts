// The repository root, found from wherever this file runs (test/support as
// TypeScript, or any compiled out dir): the nearest directory with package.json.
import { existsSync } from 'node:fs';
import path from 'node:path';

export function repoRoot(): string {
  let dir = __dirname;
  while (!existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${__dirname}`);
    dir = up;
  }
  return dir;
}
