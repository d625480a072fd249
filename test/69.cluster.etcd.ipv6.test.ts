// A dual-stack cluster whose host list comes from etcd (issues 15 and 16):
// every host registers its IPv6 addresses beside its IPv4 ones
// (membership.service6, .cluster6), and IPv6 connections are forwarded to
// hosts the entry host learnt of from etcd alone: one that joins serves IPv6
// clients with nobody editing a file, one that leaves gets none.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Cluster, hostAddress, hostAddress6 } from '../tools/cluster';
import { ETCD_BINARY } from './support/etcd';
import { waitFor } from './support/wait';

const skip = fs.existsSync(ETCD_BINARY) ? false : `${ETCD_BINARY} is missing (Debian's etcd-server; npm run setup installs it)`;

// rewrite: the peers' IPv6 DNAT rules follow the list; direct: their service6 addresses on lo do.
// IPv6-only hosts (no IPv4 address anywhere, etcd on IPv6 too): their records carry IPv6 addresses alone.
const MODES = [
  { mode: 'rewrite', networks: 'one', tag: 'e6r', ipv4: true },
  { mode: 'direct', networks: 'split', tag: 'e6d', ipv4: true },
  { mode: 'direct', networks: 'split', tag: 'e6o', ipv4: false },
] as const;

describe('69.cluster.etcd.ipv6', { skip }, () => {
  for (const { mode, networks, tag, ipv4 } of MODES) test(`${mode}${ipv4 ? '' : ', IPv6-only hosts'}: ${ipv4 ? 'IPv6 and IPv4 clients reach' : 'IPv6 clients reach'} every host etcd lists: a host that joins serves ${ipv4 ? 'both' : 'them'}, one that leaves ${ipv4 ? 'neither' : 'none'}`, async () => {
    const cluster = await Cluster.create({ hosts: 3, members: [0, 1], etcd: true, ipv6: true, ipv4, tag, networks, config: { mode } });
    const six = [{ address: hostAddress6(0) }, { address: hostAddress6(1) }];
    try {
      for (const id of [0, 1]) {
        assert.equal(cluster.status(id).membership!.state, 'registered');
        assert.deepEqual(cluster.status(id).liveHosts, [0, 1]);
      }
      const two = await cluster.load({ targets: six, requests: 200, concurrency: 4 });
      assert.equal(two.errors, 0, `IPv6 errors: ${JSON.stringify(two.errorKinds)}`);
      assert.equal(two.addressMismatch, 0, 'an IPv6 client saw another address than it dialled');
      for (const id of ['0', '1']) assert.ok((two.servedBy[id] ?? 0) > 20, `host ${id} served ${two.servedBy[id] ?? 0} of 200 IPv6 requests`);

      // Host 2 joins: its record (with its IPv6 addresses) is all the others learn of it.
      cluster.install(2);
      await cluster.startDaemon(2);
      await waitFor('hosts 0 and 1 to route to host 2', () => [0, 1].every((id) => cluster.status(id).liveHosts.includes(2)), 10000, 100);
      const both = await cluster.load({ targets: [...six, ...(ipv4 ? [{ address: hostAddress(0) }] : [])], requests: 600, concurrency: 6 });
      assert.equal(both.errors, 0, `errors with host 2 in: ${JSON.stringify(both.errorKinds)}`);
      assert.equal(both.addressMismatch, 0);
      const v6 = await cluster.load({ targets: six, requests: 300, concurrency: 4 });
      assert.equal(v6.errors, 0, `IPv6 errors with host 2 in: ${JSON.stringify(v6.errorKinds)}`);
      assert.ok((v6.servedBy['2'] ?? 0) > 30, `host 2 served ${v6.servedBy['2'] ?? 0} of 300 IPv6 requests after joining`);

      // It leaves (SIGTERM: drains, revokes its lease): out of the lists, no new IPv6 connection for it.
      assert.equal(await cluster.signalDaemon(2, 'SIGTERM'), 0);
      await waitFor('host 2 out of the lists', () => [0, 1].every((id) => cluster.status(id).membership!.hosts === 2), 5000, 100);
      const after = await cluster.load({ targets: six, requests: 200, concurrency: 4 });
      assert.equal(after.errors, 0, `IPv6 errors after host 2 left: ${JSON.stringify(after.errorKinds)}`);
      assert.equal(after.servedBy['2'] ?? 0, 0, `host 2 served ${after.servedBy['2']} IPv6 requests after it left`);
    } finally {
      await cluster.destroy();
    }
  });
});
