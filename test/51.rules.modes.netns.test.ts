// iptables/install.sh and uninstall.sh in the kernel modes: what each mode
// puts on a host beside the iptables rules (ipsets, routing tables and rules,
// the local rule moved, tunnel devices, peers' service addresses on lo,
// ARP sysctls), that a second install changes nothing, and that uninstall
// puts back exactly what was there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Testbed } from './support/netns';
import { clusterConfig, writeConfig } from './support/configs';

const root = path.resolve(__dirname, '..', '..');
const install = path.join(root, 'iptables', 'install.sh');
const uninstall = path.join(root, 'iptables', 'uninstall.sh');
const cli = path.join(root, 'dist', 'lib', 'cli.js');

const hosts = [0, 1, 2].map((id) => ({ id, service: `198.18.0.${id + 1}`, cluster: `198.18.1.${id + 1}` }));
const config = (mode: string): string => writeConfig({ ...clusterConfig(0, { hosts: 3 }), hosts, clusterCidr: '198.18.1.0/24', mode });

/** Everything outside iptables that a kernel mode may touch, as text to compare. */
function state(bed: Testbed): string {
  const sh = (cmd: string): string => bed.exec('a', ['sh', '-c', cmd]);
  return [
    sh('ip -4 rule show'),
    sh('ip -4 route show table all | grep -v "^local\\|^broadcast" || true'),
    sh('ip -o link show | cut -d: -f2'),
    sh('ip -4 -o addr show dev lo'),
    sh('ipset list -n'),
    sh('sysctl net.ipv4.conf.all.arp_ignore net.ipv4.conf.lo.arp_announce'),
  ].join('\n');
}

for (const mode of ['direct', 'tunnel']) {
  test(`51.rules.modes: ${mode}: install sets the mode up, a second install changes nothing, uninstall removes exactly it`, () => {
    const bed = Testbed.create([{ name: 'a', addrs: ['198.18.0.1/24'], nics: [{ bridge: 'back', addrs: ['198.18.1.1/24'] }] }], mode === 'direct' ? 'rmd' : 'rmt');
    try {
      const before = state(bed);
      const file = config(mode);
      bed.exec('a', ['bash', install, file]);
      const once = state(bed);
      bed.exec('a', ['bash', install, file]);
      assert.equal(state(bed), once, 'a second install changed something');
      // Per peer: a set, a fwmark rule before the (moved) local rule, a table.
      assert.match(once, /^10:\s+from all fwmark 0x1010000\/0x1ff0000 lookup 4601 proto 77$/m);
      assert.match(once, /^10:\s+from all fwmark 0x1020000\/0x1ff0000 lookup 4602 proto 77$/m);
      assert.match(once, /^11:\s+from all lookup local proto 77$/m);
      assert.doesNotMatch(once, /^0:\s+from all lookup local/m);
      assert.match(once, /^dpr4_to1$/m);
      assert.match(once, /^dpr4_to2$/m);
      assert.match(once, /^dpr4_fin$/m);
      assert.match(once, /198\.18\.0\.2\/32 .*lo:dpr/);
      assert.match(once, /arp_ignore = 1/);
      assert.match(once, /arp_announce = 2/);
      if (mode === 'direct') {
        assert.match(once, /^default via 198\.18\.1\.2 dev eth1 table 4601 proto 77/m);
      } else {
        assert.match(once, /^default via 198\.18\.1\.2 dev dprvx1 table 4601 proto 77 onlink/m);
        const vx = bed.exec('a', ['ip', '-d', 'link', 'show', 'dprvx1']);
        assert.match(vx, /mtu 1450 /);
        assert.match(vx, /vxlan id 6553601 remote 198\.18\.1\.2 local 198\.18\.1\.1 .*dstport 4789/);
        assert.match(bed.exec('a', ['iptables', '-w', '-t', 'mangle', '-S', 'DPR_POST']), /-j TCPMSS --set-mss 1410/);
      }
      // Packets after the SYN of a flow in a peer's set stay in raw, untracked and marked.
      const raw = bed.exec('a', ['iptables', '-w', '-t', 'raw', '-S']);
      assert.match(raw, /-A DPR_ENTRY -p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN -m set --match-set dpr4_to1 src,src,dst -j DPR_TO1/);
      assert.doesNotMatch(raw, /DPR_SERVE/);
      bed.exec('a', ['bash', uninstall]);
      assert.equal(state(bed), before, 'uninstall left something behind or removed too much');
      assert.doesNotMatch(bed.exec('a', ['iptables-save']), /DPR_/);
    } finally {
      bed.destroy();
    }
  });
}

// Dual-stack kernel modes (issue 15): the IPv6 half beside the IPv4 one.
const hosts6 = hosts.map((h) => ({ ...h, service6: `2001:2::${h.id + 1}`, cluster6: `2001:2:0:1::${h.id + 1}` }));
const config6 = (mode: string): string => writeConfig({ ...clusterConfig(0, { hosts: 3 }), hosts: hosts6, clusterCidr: '198.18.1.0/24', clusterCidr6: '2001:2:0:1::/64', mode });

function state6(bed: Testbed): string {
  const sh = (cmd: string): string => bed.exec('a', ['sh', '-c', cmd]);
  return [
    state(bed),
    sh('ip -6 rule show'),
    // Not the link-local routes: the kernel adds each once its interface's address passed DAD, whenever that is.
    sh('ip -6 route show table all | grep -v "^local\\|^multicast\\|^anycast\\|^fe80::/64" || true'),
    sh('ip -6 -o addr show dev lo'),
    // Our rules only: a table once loaded stays listed (empty) after uninstall.
    sh('ip6tables-save | grep DPR_ || true'),
    sh('sysctl net.ipv6.conf.all.forwarding net.ipv6.conf.eth0.forwarding net.ipv6.conf.default.disable_ipv6'),
  ].join('\n');
}

for (const mode of ['direct', 'tunnel']) {
  test(`51.rules.modes: ${mode}, dual-stack: install sets both families up, a second install changes nothing, uninstall removes exactly it`, () => {
    const bed = Testbed.create([{ name: 'a', addrs: ['198.18.0.1/24', '2001:2::1/64'], nics: [{ bridge: 'back', addrs: ['198.18.1.1/24', '2001:2:0:1::1/64'] }] }], mode === 'direct' ? 'rm6d' : 'rm6t');
    try {
      // New devices without IPv6: the tunnels must turn it on for themselves.
      bed.sysctl('a', 'net.ipv6.conf.default.disable_ipv6', 1);
      const before = state6(bed);
      const file = config6(mode);
      bed.exec('a', ['bash', install, file]);
      const once = state6(bed);
      bed.exec('a', ['bash', install, file]);
      assert.equal(state6(bed), once, 'a second install changed something');
      const six = bed.exec('a', ['ip', '-6', 'rule', 'show']);
      assert.match(six, /^10:\s+from all fwmark 0x1010000\/0x1ff0000 lookup 4601 proto 77$/m);
      assert.match(six, /^10:\s+from all fwmark 0x1020000\/0x1ff0000 lookup 4602 proto 77$/m);
      assert.match(six, /^11:\s+from all lookup local proto 77$/m);
      assert.doesNotMatch(six, /^0:\s+from all lookup local/m);
      const table = bed.exec('a', ['ip', '-6', 'route', 'show', 'table', '4602']);
      if (mode === 'direct') {
        assert.match(table, /^default via 2001:2:0:1::3 dev eth1 proto 77/m);
      } else {
        // Into the IPv4 tunnel towards host 2, to its end's MAC (tunnelMac(2, 0)).
        assert.match(table, /^default via fe80::1 dev dprvx2 proto 77/m);
        assert.match(bed.exec('a', ['ip', '-6', 'neigh', 'show', 'dev', 'dprvx2']), /^fe80::1 lladdr 02:64:70:72:02:00 PERMANENT\s*$/m);
        assert.equal(bed.exec('a', ['sysctl', '-n', 'net.ipv6.conf.dprvx2.disable_ipv6']).trim(), '0');
        assert.doesNotMatch(bed.exec('a', ['ip', '-6', 'addr', 'show', 'dev', 'dprvx2']), /inet6/, 'a tunnel has an IPv6 address');
        const post = bed.exec('a', ['ip6tables', '-w', '-t', 'mangle', '-S', 'DPR_POST']);
        assert.match(post, /-A DPR_POST -o dprvx\+ -j MARK --set-xmark 0x0\/0x1ff0000/);
        // tunnel.mtu 1500 - 50 (VXLAN) - 40 (IPv6) - 20 (TCP).
        assert.match(post, /-A DPR_POST -s 2001:2::2\/128 -p tcp -m multiport --sports 80 -m tcp --tcp-flags SYN,RST,ACK SYN,ACK -m tcpmss --mss 1391:65535 -j TCPMSS --set-mss 1390/);
        assert.match(bed.exec('a', ['ip6tables', '-w', '-t', 'mangle', '-S', 'POSTROUTING']), /-A POSTROUTING -j DPR_POST/);
      }
      assert.match(once, /^dpr6_to1$/m);
      assert.match(once, /^dpr6_to2$/m);
      assert.match(once, /^dpr6_fin$/m);
      assert.match(bed.exec('a', ['ipset', '-t', 'list', 'dpr6_to1']), /family inet6/);
      assert.match(bed.exec('a', ['ip', '-6', 'addr', 'show', 'dev', 'lo']), /inet6 2001:2::2\/128 /);
      assert.match(once, /net\.ipv6\.conf\.all\.forwarding = 1/);
      const raw = bed.exec('a', ['ip6tables', '-w', '-t', 'raw', '-S']);
      assert.match(raw, /-A DPR_ENTRY -p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN -m set --match-set dpr6_to1 src,src,dst -j DPR_TO1/);
      assert.match(raw, /-A DPR_TO1 -j CT --notrack/);
      assert.match(raw, /-A DPR_PRE -d 2001:2::1\/128 -p ipv6-icmp -m icmp6 --icmpv6-type 2 -j NFQUEUE/);
      assert.match(bed.exec('a', ['ip6tables', '-w', '-S', 'DPR_INPUT']), /-A DPR_INPUT -d 2001:2::2\/128 -p tcp -m multiport --dports 80 -j ACCEPT/);
      // The IPv4 half is all there too.
      assert.match(once, /^dpr4_to1$/m);
      assert.match(bed.exec('a', ['iptables', '-w', '-t', 'raw', '-S']), /--match-set dpr4_to1 src,src,dst -j DPR_TO1/);
      bed.exec('a', ['bash', uninstall]);
      assert.equal(state6(bed), before, 'uninstall left something behind or removed too much');
      assert.doesNotMatch(bed.exec('a', ['ip6tables-save']), /DPR_/);
    } finally {
      bed.destroy();
    }
  });
}

const hostsV6Only = hosts6.map(({ id, service6, cluster6 }) => ({ id, service6, cluster6 }));
const configV6Only = (mode: string): string => writeConfig({ ...clusterConfig(0, { hosts: 3 }), hosts: hostsV6Only, clusterCidr: '', clusterCidr6: '2001:2:0:1::/64', peers: { key: '00112233445566778899aabbccddeeff', family: 'ipv6' }, mode });

for (const mode of ['rewrite', 'direct']) {
  test(`51.rules.modes: ${mode}, IPv6-only: install sets IPv6 up and nothing of IPv4 but the saved sysctls, uninstall removes exactly it`, () => {
    const bed = Testbed.create([{ name: 'a', addrs: ['2001:2::1/64'], nics: [{ bridge: 'back', addrs: ['2001:2:0:1::1/64'] }] }], mode === 'direct' ? 'rm6od' : 'rm6or');
    try {
      const iptables4 = (): string => bed.exec('a', ['sh', '-c', 'iptables-save | grep DPR_ || true']);
      const before = state6(bed);
      const rules4 = bed.exec('a', ['ip', '-4', 'rule', 'show']);
      const file = configV6Only(mode);
      bed.exec('a', ['bash', install, file]);
      const once = state6(bed);
      bed.exec('a', ['bash', install, file]);
      assert.equal(state6(bed), once, 'a second install changed something');
      // IPv4: the chain of saved sysctl values, and nothing else.
      assert.deepEqual(iptables4().split('\n').filter((l) => l && !/DPR_SAVED/.test(l)), []);
      assert.match(iptables4(), /-A DPR_SAVED -m comment --comment "net\/ipv6\/conf\/all\/forwarding=0"/);
      assert.equal(bed.exec('a', ['ip', '-4', 'rule', 'show']), rules4, 'the IPv4 rules changed');
      assert.match(once, /net\.ipv6\.conf\.all\.forwarding = 1/);
      assert.match(bed.exec('a', ['ip6tables', '-w', '-t', 'raw', '-S']), /-A DPR_PRE -d 2001:2::1\/128 -p tcp -m multiport --dports 80 -j DPR_ENTRY/);
      if (mode === 'direct') {
        assert.match(once, /^dpr6_to1$/m);
        assert.doesNotMatch(once, /^dpr4_/m);
        assert.match(bed.exec('a', ['ip', '-6', 'rule', 'show']), /^10:\s+from all fwmark 0x1010000\/0x1ff0000 lookup 4601 proto 77$/m);
        assert.match(bed.exec('a', ['ip', '-6', 'addr', 'show', 'dev', 'lo']), /inet6 2001:2::2\/128 /);
      }
      bed.exec('a', ['bash', uninstall]);
      assert.equal(state6(bed), before, 'uninstall left something behind or removed too much');
      assert.equal(iptables4(), '');
      assert.doesNotMatch(bed.exec('a', ['ip6tables-save']), /DPR_/);
    } finally {
      bed.destroy();
    }
  });
}

test('51.rules.modes: dpr check refuses a kernel mode on a host without ipset, naming mode and the reason', () => {
  // A PATH with node but without the ipset tool: the host cannot do the mode.
  const r = spawnSync(process.execPath, [cli, 'check', '--config', config('direct')], { encoding: 'utf8', env: { ...process.env, PATH: path.dirname(process.execPath) } });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /config: mode: mode 'direct' needs ipset/);
});
