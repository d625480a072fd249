// Connections from chosen client ports, all at once, for the TIME_WAIT cases:
// HTTP/1.0 with ?close=1, so the server closes first and keeps the 4-tuple
// in TIME_WAIT (60 s) while the client may use its port again at once.
import assert from 'node:assert/strict';
import type { Cluster } from '../../tools/cluster';

/** The client ports these tests use: below the ephemeral range, where no load's connection lands. */
const REUSED_PORTS = Array.from({ length: 12 }, (_, i) => 14000 + i);

/** One line per port: the answer's first line (`host=N`) or curl's error, then the port. */
function fromPorts(cluster: Cluster, url: string, ports: readonly number[], timeoutS: number): string[] {
  const one = (p: number): string =>
    `(r=$(curl -sS -g --http1.0 --max-time ${timeoutS} --local-port ${p} '${url}?close=1' 2>&1 | head -c 60); echo "$r ${p}") &`;
  return cluster.bed.exec('client', ['sh', '-c', `${ports.map(one).join(' ')} wait`]).trim().split('\n');
}

/** The lines of fromPorts() not answered by host `id`. */
const notServedBy = (lines: readonly string[], id: number): string[] => lines.filter((l) => !l.startsWith(`host=${id} `));

/**
 * Host `id`'s daemon is dead: connects from REUSED_PORTS (the rules serve
 * each there, which keeps it in TIME_WAIT), starts the daemon again, and
 * connects from the same ports. The table sends most of these 4-tuples
 * elsewhere, but their later packets would meet the TIME_WAIT (-m socket):
 * host `id` must serve every one, and say so in kept_for_local_socket.
 */
export async function assertReusedTuplesStayAcrossRestart(cluster: Cluster, id: number, url: string): Promise<void> {
  assert.deepEqual(notServedBy(fromPorts(cluster, url, REUSED_PORTS, 5), id), [], `with no daemon, h${id} serves every connection`);
  await cluster.startDaemon(id);
  await cluster.waitForMembership();
  const was = cluster.status(id).entry!.notes.kept_for_local_socket;
  const again = fromPorts(cluster, url, REUSED_PORTS, 4);
  const kept = cluster.status(id).entry!.notes.kept_for_local_socket - was;
  assert.deepEqual(notServedBy(again, id), [], `4-tuples in TIME_WAIT on h${id} after the restart (${kept} kept there by their socket)`);
  assert.ok(kept >= 1, 'no reused 4-tuple was kept by its socket: the test shows nothing');
}
