// Debian's nginx (nginx-light) as a host's web server in a namespace: the
// SPECweb96 files as real files (bench/wrk/specweb96.lua asks for
// `/?size=N`, nginx answers with the file named N), one worker, sendfile,
// an `x-served-by` header naming the host, listening on the wildcard address
// as dpr requires. Nothing outside the run's own directory is written to:
// the pid file, logs and temporary paths are all under it.
import fs from 'node:fs';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { Testbed } from '../test/support/netns';

export const NGINX = '/usr/sbin/nginx';

/** The sizes bench/wrk/specweb96.lua asks for: nine files per SPECweb96 class. */
export const SPECWEB_SIZES = [102, 1024, 10240, 102400].flatMap((unit) => Array.from({ length: 9 }, (_, k) => unit * (k + 1)));

/**
 * Text to compress (words from a small vocabulary in a seeded order): gzip
 * level 6 makes it 6.3x smaller and spends about 12 µs per KB on it, so a
 * request costs the server CPU as a dynamic page does.
 */
function pageText(size: number, seed: number): Buffer {
  const words = ['the', 'cluster', 'host', 'packet', 'rewrite', 'server', 'client', 'connection', 'load', 'peer', 'table', 'flow', 'route', 'address', 'port', 'queue'];
  let s = seed >>> 0 || 1;
  const out = Buffer.alloc(size);
  let i = 0;
  while (i < size) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    const w = `${words[s % words.length]}${s % 7 === 0 ? '.\n' : ' '}`;
    i += out.write(w.slice(0, size - i), i);
  }
  return out;
}

/** Writes the files once per run into dir/files. */
export function writeFiles(dir: string): string {
  const files = path.join(dir, 'files');
  fs.mkdirSync(files, { recursive: true });
  for (const size of SPECWEB_SIZES) fs.writeFileSync(path.join(files, String(size)), pageText(size, size));
  return files;
}

function config(id: number, dir: string, files: string): string {
  const own = (name: string) => path.join(dir, `h${id}.${name}`);
  return [
    'daemon off;',
    // Workers as root: the run's directory is private (mkdtemp makes it 0700).
    'user root;',
    'worker_processes 1;',
    `pid ${own('pid')};`,
    `error_log ${own('error.log')} warn;`,
    'events { worker_connections 4096; }',
    'http {',
    '  access_log off;',
    '  sendfile on;',
    '  keepalive_timeout 0;',
    // Compressed on the fly when asked (bench/wrk/specweb96.lua SEED gzip): CPU per request, as dynamic pages cost.
    '  default_type text/html;',
    '  gzip on;',
    '  gzip_comp_level 6;',
    '  gzip_min_length 0;',
    `  client_body_temp_path ${own('body')};`,
    `  proxy_temp_path ${own('proxy')};`,
    `  fastcgi_temp_path ${own('fastcgi')};`,
    `  uwsgi_temp_path ${own('uwsgi')};`,
    `  scgi_temp_path ${own('scgi')};`,
    '  server {',
    '    listen 80 backlog=4096;',
    `    root ${files};`,
    `    location / { add_header x-served-by ${id} always; try_files /$arg_size =404; }`,
    '  }',
    '}',
    '',
  ].join('\n');
}

/** Starts nginx for host `id` in `host`'s namespace and waits until it listens. */
export async function startNginx(bed: Testbed, host: string, id: number, dir: string, files: string): Promise<ChildProcess> {
  const file = path.join(dir, `h${id}.nginx.conf`);
  fs.writeFileSync(file, config(id, dir, files));
  bed.exec(host, [NGINX, '-t', '-q', '-c', file]);
  const child = bed.spawn(host, [NGINX, '-c', file]);
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const deadline = Date.now() + 10_000;
  while (!bed.exec(host, ['ss', '-ltnH', 'sport = :80']).trim()) {
    if (child.exitCode !== null) throw new Error(`nginx on ${host} exited ${child.exitCode}: ${err.trim()}`);
    if (Date.now() > deadline) throw new Error(`nginx on ${host} not listening after 10 s: ${err.trim()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return child;
}
