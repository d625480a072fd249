// The iptables rules and sysctls of one host, rendered from the configuration.
// One renderer: `dpr rules` prints it, iptables/install.sh applies it.
//
// Chains (all ours are named DPR_*; nothing else is touched):
//   raw PREROUTING -> DPR_PRE   forwarded packets coming back after NF_REPEAT
//                                are untracked and accepted; service traffic
//                                goes to DPR_ENTRY, peer-port traffic to DPR_SERVE
//   DPR_ENTRY                    after the SYN, local flows stay in the kernel
//                                (-m socket); SYNs go to the entry queue (fail-
//                                open), the rest to the flows queue (never)
//   DPR_SERVE                    peer ports from a peer (TTL check, GTSM) go to
//                                the serve queue, anything else is dropped
//   nat PREROUTING -> DPR_NAT    restored packets are DNATed to the local server,
//                                at a local address of their entry host's own
//                                (restoreCidr): the same client port may reach
//                                this host directly and through a peer at once
//   filter FORWARD -> DPR_FORWARD  rewritten packets may leave even where the
//                                FORWARD policy is DROP (Docker sets it so);
//                                restored packets never leave
//   filter INPUT -> DPR_INPUT    restored packets and peers' heartbeats are
//                                accepted where a host firewall drops the rest
//   mangle POSTROUTING -> DPR_POST rewritten packets leave with TTL 255 (GTSM)
//
// The kernel modes (`direct`, `tunnel`; lib/kernel-path.ts) keep the chains
// but change what is in them: DPR_ENTRY sends the packets of flows in a
// peer's ipset to DPR_TO<id> (untracked, marked for the peer's routing
// table, accepted), there is no DPR_SERVE, no DNAT and no restore address;
// the serving host holds its peers' service addresses on lo instead.
//
// lib/install.ts applies it all or nothing and removes it again.
import type { DprConfig, HostEntry } from './config';
import { hasIpv4, peerPortRange, restoreAddress, thisHost } from './config';
import { VXLAN_OVERHEAD } from './config-schema';
import { entryKernelRules, LINK_PREFIX, peerMark, renderKernelPath, ROUTE_PROTO, type KernelPath } from './kernel-path';
import { renderRules6, type RuleSet6 } from './rules6';

export interface Jump {
  table: 'raw' | 'nat' | 'filter' | 'mangle';
  chain: string;
  target: string;
}

export interface RuleSet {
  /** Input for `iptables-restore --noflush`: declares (and so empties) our chains, then fills them. */
  restore: string;
  /** Rules in built-in chains that jump to ours; inserted first when absent. */
  jumps: Jump[];
  /** Local addresses for forwarded connections, one per other host, on lo (kernel modes: the other hosts' service addresses). */
  localAddresses: string[];
  /** Kernel modes: ipsets, routing tables and rules, tunnel devices; null in `rewrite`. */
  kernel: KernelPath | null;
  /** Our chains, by table, for removal. */
  chains: Record<Jump['table'], string[]>;
  sysctls: Array<[string, string]>;
  /** The ip6tables rules and IPv6 restore addresses of a dual-stack cluster (lib/rules6.ts); null without IPv6. */
  ipv6: RuleSet6 | null;
}

const hex = (n: number): string => `0x${n.toString(16)}`;

export function renderRules(c: DprConfig): RuleSet {
  if (!hasIpv4(c)) return renderIpv6OnlyRules(c);
  if (c.mode !== 'rewrite') return renderKernelRules(c);
  // An etcd host's file has no list yet: its own rules only; the daemon adds the peers' when it has them.
  const me = thisHost(c);
  const fwd = `${hex(c.marks.forward)}/${hex(c.marks.forward)}`;
  const srv = `${hex(c.marks.serve)}/${hex(c.marks.serve)}`;
  const [first, last] = peerPortRange(c);
  const ports = c.servicePorts.join(',');
  const others = (c.hosts ?? []).filter((h) => h.id !== c.self);
  const ipv6 = renderRules6(c);
  const restore = [
    '*raw',
    ':DPR_PRE - [0:0]',
    ':DPR_ENTRY - [0:0]',
    ':DPR_SERVE - [0:0]',
    // NF_REPEAT sends the rewritten packet through this hook again: the mark
    // ends the loop and keeps the half-seen flow out of conntrack.
    `-A DPR_PRE -m mark --mark ${fwd} -j CT --notrack`,
    `-A DPR_PRE -m mark --mark ${fwd} -j ACCEPT`,
    // ICMP errors about answers sent as this host (path MTU discovery above
    // all): the entry engine hands those about forwarded flows on to their
    // serving host. Fail-open: with no daemon the local stack gets them.
    `-A DPR_PRE -d ${me.service}/32 -p icmp -m icmp --icmp-type 3 -j NFQUEUE --queue-num ${c.queues.entry} --queue-bypass`,
    // ...and those a peer handed on here (its TTL, GTSM): the serve engine
    // gives them the peer's address back. (With one address for both, the
    // rule above takes them and the entry engine does this.)
    ...(me.cluster !== me.service
      ? [`-A DPR_PRE -d ${me.cluster}/32 -p icmp -m icmp --icmp-type 3 -m ttl --ttl-gt ${254 - c.peers.routersBetween} -j NFQUEUE --queue-num ${c.queues.serve} --queue-bypass`]
      : []),
    `-A DPR_PRE -d ${me.service}/32 -p tcp -m multiport --dports ${ports} -j DPR_ENTRY`,
    `-A DPR_PRE -d ${me.cluster}/32 -p tcp -m tcp --dport ${first}:${last} -j DPR_SERVE`,
    // Without --nowildcard, -m socket ignores wildcard listeners: only a real
    // local connection matches, never a forwarded flow's packets.
    '-A DPR_ENTRY -p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN -m socket -j ACCEPT',
    // With no daemon listening, a new connection is served here (fail-open)...
    ...synRules(c),
    // ...but a later packet with no local socket belongs to a forwarded flow:
    // its own queue, bound without fail-open, so while no daemon runs (a
    // restart) or the queue is full it is dropped and TCP sends it again,
    // where the local stack would have reset the connection.
    `-A DPR_ENTRY -j NFQUEUE --queue-num ${c.queues.flows}`,
    // A forwarded packet keeps the client's source address, so the source says
    // nothing; it leaves the entry host with TTL 255 (DPR_POST) and only a
    // sender at most peers.routersBetween routers away can make it arrive
    // this high (GTSM, RFC 5082). Held back, not answered, while no daemon runs.
    `-A DPR_SERVE -m ttl --ttl-gt ${254 - c.peers.routersBetween} -j NFQUEUE --queue-num ${c.queues.serve}`,
    '-A DPR_SERVE -j DROP',
    'COMMIT',
    '*nat',
    ':DPR_NAT - [0:0]',
    ...others.map((h) => `-A DPR_NAT -d ${h.service}/32 -m mark --mark ${srv} -j DNAT --to-destination ${restoreAddress(c, h.id)}`),
    'COMMIT',
    '*filter',
    ':DPR_FORWARD - [0:0]',
    // A restored packet conntrack would not DNAT (INVALID: SYN+FIN, a bad
    // checksum, ...) would be routed back to its entry host, which forwards it
    // again with a fresh TTL: a loop. Restored packets are never forwarded.
    `-A DPR_FORWARD -m mark --mark ${srv} -j DROP`,
    `-A DPR_FORWARD -m mark --mark ${fwd} -j ACCEPT`,
    // A host firewall (INPUT policy DROP, ufw) knows nothing of dpr: let in
    // what only dpr sends here. The serve mark is set by our queue's verdict
    // alone; heartbeats are signed (HMAC) besides.
    ':DPR_INPUT - [0:0]',
    `-A DPR_INPUT -m mark --mark ${srv} -j ACCEPT`,
    ...heartbeatRules(c, 4),
    'COMMIT',
    '*mangle',
    ':DPR_POST - [0:0]',
    // After the forwarding decrement: set in PREROUTING, a forwarded packet
    // would leave with 254 and a sender one router farther away would pass.
    `-A DPR_POST -m mark --mark ${fwd} -j TTL --ttl-set 255`,
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
      { table: 'mangle', chain: 'POSTROUTING', target: 'DPR_POST' },
    ],
    localAddresses: others.map((h) => restoreAddress(c, h.id)),
    kernel: null,
    ipv6,
    chains: { raw: ['DPR_PRE', 'DPR_ENTRY', 'DPR_SERVE'], nat: ['DPR_NAT'], filter: ['DPR_FORWARD', 'DPR_INPUT'], mangle: ['DPR_POST'] },
    sysctls: [
      // The entry host routes rewritten packets on to the serving host.
      ['net.ipv4.ip_forward', '1'],
      // ... and must not tell the client to go there itself.
      // (the kernel sends them if `all` or the interface says so: set every one)
      ['net.ipv4.conf.*.send_redirects', '0'],
      // The serving host receives the client's address from the entry host's
      // link; loose mode keeps that working across routed networks.
      ['net.ipv4.conf.all.rp_filter', '2'],
      // IPv6 routes rewritten packets too. Every interface's value is saved,
      // not only `all`'s: writing `all` sets every interface, so putting back
      // `all` alone would change an interface that differed. (IPv6 has no
      // send_redirects: lib/rules6.ts drops the redirects instead, and no
      // rp_filter sysctl.)
      ...(ipv6 ? [['net.ipv6.conf.*.forwarding', '1'] as [string, string]] : []),
    ],
  };
}

/**
 * IPv6-only hosts (no `service` nor `cluster` anywhere: lib/config.ts): no
 * iptables rules at all, the ip6tables ones of lib/rules6.ts, and in `direct`
 * the kernel path's IPv6 half. The IPv4 tables still get DPR_SAVED, which
 * keeps the sysctl values the first install found (lib/install.ts), so
 * uninstall is the same for every host.
 */
function renderIpv6OnlyRules(c: DprConfig): RuleSet {
  return {
    restore: '',
    jumps: [],
    localAddresses: [],
    kernel: renderKernelPath(c),
    ipv6: renderRules6(c),
    chains: { raw: [], nat: [], filter: [], mangle: [] },
    sysctls: [['net.ipv6.conf.*.forwarding', '1']],
  };
}

/**
 * `direct` and `tunnel`: the entry host queues a forwarded connection's SYN
 * (and its packets while the kernel has no entry for it yet), the kernel
 * routes the rest; the serving host delivers what peers route to it to the
 * local server, which answers as the entry host.
 */
function renderKernelRules(c: DprConfig): RuleSet {
  // An etcd host's file has no list yet: its own rules only, as in rewrite.
  const me = thisHost(c);
  const fwd = `${hex(c.marks.forward)}/${hex(c.marks.forward)}`;
  const ports = c.servicePorts.join(',');
  const others = (c.hosts ?? []).filter((h) => h.id !== c.self);
  const kernel = renderKernelPath(c)!;
  const entry = entryKernelRules(c);
  const tunnel = c.mode === 'tunnel';
  const ipv6 = renderRules6(c);
  const restore = [
    '*raw',
    ':DPR_PRE - [0:0]',
    ':DPR_ENTRY - [0:0]',
    ...entry.decls,
    // A SYN the engine forwarded comes back (NF_REPEAT) with its peer's mark.
    `-A DPR_PRE -m mark --mark ${fwd} -j CT --notrack`,
    `-A DPR_PRE -m mark --mark ${fwd} -j ACCEPT`,
    `-A DPR_PRE -d ${me.service}/32 -p icmp -m icmp --icmp-type 3 -j NFQUEUE --queue-num ${c.queues.entry} --queue-bypass`,
    `-A DPR_PRE -d ${me.service}/32 -p tcp -m multiport --dports ${ports} -j DPR_ENTRY`,
    '-A DPR_ENTRY -p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN -m socket -j ACCEPT',
    // After the SYN a forwarded flow never leaves the kernel, and with no
    // daemon it keeps going until its entry times out.
    ...entry.lines,
    ...synRules(c),
    // Not (yet, or no longer) in a set: the engine routes it, and adds it back.
    `-A DPR_ENTRY -j NFQUEUE --queue-num ${c.queues.flows}`,
    'COMMIT',
    // No nat table (nothing to translate; conntrack stays off unless other
    // rules need it) and, in `direct`, no mangle table: the hooks of every
    // table cost every packet (bench: forward).
    '*filter',
    ':DPR_FORWARD - [0:0]',
    `-A DPR_FORWARD -m mark --mark ${fwd} -j ACCEPT`,
    ':DPR_INPUT - [0:0]',
    // What peers route here unchanged: their clients' connections to their service addresses.
    ...others.map((h) => `-A DPR_INPUT -d ${h.service}/32 -p tcp -m multiport --dports ${ports} -j ACCEPT`),
    ...heartbeatRules(c, 4),
    ...(tunnel ? [`-A DPR_INPUT -s ${c.clusterCidr} -d ${me.cluster}/32 -p udp -m udp --dport ${c.tunnel.port} -j ACCEPT`] : []),
    'COMMIT',
    ...(tunnel ? tunnelPostRules(c) : []),
    '',
  ].join('\n');
  return {
    restore,
    jumps: [
      { table: 'raw', chain: 'PREROUTING', target: 'DPR_PRE' },
      { table: 'filter', chain: 'FORWARD', target: 'DPR_FORWARD' },
      { table: 'filter', chain: 'INPUT', target: 'DPR_INPUT' },
      ...(tunnel ? [{ table: 'mangle' as const, chain: 'POSTROUTING', target: 'DPR_POST' }] : []),
    ],
    localAddresses: others.map((h) => h.service!),
    kernel,
    ipv6,
    chains: {
      raw: ['DPR_PRE', 'DPR_ENTRY', ...entry.decls.map((d) => d.slice(1, d.indexOf(' ')))],
      nat: [],
      filter: ['DPR_FORWARD', 'DPR_INPUT'],
      mangle: tunnel ? ['DPR_POST'] : [],
    },
    sysctls: [
      ['net.ipv4.ip_forward', '1'],
      ['net.ipv4.conf.*.send_redirects', '0'],
      // Packets for a peer's service address come in on the cluster link.
      ['net.ipv4.conf.all.rp_filter', '2'],
      // The peers' service addresses on lo are not announced nor answered
      // for (as IPVS direct routing requires): the segment's router must
      // keep sending each address to its own host.
      ['net.ipv4.conf.all.arp_ignore', '1'],
      ['net.ipv4.conf.lo.arp_ignore', '1'],
      ['net.ipv4.conf.all.arp_announce', '2'],
      ['net.ipv4.conf.lo.arp_announce', '2'],
      // IPv6 needs no arp_ignore counterpart (lib/rules6.ts).
      ...(ipv6 ? [['net.ipv6.conf.*.forwarding', '1'] as [string, string]] : []),
    ],
  };
}

/**
 * mangle POSTROUTING of `tunnel` mode; `family` 6: the ip6tables rules'
 * (lib/rules6.ts). The MSS leaves room for the tunnel's 50 bytes and the
 * inner IP and TCP headers: 20 + 20 (IPv4), 40 + 20 (IPv6).
 */
export function tunnelPostRules(c: DprConfig, family: 4 | 6 = 4): string[] {
  const ports = c.servicePorts.join(',');
  const mss = c.tunnel.mtu - VXLAN_OVERHEAD - (family === 6 ? 60 : 40);
  const service = (h: HostEntry): string => (family === 6 ? `${h.service6}/128` : `${h.service}/32`);
  return [
    '*mangle',
    ':DPR_POST - [0:0]',
    // A forwarded packet's mark chose the tunnel; the tunnel's own (outer)
    // packet is routed with the same skb mark, so the mark goes first, or
    // the outer packet would be sent into the tunnel again.
    `-A DPR_POST -o ${LINK_PREFIX}+ -j MARK --set-xmark 0x0/${hex(peerMark(c, 0).mask)}`,
    // The clients of connections served for peers send segments that fit
    // into the tunnel with its 50 bytes (the SYN-ACK says so).
    ...(c.hosts ?? []).filter((h) => h.id !== c.self).map((h) => `-A DPR_POST -s ${service(h)} -p tcp -m multiport --sports ${ports} -m tcp --tcp-flags SYN,RST,ACK SYN,ACK -m tcpmss --mss ${mss + 1}:65535 -j TCPMSS --set-mss ${mss}`),
    'COMMIT',
  ];
}

/**
 * DPR_INPUT's rule for peers' heartbeats, in the rules of the family they go
 * over (peers.family): from the cluster network to this host's cluster
 * address of that family. None in the other family's rules.
 */
export function heartbeatRules(c: DprConfig, family: 4 | 6): string[] {
  if (c.peers.family !== (family === 6 ? 'ipv6' : 'ipv4')) return [];
  const [from, to] = family === 6 ? [c.clusterCidr6, `${thisHost(c).cluster6!}/128`] : [c.clusterCidr, `${thisHost(c).cluster!}/32`];
  return [`-A DPR_INPUT -s ${from} -d ${to} -p udp -m udp --dport ${c.peers.port} -j ACCEPT`];
}

/**
 * SYNs go to the entry queue, at most queues.synLimit a second (load policy);
 * past that (a SYN flood) the kernel serves new connections here directly, as
 * it does when the queue is full: the flood costs what it costs a host without
 * dpr, and legitimate SYNs do not wait behind it in one thread (bench: attack).
 * Not with the hash policy: under a flood the kernel answers with SYN cookies,
 * so such a connection has no socket until its first ACK, which -m socket then
 * misses and the engine sends where the hash says, not here (measured: 19 of
 * 100 connections reset). `family` 6: the ip6tables rules' (lib/rules6.ts),
 * in a hashlimit table of their own (xt_hashlimit keys tables by name and family).
 */
export function synRules(c: DprConfig, family: 4 | 6 = 4): string[] {
  const syn = '-A DPR_ENTRY -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN';
  const queue = `-j NFQUEUE --queue-num ${c.queues.entry} --queue-bypass`;
  if (c.queues.synLimit === 0 || c.policy !== 'load') return [`${syn} ${queue}`];
  const burst = Math.max(1, Math.ceil(c.queues.synLimit / 10));
  return [
    `${syn} -m hashlimit --hashlimit-upto ${c.queues.synLimit}/sec --hashlimit-burst ${burst} --hashlimit-name dpr_syn${family === 6 ? '6' : ''}_${c.queues.entry} ${queue}`,
    `${syn} -j ACCEPT`,
  ];
}

/**
 * What `dpr install` does, as a shell script to read (`dpr check`, `dpr rules
 * --format script`): the same steps in the same order, without the undo on
 * failure and the saved sysctl values that lib/install.ts adds.
 */
export function renderInstallScript(r: RuleSet): string {
  const lines = ['#!/bin/sh', 'set -e'];
  const k = r.kernel;
  if (k) {
    for (const set of k.sets) lines.push(`ipset create -exist ${set.join(' ')}`);
    for (const link of k.links) {
      lines.push(`ip link add ${link.join(' ')}`, `ip link set ${link[1]} addrgenmode none`);
      if (k.neighbours6.length) lines.push(`sysctl -qw net.ipv6.conf.${link[1]}.disable_ipv6=0`);
      if (k.linkAddress) lines.push(`ip addr add ${k.linkAddress}/32 dev ${link[1]} scope link`);
      lines.push(`ip link set ${link[1]} up`);
    }
    for (const n of k.neighbours) lines.push(`ip neigh replace ${n.join(' ')}`);
    for (const n of k.neighbours6) lines.push(`ip -6 neigh replace ${n.join(' ')}`);
    for (const route of k.routes) lines.push(`ip route replace ${route.join(' ')}`);
    if (k.rules.length) lines.push(`ip rule add pref ${k.localPref} lookup local protocol ${ROUTE_PROTO}`, 'ip rule del pref 0 lookup local');
    for (const rule of k.rules) lines.push(`ip rule add ${rule.join(' ')}`);
    for (const route of k.routes6) lines.push(`ip -6 route replace ${route.join(' ')}`);
    if (k.rules6.length) lines.push(`ip -6 rule add pref ${k.localPref} lookup local protocol ${ROUTE_PROTO}`, 'ip -6 rule del pref 0 lookup local');
    for (const rule of k.rules6) lines.push(`ip -6 rule add ${rule.join(' ')}`);
  }
  if (r.restore) lines.push("iptables-restore -w --noflush <<'EOF'", r.restore.trimEnd(), 'EOF');
  for (const j of r.jumps) {
    lines.push(`iptables -w -t ${j.table} -C ${j.chain} -j ${j.target} 2>/dev/null || iptables -w -t ${j.table} -I ${j.chain} 1 -j ${j.target}`);
  }
  // Before the sysctls, as lib/install.ts: forwarding comes on with the redirects already dropped.
  if (r.ipv6) {
    lines.push("ip6tables-restore -w --noflush <<'EOF'", r.ipv6.restore.trimEnd(), 'EOF');
    for (const j of r.ipv6.jumps) {
      lines.push(`ip6tables -w -t ${j.table} -C ${j.chain} -j ${j.target} 2>/dev/null || ip6tables -w -t ${j.table} -I ${j.chain} 1 -j ${j.target}`);
    }
  }
  for (const [k, v] of r.sysctls) {
    if (k.includes('*')) {
      const glob = `/proc/sys/${k.replace(/\./g, '/')}`;
      lines.push(`for f in ${glob}; do echo ${v} > "$f"; done`);
    } else {
      lines.push(`sysctl -qw ${k}=${v}`);
    }
  }
  for (const a of r.localAddresses) lines.push(`ip addr replace ${a}/32 dev lo label lo:dpr`);
  for (const a of r.ipv6?.localAddresses ?? []) lines.push(`ip -6 addr replace ${a}/128 dev lo`);
  return lines.join('\n') + '\n';
}
