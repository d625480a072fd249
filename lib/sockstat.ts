// The kernel's count of TCP sockets in use in this network namespace
// (/proc/net/sockstat "TCP: inuse N" for IPv4 plus /proc/net/sockstat6
// "TCP6: inuse N" for IPv6, which the first leaves out: a server listening
// on `::` has all its connections there, IPv4 clients' too): every socket
// but TIME_WAIT ones, listeners and outgoing connections included. One pread
// of each open file, about 4 µs, against ~2 ms for the sock_diag dump that
// counts exactly the established connections on the service ports (the
// kernel walks its whole established hash for that). lib/load-meter.ts
// calibrates the one by the other: the difference (listeners, the web
// server's own connections to its backends, the daemon's) changes slowly.
// native/own_load.cc reads the same two files.
import fs from 'node:fs';
import path from 'node:path';

const FILES: Array<[string, RegExp]> = [['sockstat', /^TCP: inuse (\d+)/m], ['sockstat6', /^TCP6: inuse (\d+)/m]];

export class TcpInUse {
  private readonly fds: Array<number | null> = [null, null];
  private readonly buf = Buffer.alloc(1024);

  constructor(private readonly dir = '/proc/net') {}

  /** The count, or null when sockstat cannot be read (not Linux, no /proc); without sockstat6 (no IPv6), IPv4's alone. */
  read(): number | null {
    let sum = 0;
    for (const [i, [name, re]] of FILES.entries()) {
      const n = this.readOne(i, name, re);
      if (n === null && i === 0) return null;
      sum += n ?? 0;
    }
    return sum;
  }

  private readOne(i: number, name: string, re: RegExp): number | null {
    try {
      this.fds[i] ??= fs.openSync(path.join(this.dir, name), 'r');
      const n = fs.readSync(this.fds[i]!, this.buf, 0, this.buf.length, 0);
      const m = re.exec(this.buf.toString('latin1', 0, n));
      return m ? Number(m[1]) : null;
    } catch {
      return null;
    }
  }

  close(): void {
    for (const [i, fd] of this.fds.entries()) {
      if (fd !== null) fs.closeSync(fd);
      this.fds[i] = null;
    }
  }
}
