// The peers' MACs from the kernel's neighbour table (lib/neighbours): only
// resolved entries count, each host id gets its cluster address's MAC, this
// host none, and the serve engine hears of a change only once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { arpNeighbours, ndNeighbours, PeerMacs, parseArp, peerMacTable } from '../lib/neighbours';

const ARP = `IP address       HW type     Flags       HW address            Mask     Device
198.18.0.2       0x1         0x2         02:AA:00:00:00:02     *        eth0
198.18.0.3       0x1         0x0         00:00:00:00:00:00     *        eth0
198.18.0.4       0x1         0x6         02:aa:00:00:00:04     *        eth0
198.18.0.9       0x1         0x2         02:aa:00:00:00:09     *        eth1
`;

const HOSTS = [0, 1, 2, 3].map((id) => ({ id, service: `198.18.1.${id + 1}`, cluster: `198.18.0.${id + 1}`, weight: 1 }));

test('18.neighbours: resolved entries only (complete flag), MACs in lower case', () => {
  const m = parseArp(ARP);
  assert.deepEqual([...m], [['198.18.0.2', '02:aa:00:00:00:02'], ['198.18.0.4', '02:aa:00:00:00:04'], ['198.18.0.9', '02:aa:00:00:00:09']]);
});

test('18.neighbours: the table has 6 bytes per host id, the cluster address\'s MAC, zeros for unknown peers and this host', () => {
  const t = peerMacTable(HOSTS, 0, new Map([...parseArp(ARP), ['198.18.0.1', '02:aa:00:00:00:01']]));
  assert.equal(t.length, 24);
  assert.deepEqual([...t.subarray(0, 6)], [0, 0, 0, 0, 0, 0], 'this host: none');
  assert.deepEqual([...t.subarray(6, 12)], [2, 0xaa, 0, 0, 0, 2]);
  assert.deepEqual([...t.subarray(12, 18)], [0, 0, 0, 0, 0, 0], 'incomplete: unknown');
  assert.deepEqual([...t.subarray(18, 24)], [2, 0xaa, 0, 0, 0, 4]);
});

test('18.neighbours: PeerMacs pushes the table at first and again only when it changes; rereads no sooner than asked', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpr-arp-'));
  const file = path.join(dir, 'arp');
  try {
    fs.writeFileSync(file, ARP);
    const pushed: string[] = [];
    const macs = new PeerMacs(HOSTS, 0, (t) => pushed.push(Buffer.from(t).toString('hex')), arpNeighbours(file));
    macs.refresh();
    macs.refresh();
    assert.equal(pushed.length, 1);
    fs.writeFileSync(file, ARP.replace('198.18.0.3       0x1         0x0         00:00:00:00:00:00', '198.18.0.3       0x1         0x2         02:aa:00:00:00:03'));
    macs.refresh(60_000);
    assert.equal(pushed.length, 1, 'read less than a minute ago: not read again');
    macs.refresh();
    assert.equal(pushed.length, 2);
    assert.match(pushed[1]!, /02aa00000003/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('18.neighbours: with heartbeats over IPv6 (peers.family ipv6) the MACs come from the IPv6 table, by each peer\'s cluster6', () => {
  const hosts = HOSTS.slice(0, 3).map((h) => ({ ...h, service6: `2001:2::${h.id + 1}`, cluster6: `2001:2:0:1::${h.id + 1}` }));
  const pushed: Uint8Array[] = [];
  const list = () => [{ address: '2001:2:0:1::2', mac: '02:aa:00:00:00:12' }, { address: '2001:2::3', mac: '02:aa:00:00:00:03' }];
  new PeerMacs(hosts, 0, (t) => pushed.push(t), ndNeighbours(list)).refresh();
  assert.equal(pushed.length, 1);
  assert.deepEqual([...pushed[0]!.subarray(6, 12)], [2, 0xaa, 0, 0, 0, 0x12], 'h1 by its cluster6');
  assert.deepEqual([...pushed[0]!.subarray(12, 18)], [0, 0, 0, 0, 0, 0], 'h2: only its service6 is in the table');
});
