// The long-lived-connection tool the cluster tests lean on (tools/hold.ts)
// must report a connection that stops being answered as broken, not as
// healthy: servers on 127.0.0.1 that answer, go silent, or close.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { runHold, type HoldSpec } from '../tools/hold';

/** A keep-alive server that answers the first `answers` requests of each connection, then `after`. */
async function server(answers: number, after: 'silent' | 'close'): Promise<{ port: number; close(): Promise<void>; waiting(connections: number): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  // Connections whose request past `answers` came (and got no answer), and who waits for a count of them.
  let unanswered = 0;
  const waiters: Array<{ connections: number; resolve: () => void }> = [];
  const srv = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    let seen = 0;
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString();
      while (buf.includes('\r\n\r\n')) {
        buf = buf.slice(buf.indexOf('\r\n\r\n') + 4);
        seen++;
        if (seen === answers + 1) {
          unanswered++;
          for (const w of waiters) if (unanswered >= w.connections) w.resolve();
        }
        if (seen <= answers) s.write('HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\nhost=4\n');
        else if (after === 'close') s.destroy();
        // silent: read and never answer, the socket stays open
      }
    });
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return {
    port: (srv.address() as net.AddressInfo).port,
    waiting: (connections) => new Promise<void>((resolve) => {
      if (unanswered >= connections) resolve();
      else waiters.push({ connections, resolve });
    }),
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      srv.close(() => resolve());
    }),
  };
}

const spec = (port: number, extra: Partial<HoldSpec> = {}): HoldSpec => ({
  address: '127.0.0.1', port, connections: 3, intervalMs: 50, durationMs: 1200, stallMs: 400, ...extra,
});

test('07.hold: connections that are answered throughout end healthy, with every answer counted', async () => {
  const s = await server(1000, 'silent');
  try {
    const conns = await runHold(spec(s.port), new Promise((r) => setTimeout(r, 1200)));
    for (const c of conns) {
      assert.equal(c.error, null);
      assert.equal(c.servedBy, '4');
      assert.ok(c.ok >= 10, `only ${c.ok} answers in 1.2 s at one per 50 ms`);
      assert.ok(c.maxWaitMs < 400, `waited ${c.maxWaitMs} ms`);
    }
  } finally {
    await s.close();
  }
});

test('07.hold: a server that goes silent mid-hold breaks every connection with "no answer", and the wait shows', async () => {
  const s = await server(3, 'silent');
  try {
    const conns = await runHold(spec(s.port), new Promise((r) => setTimeout(r, 1200)));
    for (const c of conns) {
      assert.equal(c.ok, 3);
      assert.equal(c.error, 'no answer');
      assert.ok(c.maxWaitMs >= 400, `longest wait reported as ${c.maxWaitMs} ms`);
      assert.notEqual(c.brokeAtMs, null);
    }
  } finally {
    await s.close();
  }
});

test('07.hold: a request still unanswered when the hold ends is waited for, and is "no answer" past stallMs', async () => {
  // Silent after 3 answers, and the hold is told to stop as soon as every
  // connection's fourth request is out (not after a fixed 250 ms, which a busy
  // machine could reach before then: seen once in a fresh-clone run): the
  // outstanding request must not be forgiven because time ran out.
  const s = await server(3, 'silent');
  try {
    const conns = await runHold(spec(s.port, { durationMs: undefined, stallMs: 600 }), s.waiting(3));
    for (const c of conns) {
      assert.equal(c.error, 'no answer');
      assert.ok(c.maxWaitMs >= 600);
    }
  } finally {
    await s.close();
  }
});

test('07.hold: a server that closes the connection breaks it as "closed early"', async () => {
  const s = await server(2, 'close');
  try {
    const conns = await runHold(spec(s.port), new Promise((r) => setTimeout(r, 1200)));
    for (const c of conns) {
      assert.equal(c.ok, 2);
      assert.equal(c.error, 'closed early');
    }
  } finally {
    await s.close();
  }
});
