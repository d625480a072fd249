// dpr's version, from package.json: two levels up from dist/lib/ (and from
// lib/), in the repository and in a package installed with npm alike.
import fs from 'node:fs';
import path from 'node:path';

export function packageVersion(): string {
  const file = path.resolve(__dirname, '..', '..', 'package.json');
  return (JSON.parse(fs.readFileSync(file, 'utf8')) as { version: string }).version;
}
