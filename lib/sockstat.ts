// The kernel's count of TCP sockets in use in this network namespace
// (/proc/net/sockstat, "TCP: inuse N"): every socket but TIME_WAIT ones,
// listeners and outgoing connections included. One pread of an open file,
// about 4 µs, against ~2 ms for the sock_diag dump that counts exactly the
// established connections on the service ports (the kernel walks its whole
// established hash for that). lib/load-meter.ts calibrates the one by the
// other: the difference (listeners, the web server's own connections to its
// backends, the daemon's) changes slowly.
import fs from 'node:fs';

export class TcpInUse {
  private fd: number | null = null;
  private readonly buf = Buffer.alloc(1024);

  constructor(private readonly file = '/proc/net/sockstat') {}

  /** The count, or null when the file cannot be read (not Linux, no /proc). */
  read(): number | null {
    try {
      if (this.fd === null) this.fd = fs.openSync(this.file, 'r');
      const n = fs.readSync(this.fd, this.buf, 0, this.buf.length, 0);
      const m = /^TCP: inuse (\d+)/m.exec(this.buf.toString('latin1', 0, n));
      return m ? Number(m[1]) : null;
    } catch {
      return null;
    }
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }
}
