// Connections from chosen client ports, all at once, for the TIME_WAIT cases:
// HTTP/1.0 with ?close=1, so the server closes first and keeps the 4-tuple
// in TIME_WAIT (60 s) while the client may use its port again at once.
import type { Cluster } from '../../tools/cluster';

/** The client ports these tests use: below the ephemeral range, where no load's connection lands. */
export const REUSED_PORTS = Array.from({ length: 12 }, (_, i) => 14000 + i);

/** One line per port: the answer's first line (`host=N`) or curl's error, then the port. */
export function fromPorts(cluster: Cluster, url: string, ports: readonly number[], timeoutS: number): string[] {
  const one = (p: number): string =>
    `(r=$(curl -sS -g --http1.0 --max-time ${timeoutS} --local-port ${p} '${url}?close=1' 2>&1 | head -c 60); echo "$r ${p}") &`;
  return cluster.bed.exec('client', ['sh', '-c', `${ports.map(one).join(' ')} wait`]).trim().split('\n');
}

/** The lines of fromPorts() not answered by host `id`. */
export const notServedBy = (lines: readonly string[], id: number): string[] => lines.filter((l) => !l.startsWith(`host=${id} `));
