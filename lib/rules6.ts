// The ip6tables counterpart of the rules of lib/rules.ts (rewrite mode, and
// `direct` and `tunnel`: renderKernelRules6 at the end), for dual-stack hosts
// (hosts[].service6 / .cluster6). The same chains in the
// same ip6tables tables, with IPv6's words for the same checks:
//   - TTL is the hop limit: `-m hl --hl-gt` on the peer ports (GTSM),
//     `HL --hl-set 255` in mangle POSTROUTING;
//   - ICMP destination unreachable is ICMPv6 type 1, and "fragmentation
//     needed" has a type of its own, packet too big (2): both go to the entry
//     queue (fail-open), which hands those about forwarded flows on;
//   - the restore addresses come from restoreCidr6, DNAT in ip6tables' nat.
// The queue numbers are the IPv4 ones: NFQUEUE numbers belong to the network
// namespace, not to a family (measured on this kernel: one consumer of queue
// 7 received the packets of an iptables and an ip6tables rule, one id
// sequence), so one thread per role serves both families.
//
// IPv6 has no send_redirects: a forwarding host sends an ICMPv6 redirect
// (type 137) whenever it forwards a packet out of the interface it came in
// on (measured here: sent, and received by the client, with one interface
// and forwarding=1), which is what an entry host does with every rewritten
// packet. DPR_OUTPUT drops outgoing redirects: a web host forwards nothing
// but dpr's packets (forwarding was off before dpr), so none of them is
// anybody else's.
//
// Heartbeats go over IPv6 with peers.family ipv6 only: then DPR_INPUT lets
// them in here (and not in the IPv4 rules).
import type { DprConfig } from './config';
import { hasIpv6, peerPortRange, restoreAddress6, thisHost } from './config';
import { heartbeatRules, synRules, tunnelPostRules, type Jump } from './rules';
import { entryKernelRules, SET_PREFIX6 } from './kernel-path';

export interface RuleSet6 {
  /** Input for `ip6tables-restore --noflush`. */
  restore: string;
  jumps: Jump[];
  /** IPv6 restore addresses, one per other host, on lo (as /128). */
  localAddresses: string[];
  chains: Record<Jump['table'], string[]>;
}

/**
 * Never jumped to: its rules' comments name the IPv6 addresses dpr put on lo
 * (IPv6 addresses take no label, iproute2 here sets no address protocol), so
 * that uninstall finds exactly those.
 */
export const LO6_CHAIN = 'DPR_LO6';
export const LO6_TABLE = 'raw';

const hex = (n: number): string => `0x${n.toString(16)}`;

/** The IPv6 rules of this host, or null when the hosts have no IPv6 addresses. */
export function renderRules6(c: DprConfig): RuleSet6 | null {
  if (!hasIpv6(c)) return null;
  if (c.mode !== 'rewrite') return renderKernelRules6(c);
  const me = thisHost(c);
  const s6 = me.service6!;
  const c6 = me.cluster6!;
  const fwd = `${hex(c.marks.forward)}/${hex(c.marks.forward)}`;
  const srv = `${hex(c.marks.serve)}/${hex(c.marks.serve)}`;
  const [first, last] = peerPortRange(c);
  const ports = c.servicePorts.join(',');
  const hl = 254 - c.peers.routersBetween;
  const others = (c.hosts ?? []).filter((h) => h.id !== c.self);
  const local = others.map((h) => restoreAddress6(c, h.id));
  const icmp = (dst: string, tail: string): string[] => [1, 2].map((type) => `-A DPR_PRE -d ${dst}/128 -p ipv6-icmp -m icmp6 --icmpv6-type ${type} ${tail}`);
  const restore = [
    '*raw',
    ':DPR_PRE - [0:0]',
    ':DPR_ENTRY - [0:0]',
    ':DPR_SERVE - [0:0]',
    `:${LO6_CHAIN} - [0:0]`,
    ...local.map((a) => `-A ${LO6_CHAIN} -m comment --comment "lo=${a}"`),
    // As for IPv4: the mark ends the NF_REPEAT loop, and no conntrack entry.
    `-A DPR_PRE -m mark --mark ${fwd} -j CT --notrack`,
    `-A DPR_PRE -m mark --mark ${fwd} -j ACCEPT`,
    ...icmp(s6, `-j NFQUEUE --queue-num ${c.queues.entry} --queue-bypass`),
    ...(c6 !== s6 ? icmp(c6, `-m hl --hl-gt ${hl} -j NFQUEUE --queue-num ${c.queues.serve} --queue-bypass`) : []),
    `-A DPR_PRE -d ${s6}/128 -p tcp -m multiport --dports ${ports} -j DPR_ENTRY`,
    `-A DPR_PRE -d ${c6}/128 -p tcp -m tcp --dport ${first}:${last} -j DPR_SERVE`,
    '-A DPR_ENTRY -p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN -m socket -j ACCEPT',
    ...synRules(c, 6),
    `-A DPR_ENTRY -j NFQUEUE --queue-num ${c.queues.flows}`,
    `-A DPR_SERVE -m hl --hl-gt ${hl} -j NFQUEUE --queue-num ${c.queues.serve}`,
    '-A DPR_SERVE -j DROP',
    'COMMIT',
    '*nat',
    ':DPR_NAT - [0:0]',
    ...others.map((h) => `-A DPR_NAT -d ${h.service6}/128 -m mark --mark ${srv} -j DNAT --to-destination ${restoreAddress6(c, h.id)}`),
    'COMMIT',
    '*filter',
    ':DPR_FORWARD - [0:0]',
    `-A DPR_FORWARD -m mark --mark ${srv} -j DROP`,
    `-A DPR_FORWARD -m mark --mark ${fwd} -j ACCEPT`,
    ':DPR_INPUT - [0:0]',
    `-A DPR_INPUT -m mark --mark ${srv} -j ACCEPT`,
    ...heartbeatRules(c, 6),
    ':DPR_OUTPUT - [0:0]',
    // See the head of this file: IPv6's send_redirects=0.
    '-A DPR_OUTPUT -p ipv6-icmp -m icmp6 --icmpv6-type 137 -j DROP',
    'COMMIT',
    '*mangle',
    ':DPR_POST - [0:0]',
    `-A DPR_POST -m mark --mark ${fwd} -j HL --hl-set 255`,
    'COMMIT',
    '',
  ].join('\n');
  return {
    restore,
    jumps: [
      { table: 'raw', chain: 'PREROUTING', target: 'DPR_PRE' },
      { table: 'nat', chain: 'PREROUTING', target: 'DPR_NAT' },
      { table: 'filter', chain: 'FORWARD', target: 'DPR_FORWARD' },
      { table: 'filter', chain: 'INPUT', target: 'DPR_INPUT' },
      { table: 'filter', chain: 'OUTPUT', target: 'DPR_OUTPUT' },
      { table: 'mangle', chain: 'POSTROUTING', target: 'DPR_POST' },
    ],
    localAddresses: local,
    chains: { raw: ['DPR_PRE', 'DPR_ENTRY', 'DPR_SERVE', LO6_CHAIN], nat: ['DPR_NAT'], filter: ['DPR_FORWARD', 'DPR_INPUT', 'DPR_OUTPUT'], mangle: ['DPR_POST'] },
  };
}

/**
 * The kernel modes' IPv6 rules, as renderKernelRules in lib/rules.ts: after
 * the SYN a forwarded flow's packets match its peer's `dpr6_to<id>` set and
 * are untracked, marked for the peer's table (`ip -6 rule`, lib/kernel-path.ts)
 * and accepted; the serving host holds the peers' service6 addresses on lo
 * and lets their service traffic in. IPv6 has no arp_ignore and needs none:
 * neighbour discovery answers only for the receiving interface's addresses
 * (docs/design-notes.md, "IPv6: the control plane's choices"). `tunnel`: the
 * IPv6 packets go into the IPv4 VXLAN devices, so DPR_POST clears their mark
 * as the IPv4 rules do (the outer packet's route lookup sees the inner
 * packet's mark) and clamps the MSS, IPv6's header 20 bytes longer. The
 * decapsulated packet needs nothing more: IPv6 has no reverse-path check.
 */
function renderKernelRules6(c: DprConfig): RuleSet6 {
  const me = thisHost(c);
  const s6 = me.service6!;
  const fwd = `${hex(c.marks.forward)}/${hex(c.marks.forward)}`;
  const ports = c.servicePorts.join(',');
  const others = (c.hosts ?? []).filter((h) => h.id !== c.self);
  const local = others.map((h) => h.service6!);
  const entry = entryKernelRules(c, SET_PREFIX6);
  const tunnel = c.mode === 'tunnel';
  const restore = [
    '*raw',
    ':DPR_PRE - [0:0]',
    ':DPR_ENTRY - [0:0]',
    ...entry.decls,
    `:${LO6_CHAIN} - [0:0]`,
    ...local.map((a) => `-A ${LO6_CHAIN} -m comment --comment "lo=${a}"`),
    `-A DPR_PRE -m mark --mark ${fwd} -j CT --notrack`,
    `-A DPR_PRE -m mark --mark ${fwd} -j ACCEPT`,
    ...[1, 2].map((type) => `-A DPR_PRE -d ${s6}/128 -p ipv6-icmp -m icmp6 --icmpv6-type ${type} -j NFQUEUE --queue-num ${c.queues.entry} --queue-bypass`),
    `-A DPR_PRE -d ${s6}/128 -p tcp -m multiport --dports ${ports} -j DPR_ENTRY`,
    '-A DPR_ENTRY -p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN -m socket -j ACCEPT',
    ...entry.lines,
    ...synRules(c, 6),
    `-A DPR_ENTRY -j NFQUEUE --queue-num ${c.queues.flows}`,
    'COMMIT',
    '*filter',
    ':DPR_FORWARD - [0:0]',
    `-A DPR_FORWARD -m mark --mark ${fwd} -j ACCEPT`,
    ':DPR_INPUT - [0:0]',
    ...others.map((h) => `-A DPR_INPUT -d ${h.service6}/128 -p tcp -m multiport --dports ${ports} -j ACCEPT`),
    ...heartbeatRules(c, 6),
    ':DPR_OUTPUT - [0:0]',
    // As in rewrite mode: forwarding out of the interface a packet came in on sends a redirect.
    '-A DPR_OUTPUT -p ipv6-icmp -m icmp6 --icmpv6-type 137 -j DROP',
    'COMMIT',
    ...(tunnel ? tunnelPostRules(c, 6) : []),
    '',
  ].join('\n');
  return {
    restore,
    jumps: [
      { table: 'raw', chain: 'PREROUTING', target: 'DPR_PRE' },
      { table: 'filter', chain: 'FORWARD', target: 'DPR_FORWARD' },
      { table: 'filter', chain: 'INPUT', target: 'DPR_INPUT' },
      { table: 'filter', chain: 'OUTPUT', target: 'DPR_OUTPUT' },
      ...(tunnel ? [{ table: 'mangle' as const, chain: 'POSTROUTING', target: 'DPR_POST' }] : []),
    ],
    localAddresses: local,
    chains: {
      raw: ['DPR_PRE', 'DPR_ENTRY', ...entry.decls.map((d) => d.slice(1, d.indexOf(' '))), LO6_CHAIN],
      nat: [],
      filter: ['DPR_FORWARD', 'DPR_INPUT', 'DPR_OUTPUT'],
      mangle: tunnel ? ['DPR_POST'] : [],
    },
  };
}
