// What the kernel modes (`direct`, `tunnel`) add to a host beside iptables
// rules: the per-peer ipsets the entry engine writes forwarded flows to, the
// `ip rule fwmark` rules and one routing table per peer that send marked
// packets to that peer, and in `tunnel` mode a VXLAN device per peer. Rendered
// from the configuration like lib/rules.ts; applied and removed by
// lib/install.ts (all or nothing), found again by name or by ROUTE_PROTO.
//
// Names carry the address family: `dpr4_` sets, and on a dual-stack host
// (hosts[].service6) `dpr6_` sets of family inet6 beside them, with `ip -6`
// rules and routes of the same marks and table numbers (the IPv6 policy
// routing database is a space of its own). In `tunnel` the underlay stays
// IPv4: the IPv6 tables route into the same VXLAN devices.
import { hasIpv4, hasIpv6, restoreAddress, thisHost, type DprConfig } from './config';
import { VXLAN_OVERHEAD } from './config-schema';

/** iproute2 protocol number on our rules and routes: how uninstall finds them without a configuration. */
export const ROUTE_PROTO = '77';
/** Set names: `dpr4_to<id>` (flows forwarded to host id), `dpr4_fin` (hold-off after FIN/RST). */
export const SET_PREFIX = 'dpr4_';
/** The IPv6 sets (family inet6): `dpr6_to<id>`, `dpr6_fin`. */
export const SET_PREFIX6 = 'dpr6_';
/** VXLAN devices are named `dprvx<id>` (towards host id). */
export const LINK_PREFIX = 'dprvx';
/**
 * After a client's FIN or RST, its packets do not lengthen the flow's entry
 * again for this long: the last ACK of a close must not bring an entry back
 * to the established timeout. A client that keeps talking after that (the
 * FIN was a half-close, or the RST forged) lengthens it again.
 */
export const FIN_HOLD_OFF_S = 5;
/**
 * The MAC address of host `self`'s VXLAN device towards host `peer`. Fixed,
 * so the other end needs no ARP: its route goes via our cluster address with
 * a permanent neighbour entry for this MAC. (One MAC on both ends would not
 * do: VXLAN drops a frame from its own MAC as a loop.)
 */
export const tunnelMac = (self: number, peer: number): string =>
  ['02', '64', '70', '72', self, peer].map((b) => (typeof b === 'number' ? b.toString(16).padStart(2, '0') : b)).join(':');

export const peerSet = (id: number, prefix = SET_PREFIX): string => `${prefix}to${id}`;
export const finSet = `${SET_PREFIX}fin`;
export const finSet6 = `${SET_PREFIX6}fin`;
export const tunnelLink = (id: number): string => `${LINK_PREFIX}${id}`;
/**
 * The IPv6 next hop of every tunnel, standing for its far end, which holds
 * no such address and needs none: the frame reaches it by MAC (the permanent
 * neighbour entry's). A link-local gateway is on-link on the device it names
 * by definition, so the route needs no `onlink` and no IPv6 address of ours
 * on the device (it has none: addrgenmode none). The peer's cluster6 with
 * `onlink` would work too, but would tie the route to an address the tunnel
 * does not use (its underlay is IPv4) and that the main table routes
 * elsewhere. Neighbour entries belong to a device: one address serves every
 * tunnel.
 */
export const TUNNEL_GATEWAY6 = 'fe80::1';

export interface KernelPath {
  /** `ipset create` arguments, one list per set. */
  sets: string[][];
  /** `ip link add` arguments (tunnel), then brought up. */
  links: string[][];
  /**
   * Tunnel: the address each device holds (this host's restore address,
   * unused otherwise in the kernel modes). Without one, the kernel's
   * reverse-path check drops every packet arriving on it, loose mode too.
   */
  linkAddress: string | null;
  /** `ip neigh replace` arguments (tunnel): the peer's end of each tunnel. */
  neighbours: string[][];
  /** `ip -6 neigh replace` arguments (tunnel with IPv6): TUNNEL_GATEWAY6 on each tunnel. */
  neighbours6: string[][];
  /** `ip route replace` arguments, one per peer table. */
  routes: string[][];
  /** `ip rule add` arguments, after the local rule moved to `localPref`. */
  rules: string[][];
  /** `ip -6 route replace` / `ip -6 rule add` arguments; empty without IPv6. */
  routes6: string[][];
  rules6: string[][];
  localPref: number;
}

const sec = (ms: number): number => Math.max(1, Math.ceil(ms / 1000));

/** The mark that routes a packet to host `id`: marks.forward plus the id in marks.peerMask. */
export function peerMark(c: DprConfig, id: number): { value: number; mask: number } {
  const m = c.marks.peerMask;
  const shift = Math.log2(m & -m);
  return { value: (c.marks.forward | ((id << shift) & m)) >>> 0, mask: (c.marks.forward | m) >>> 0 };
}

/** The VNI of the tunnel between two hosts, the same seen from either end. */
export function tunnelVni(c: DprConfig, a: number, b: number): number {
  return c.tunnel.vniBase + 256 * Math.min(a, b) + Math.max(a, b);
}

export function renderKernelPath(c: DprConfig): KernelPath | null {
  if (c.mode === 'rewrite') return null;
  const me = thisHost(c);
  const others = (c.hosts ?? []).filter((h) => h.id !== c.self);
  const hex = (n: number): string => `0x${n.toString(16)}`;
  // Buckets for an eighth of the entries (8 bytes each): a lookup then
  // scans a few entries, not the dozen of ipset's default sizing (bench: forward).
  const hashsize = 2 ** Math.ceil(Math.log2(Math.max(1024, c.flows.max / 8)));
  const size = ['hashsize', String(hashsize), 'maxelem', String(c.flows.max)];
  const [four, six] = [hasIpv4(c), hasIpv6(c)];
  const setsOf = (prefix: string, fin: string, family: string[]): string[][] => [
    ...others.map((h) => [peerSet(h.id, prefix), 'hash:ip,port,ip', ...family, 'timeout', String(sec(c.flows.establishedTimeoutMs)), ...size]),
    [fin, 'hash:ip,port,ip', ...family, 'timeout', String(FIN_HOLD_OFF_S), ...size],
  ];
  const sets = [...(four ? setsOf(SET_PREFIX, finSet, []) : []), ...(six ? setsOf(SET_PREFIX6, finSet6, ['family', 'inet6']) : [])];
  const links = c.mode === 'tunnel'
    ? others.map((h) => ['name', tunnelLink(h.id), 'address', tunnelMac(c.self, h.id), 'mtu', String(c.tunnel.mtu - VXLAN_OVERHEAD), 'type', 'vxlan',
      'id', String(tunnelVni(c, c.self, h.id)), 'local', me.cluster!, 'remote', h.cluster!, 'dstport', String(c.tunnel.port), 'nolearning'])
    : [];
  const neighbours = c.mode === 'tunnel'
    ? others.map((h) => [h.cluster!, 'lladdr', tunnelMac(h.id, c.self), 'dev', tunnelLink(h.id), 'nud', 'permanent'])
    : [];
  // (`tunnel` needs IPv4 cluster addresses: config.ts refuses it on IPv6-only hosts.)
  const routes = !four ? [] : others.map((h) => [
    'default', 'via', h.cluster!, ...(c.mode === 'tunnel' ? ['dev', tunnelLink(h.id), 'onlink'] : []),
    'table', String(c.routing.tableBase + h.id), 'proto', ROUTE_PROTO,
  ]);
  const peerRules = others.map((h) => {
    const m = peerMark(c, h.id);
    return ['pref', String(c.routing.rulePref), 'fwmark', `${hex(m.value)}/${hex(m.mask)}`, 'lookup', String(c.routing.tableBase + h.id), 'protocol', ROUTE_PROTO];
  });
  const linkAddress = c.mode === 'tunnel' ? restoreAddress(c, c.self) : null;
  // `direct`: a plain next hop on the segment; `tunnel`: the device towards the peer.
  const routes6 = six
    ? others.map((h) => [
      'default', 'via', ...(c.mode === 'tunnel' ? [TUNNEL_GATEWAY6, 'dev', tunnelLink(h.id)] : [h.cluster6!]),
      'table', String(c.routing.tableBase + h.id), 'proto', ROUTE_PROTO,
    ])
    : [];
  const neighbours6 = six && c.mode === 'tunnel'
    ? others.map((h) => [TUNNEL_GATEWAY6, 'lladdr', tunnelMac(h.id, c.self), 'dev', tunnelLink(h.id), 'nud', 'permanent'])
    : [];
  return { sets, links, linkAddress, neighbours, neighbours6, routes, rules: four ? peerRules : [], routes6, rules6: six ? peerRules : [], localPref: c.routing.rulePref + 1 };
}

/**
 * raw-table lines of the entry path: after the SYN, a packet of a flow in
 * peer `id`'s set is untracked, marked for its table and accepted; its entry
 * is lengthened to the established timeout, or shortened by a FIN or RST.
 * (ipset's SET target can renew an entry's timeout in `raw`; the entry keeps
 * no mark of its own, since a renewal would clear it: one set per peer.)
 */
export function entryKernelRules(c: DprConfig, prefix = SET_PREFIX): { decls: string[]; lines: string[] } {
  const fin = prefix === SET_PREFIX ? finSet : finSet6;
  const decls: string[] = [];
  const lines: string[] = [];
  const hex = (n: number): string => `0x${n.toString(16)}`;
  for (const h of (c.hosts ?? []).filter((x) => x.id !== c.self)) {
    const chain = `DPR_TO${h.id}`;
    const set = peerSet(h.id, prefix);
    const m = peerMark(c, h.id);
    const renew = (t: number): string => `-j SET --add-set ${set} src,src,dst --exist --timeout ${t}`;
    decls.push(`:${chain} - [0:0]`);
    lines.push(
      `-A DPR_ENTRY -p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN -m set --match-set ${set} src,src,dst -j ${chain}`,
      `-A ${chain} -j CT --notrack`,
      `-A ${chain} -j MARK --set-xmark ${hex(m.value)}/${hex(m.mask)}`,
      `-A ${chain} -p tcp -m tcp --tcp-flags RST RST ${renew(sec(c.flows.resetTimeoutMs))}`,
      `-A ${chain} -p tcp -m tcp --tcp-flags FIN,RST FIN ${renew(sec(c.flows.closingTimeoutMs))}`,
      `-A ${chain} -p tcp -m tcp ! --tcp-flags FIN,RST NONE -j SET --add-set ${fin} src,src,dst --exist`,
      `-A ${chain} -p tcp -m tcp --tcp-flags FIN,RST NONE -m set ! --match-set ${fin} src,src,dst ${renew(sec(c.flows.establishedTimeoutMs))}`,
      `-A ${chain} -j ACCEPT`,
    );
  }
  return { decls, lines };
}
