// The iptables rules and sysctls of one host, rendered from the configuration.
// One renderer: `dpr rules` prints it, iptables/install.sh applies it.
//
// Chains (all ours are named DPR_*; nothing else is touched):
//   raw PREROUTING -> DPR_PRE   forwarded packets coming back after NF_REPEAT
//                                are untracked and accepted; service traffic
//                                goes to DPR_ENTRY, peer-port traffic to DPR_SERVE
//   DPR_ENTRY                    after the SYN, local flows stay in the kernel
//                                (-m socket); the rest goes to the entry queue
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
//
// lib/install.ts applies it all or nothing and removes it again.
import type { DprConfig } from './config';
import { peerPortRange, restoreAddress, thisHost } from './config';

export interface Jump {
  table: 'raw' | 'nat' | 'filter';
  chain: string;
  target: string;
}

export interface RuleSet {
  /** Input for `iptables-restore --noflush`: declares (and so empties) our chains, then fills them. */
  restore: string;
  /** Rules in built-in chains that jump to ours; inserted first when absent. */
  jumps: Jump[];
  /** Local addresses for forwarded connections, one per other host, on lo. */
  localAddresses: string[];
  /** Our chains, by table, for removal. */
  chains: Record<Jump['table'], string[]>;
  sysctls: Array<[string, string]>;
}

const hex = (n: number): string => `0x${n.toString(16)}`;

export function renderRules(c: DprConfig): RuleSet {
  // An etcd host's file has no list yet: its own rules only; the daemon adds the peers' when it has them.
  const me = thisHost(c);
  const fwd = `${hex(c.marks.forward)}/${hex(c.marks.forward)}`;
  const srv = `${hex(c.marks.serve)}/${hex(c.marks.serve)}`;
  const [first, last] = peerPortRange(c);
  const ports = c.servicePorts.join(',');
  const others = (c.hosts ?? []).filter((h) => h.id !== c.self);
  const restore = [
    '*raw',
    ':DPR_PRE - [0:0]',
    ':DPR_ENTRY - [0:0]',
    ':DPR_SERVE - [0:0]',
    // NF_REPEAT sends the rewritten packet through this hook again: the mark
    // ends the loop and keeps the half-seen flow out of conntrack.
    `-A DPR_PRE -m mark --mark ${fwd} -j CT --notrack`,
    `-A DPR_PRE -m mark --mark ${fwd} -j ACCEPT`,
    `-A DPR_PRE -d ${me.service}/32 -p tcp -m multiport --dports ${ports} -j DPR_ENTRY`,
    `-A DPR_PRE -d ${me.cluster}/32 -p tcp -m tcp --dport ${first}:${last} -j DPR_SERVE`,
    // Without --nowildcard, -m socket ignores wildcard listeners: only a real
    // local connection matches, never a forwarded flow's packets.
    '-A DPR_ENTRY -p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN -m socket -j ACCEPT',
    // With no daemon listening, a new connection is served here (fail-open)...
    `-A DPR_ENTRY -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j NFQUEUE --queue-num ${c.queues.entry} --queue-bypass`,
    // ...but a later packet with no local socket belongs to a forwarded flow:
    // dropped, TCP sends it again once a daemon is back (a restart), where the
    // local stack would have reset the connection.
    `-A DPR_ENTRY -j NFQUEUE --queue-num ${c.queues.entry}`,
    // A forwarded packet keeps the client's source address, so the source says
    // nothing; the entry host sends it with TTL 255 and only a sender at most
    // peers.routersBetween routers away can make it arrive this high (GTSM).
    // Held back, not answered, while no daemon runs.
    `-A DPR_SERVE -m ttl --ttl-gt ${253 - c.peers.routersBetween} -j NFQUEUE --queue-num ${c.queues.serve}`,
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
    `-A DPR_INPUT -s ${c.clusterCidr} -d ${me.cluster}/32 -p udp -m udp --dport ${c.peers.port} -j ACCEPT`,
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
    ],
    localAddresses: others.map((h) => restoreAddress(c, h.id)),
    chains: { raw: ['DPR_PRE', 'DPR_ENTRY', 'DPR_SERVE'], nat: ['DPR_NAT'], filter: ['DPR_FORWARD', 'DPR_INPUT'] },
    sysctls: [
      // The entry host routes rewritten packets on to the serving host.
      ['net.ipv4.ip_forward', '1'],
      // ... and must not tell the client to go there itself.
      // (the kernel sends them if `all` or the interface says so: set every one)
      ['net.ipv4.conf.*.send_redirects', '0'],
      // The serving host receives the client's address from the entry host's
      // link; loose mode keeps that working across routed networks.
      ['net.ipv4.conf.all.rp_filter', '2'],
    ],
  };
}

/**
 * What `dpr install` does, as a shell script to read (`dpr check`, `dpr rules
 * --format script`): the same steps in the same order, without the undo on
 * failure and the saved sysctl values that lib/install.ts adds.
 */
export function renderInstallScript(r: RuleSet): string {
  const lines = ['#!/bin/sh', 'set -e', "iptables-restore -w --noflush <<'EOF'", r.restore.trimEnd(), 'EOF'];
  for (const j of r.jumps) {
    lines.push(`iptables -w -t ${j.table} -C ${j.chain} -j ${j.target} 2>/dev/null || iptables -w -t ${j.table} -I ${j.chain} 1 -j ${j.target}`);
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
  return lines.join('\n') + '\n';
}
