// A router in front of a test cluster: a namespace on the cluster's bridge
// (Cluster's extraHosts) with a second link to a namespace of its own on
// another network, so packets from there arrive at the hosts one router
// away (TTL one lower, the router's MAC) and, with a smaller MTU on the far
// link, path MTU discovery matters (over IPv6 too, with `six`). The far
// namespace joins the bed's list, so the bed removes it with everything else.
import { execFileSync } from 'node:child_process';
import type { Testbed } from './netns';

export interface RouterPlan {
  /** The router's namespace, already on the bridge with `bridgeAddress`. */
  router: string;
  bridgeAddress: string;
  /** The far side: a namespace name, its address and the router's, on a /24 of 198.18.0.0/15. */
  far: string;
  farAddress: string;
  routerFarAddress: string;
  /** MTU of the far link on the router's side (the far host keeps 1500). */
  routerFarMtu?: number;
  /** Hosts on the bridge that get a route to the far network through the router. */
  hosts: string[];
  /** IPv6 beside IPv4 (2001:2::/48 only): the router's bridge address, the far /64's two ends. */
  six?: { bridgeAddress: string; farAddress: string; routerFarAddress: string };
}

export function addRouter(bed: Testbed, p: RouterPlan): void {
  const far = bed.ns(p.far);
  const router = bed.ns(p.router);
  const run = (ns: string, ...argv: string[]): void => void bed.exec(ns, argv);
  execFileSync('ip', ['netns', 'add', far]);
  bed.hosts.push(p.far);
  execFileSync('ip', ['-n', router, 'link', 'add', 'far0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', far]);
  run(p.router, 'ip', 'addr', 'add', `${p.routerFarAddress}/24`, 'dev', 'far0');
  if (p.routerFarMtu) run(p.router, 'ip', 'link', 'set', 'far0', 'mtu', String(p.routerFarMtu));
  run(p.router, 'ip', 'link', 'set', 'far0', 'up');
  run(p.router, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
  run(p.far, 'ip', 'link', 'set', 'lo', 'up');
  run(p.far, 'ip', 'addr', 'add', `${p.farAddress}/24`, 'dev', 'eth0');
  run(p.far, 'ip', 'link', 'set', 'eth0', 'up');
  run(p.far, 'ip', 'route', 'add', 'default', 'via', p.routerFarAddress);
  const farNet = p.farAddress.replace(/\.\d+$/, '.0/24');
  for (const h of p.hosts) run(h, 'ip', 'route', 'add', farNet, 'via', p.bridgeAddress);
  if (p.six) {
    // nodad: the addresses are usable at once (no tentative second).
    run(p.router, 'ip', '-6', 'addr', 'add', `${p.six.bridgeAddress}/64`, 'dev', 'eth0', 'nodad');
    run(p.router, 'ip', '-6', 'addr', 'add', `${p.six.routerFarAddress}/64`, 'dev', 'far0', 'nodad');
    run(p.router, 'sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1');
    run(p.far, 'ip', '-6', 'addr', 'add', `${p.six.farAddress}/64`, 'dev', 'eth0', 'nodad');
    run(p.far, 'ip', '-6', 'route', 'add', 'default', 'via', p.six.routerFarAddress);
    const farNet6 = `${p.six.farAddress.replace(/::[0-9a-f]+$/, '::')}/64`;
    for (const h of p.hosts) run(h, 'ip', '-6', 'route', 'add', farNet6, 'via', p.six.bridgeAddress);
  }
}
