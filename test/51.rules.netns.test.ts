import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { renderInstallScript, renderRules } from '../lib/rules';
import { loadConfig } from '../lib/config';
import { Testbed } from './support/netns';
import { clusterConfig, dualStack, writeConfig } from './support/configs';

const root = path.resolve(__dirname, '..', '..');
const install = path.join(root, 'iptables', 'install.sh');
const uninstall = path.join(root, 'iptables', 'uninstall.sh');

/**
 * The rules and user chains of every table, as `table: line`. Tables that hold
 * none are left out: iptables-save lists a table once anything touched it.
 */
function saved(bed: Testbed, host: string): string {
  let table = '';
  const out: string[] = [];
  for (const line of bed.exec(host, ['iptables-save']).split('\n')) {
    if (line.startsWith('*')) table = line.slice(1);
    const userChain = line.startsWith(':') && !/^:(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) /.test(line);
    if (line.startsWith('-A') || userChain) out.push(`${table}: ${line.replace(/\[\d+:\d+\]/, '')}`);
  }
  return out.join('\n');
}

test('51.rules: install twice gives the same rules, uninstall removes exactly ours', async () => {
  const bed = Testbed.create([{ name: 'a', addrs: ['198.18.0.1/24'] }], 'r');
  try {
    // Someone else's rules and chain, which must survive both scripts.
    bed.exec('a', ['iptables', '-t', 'raw', '-A', 'PREROUTING', '-p', 'udp', '--dport', '9', '-j', 'ACCEPT']);
    bed.exec('a', ['iptables', '-t', 'nat', '-N', 'OTHER_NAT']);
    bed.exec('a', ['iptables', '-t', 'nat', '-A', 'PREROUTING', '-j', 'OTHER_NAT']);
    const before = saved(bed, 'a');
    const config = writeConfig(clusterConfig(0, { hosts: 3 }));

    bed.exec('a', ['bash', install, config]);
    const once = saved(bed, 'a');
    bed.exec('a', ['bash', install, config]);
    const twice = saved(bed, 'a');
    assert.equal(twice, once, 'a second install changed the rules');
    assert.match(once, /-A PREROUTING -j DPR_PRE/);
    assert.match(once, /-A DPR_ENTRY .*-m socket -j ACCEPT/);
    // SYNs fail open; later packets of forwarded flows wait for a daemon instead.
    assert.match(once, /-A DPR_ENTRY -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j NFQUEUE --queue-num 0 --queue-bypass/);
    assert.match(once, /raw: -A DPR_PRE -d 198\.18\.0\.1\/32 -p icmp -m icmp --icmp-type 3 -j NFQUEUE --queue-num 0 --queue-bypass/);
    assert.match(once, /-A DPR_ENTRY -j NFQUEUE --queue-num 2$/m);
    assert.match(once, /-A DPR_SERVE -m ttl --ttl-gt 254 -j NFQUEUE --queue-num 1$/m);
    // TTL 255 after the forwarding decrement (GTSM): in mangle POSTROUTING.
    assert.match(once, /mangle: -A POSTROUTING -j DPR_POST/);
    assert.match(once, /mangle: -A DPR_POST -m mark --mark 0x1000000\/0x1000000 -j TTL --ttl-set 255/);
    assert.match(once, /-A DPR_NAT -d 198\.18\.0\.2\/32 -m mark --mark 0x2000000\/0x2000000 -j DNAT --to-destination 169\.254\.77\.2/);
    assert.match(bed.exec('a', ['ip', '-4', 'addr', 'show', 'dev', 'lo']), /169\.254\.77\.3\/32/);
    assert.match(once, /-A PREROUTING -p udp -m udp --dport 9 -j ACCEPT/);
    assert.equal(bed.exec('a', ['sysctl', '-n', 'net.ipv4.ip_forward']).trim(), '1');
    assert.equal(bed.exec('a', ['sysctl', '-n', 'net.ipv4.conf.eth0.send_redirects']).trim(), '0');

    bed.exec('a', ['bash', uninstall, config]);
    assert.equal(saved(bed, 'a'), before, 'uninstall left something behind or removed too much');
    assert.doesNotMatch(bed.exec('a', ['ip', '-4', 'addr', 'show', 'dev', 'lo']), /169\.254\.77/);
    bed.exec('a', ['bash', uninstall, config]); // a second uninstall is harmless
    assert.equal(saved(bed, 'a'), before);
  } finally {
    await bed.destroy();
  }
});

test('51.rules: with the load policy at most queues.synLimit SYNs a second reach the queue; the rest go to the kernel directly', async () => {
  const bed = Testbed.create([{ name: 'a', addrs: ['198.18.0.1/24'] }], 'r');
  try {
    bed.exec('a', ['bash', install, writeConfig(clusterConfig(0, { hosts: 2 }, { policy: 'load' }))]);
    const rules = saved(bed, 'a');
    assert.match(rules, /-A DPR_ENTRY -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -m hashlimit --hashlimit-upto 10000\/sec --hashlimit-burst 1000 --hashlimit-name dpr_syn_0 -j NFQUEUE --queue-num 0 --queue-bypass/);
    assert.match(rules, /-A DPR_ENTRY -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j ACCEPT/);
  } finally {
    await bed.destroy();
  }
});

test('51.rules: a bad config stops install.sh before any rule changes', async () => {
  const bed = Testbed.create([{ name: 'a', addrs: ['198.18.0.1/24'] }], 'r');
  try {
    const before = saved(bed, 'a');
    const config = writeConfig({ ...clusterConfig(0, { hosts: 2 }), queues: { entry: 5, serve: 5 } });
    assert.throws(() => bed.exec('a', ['bash', install, config]), /queues\.serve: must differ/);
    assert.equal(saved(bed, 'a'), before);
  } finally {
    await bed.destroy();
  }
});

/** The sysctls install.sh sets, as this namespace has them now. */
function sysctls(bed: Testbed, host: string): string {
  return bed.exec(host, ['sh', '-c', 'grep -H . /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv4/conf/*/send_redirects /proc/sys/net/ipv4/conf/all/rp_filter']);
}

/** Everything of the host that install.sh may touch: rules and chains, IPv4 addresses, the sysctls. */
function hostState(bed: Testbed, host: string): string {
  return `${saved(bed, host)}\n${bed.exec(host, ['ip', '-4', '-o', 'addr'])}\n${sysctls(bed, host)}`;
}

test('51.rules: uninstall leaves nothing of ours: rules, lo addresses and sysctls as before the install', async () => {
  const bed = Testbed.create([{ name: 'a', addrs: ['198.18.0.1/24'] }], 'r');
  try {
    bed.sysctl('a', 'net.ipv4.conf.all.rp_filter', 1); // a value install.sh changes
    const before = hostState(bed, 'a');
    const config = writeConfig(clusterConfig(0, { hosts: 3 }));
    bed.exec('a', ['bash', install, config]);
    assert.notEqual(hostState(bed, 'a'), before, 'install changed nothing');
    bed.exec('a', ['bash', uninstall, config]);
    assert.equal(hostState(bed, 'a'), before);
  } finally {
    await bed.destroy();
  }
});

test('51.rules: a reinstall without a host takes its restore address off lo; uninstall takes the rest', async () => {
  const bed = Testbed.create([{ name: 'a', addrs: ['198.18.0.1/24'] }], 'r');
  try {
    const lo = () => bed.exec('a', ['ip', '-4', '-o', 'addr', 'show', 'dev', 'lo']);
    bed.exec('a', ['bash', install, writeConfig(clusterConfig(0, { hosts: 3 }))]);
    assert.match(lo(), /169\.254\.77\.2\/32/);
    assert.match(lo(), /169\.254\.77\.3\/32/);
    const two = writeConfig(clusterConfig(0, { hosts: 2 }));
    bed.exec('a', ['bash', install, two]);
    assert.match(lo(), /169\.254\.77\.2\/32/);
    assert.doesNotMatch(lo(), /169\.254\.77\.3/, 'the address of the removed host 2 stayed');
    bed.exec('a', ['bash', uninstall, two]);
    assert.doesNotMatch(lo(), /169\.254\.77/);
  } finally {
    await bed.destroy();
  }
});

test('51.rules: a step the kernel refuses after the rules went in leaves the host as it was', async () => {
  const bed = Testbed.create([{ name: 'a', addrs: ['198.18.0.1/24'] }], 'r');
  try {
    const config = writeConfig(clusterConfig(0, { hosts: 3 }));
    // Someone else's rule, which must survive the undo too.
    bed.exec('a', ['iptables', '-t', 'nat', '-A', 'PREROUTING', '-p', 'udp', '--dport', '9', '-j', 'ACCEPT']);
    const before = hostState(bed, 'a');
    // In a mount namespace of its own, one sysctl the installer sets is read-only:
    // the kernel refuses the write (EROFS) once rules and other sysctls are in.
    const rp = '/proc/sys/net/ipv4/conf/all/rp_filter';
    let failure = '';
    try {
      bed.exec('a', ['unshare', '-m', '--propagation', 'private', 'sh', '-c', `mount --bind ${rp} ${rp} && mount -o remount,bind,ro ${rp} && bash ${install} ${config}`]);
    } catch (err) {
      failure = (err as Error).message;
    }
    assert.match(failure, /install failed/);
    assert.match(failure, /rp_filter/);
    assert.equal(hostState(bed, 'a'), before);
    // And the same config installs where nothing refuses it.
    bed.exec('a', ['bash', install, config]);
    assert.match(saved(bed, 'a'), /-A PREROUTING -j DPR_PRE/);
  } finally {
    await bed.destroy();
  }
});

test('51.rules: every iptables command dpr renders waits for the xtables lock (-w)', () => {
  const config = loadConfig({ file: writeConfig(clusterConfig(0, { hosts: 3 })), env: {}, ephemeralRange: [32768, 60999] });
  const script = renderInstallScript(renderRules(config));
  const calls: string[] = script.match(/\bip6?tables(-restore)? [^|;\n]*/g) ?? [];
  assert.ok(calls.length >= 4, script);
  const dual = loadConfig({ file: writeConfig(dualStack(clusterConfig(0, { hosts: 3 }))), env: {}, ephemeralRange: [32768, 60999] });
  const calls6 = renderInstallScript(renderRules(dual)).match(/\bip6tables(-restore)? [^|;\n]*/g) ?? [];
  assert.ok(calls6.length >= 6, 'no ip6tables commands for a dual-stack host');
  calls.push(...calls6);
  for (const call of calls) assert.match(call, / -w\b/, `no -w: ${call}`);
});

/** What install.sh may touch of IPv6: ip6tables rules and chains, IPv6 addresses, the forwarding sysctls. */
function saved6(bed: Testbed, host: string): string {
  let table = '';
  const out: string[] = [];
  for (const line of bed.exec(host, ['ip6tables-save']).split('\n')) {
    if (line.startsWith('*')) table = line.slice(1);
    const userChain = line.startsWith(':') && !/^:(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) /.test(line);
    if (line.startsWith('-A') || userChain) out.push(`${table}: ${line.replace(/\[\d+:\d+\]/, '')}`);
  }
  return out.join('\n');
}

function hostState6(bed: Testbed, host: string): string {
  // Without link-local addresses: the kernel adds those itself, whenever a link comes up.
  const addrs = bed.exec(host, ['ip', '-6', '-o', 'addr']).split('\n').filter((l) => !/ scope link /.test(l)).join('\n');
  return `${saved6(bed, host)}\n${addrs}\n${bed.exec(host, ['sh', '-c', 'grep -H . /proc/sys/net/ipv6/conf/*/forwarding'])}`;
}

test('51.rules: a dual-stack host gets the ip6tables rules too, twice the same; uninstall leaves nothing of either family', async () => {
  const bed = Testbed.create([{ name: 'a', addrs: ['198.18.0.1/24', '2001:2::1/64'] }], 'r');
  try {
    // Someone else's IPv6 rule, and an interface whose forwarding differs from `all`'s.
    bed.exec('a', ['ip6tables', '-t', 'raw', '-A', 'PREROUTING', '-p', 'udp', '--dport', '9', '-j', 'ACCEPT']);
    bed.sysctl('a', 'net.ipv6.conf.lo.forwarding', 1);
    const before = `${hostState(bed, 'a')}\n${hostState6(bed, 'a')}`;
    const config = writeConfig(dualStack(clusterConfig(0, { hosts: 3 })));
    bed.exec('a', ['bash', install, config]);
    const once = saved6(bed, 'a');
    bed.exec('a', ['bash', install, config]);
    assert.equal(saved6(bed, 'a'), once, 'a second install changed the IPv6 rules');
    // The same chains, the same queue numbers as IPv4, IPv6's words for the checks.
    assert.match(once, /raw: -A PREROUTING -j DPR_PRE/);
    assert.match(once, /raw: -A DPR_PRE -d 2001:2::1\/128 -p tcp -m multiport --dports 80 -j DPR_ENTRY/);
    assert.match(once, /raw: -A DPR_PRE -d 2001:2::1\/128 -p ipv6-icmp -m icmp6 --icmpv6-type 1 -j NFQUEUE --queue-num 0 --queue-bypass/);
    assert.match(once, /raw: -A DPR_PRE -d 2001:2::1\/128 -p ipv6-icmp -m icmp6 --icmpv6-type 2 -j NFQUEUE --queue-num 0 --queue-bypass/);
    assert.match(once, /raw: -A DPR_ENTRY -p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN -m socket -j ACCEPT/);
    assert.match(once, /raw: -A DPR_ENTRY -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -j NFQUEUE --queue-num 0 --queue-bypass/);
    assert.match(once, /raw: -A DPR_ENTRY -j NFQUEUE --queue-num 2$/m);
    assert.match(once, /raw: -A DPR_SERVE -m hl --hl-gt 254 -j NFQUEUE --queue-num 1$/m);
    assert.match(once, /nat: -A DPR_NAT -d 2001:2::2\/128 -m mark --mark 0x2000000\/0x2000000 -j DNAT --to-destination 2001:2:0:ff::2/);
    assert.match(once, /filter: -A OUTPUT -j DPR_OUTPUT/);
    assert.match(once, /filter: -A DPR_OUTPUT -p ipv6-icmp -m icmp6 --icmpv6-type 137 -j DROP/);
    assert.match(once, /mangle: -A DPR_POST -m mark --mark 0x1000000\/0x1000000 -j HL --hl-set 255/);
    const lo6 = bed.exec('a', ['ip', '-6', '-o', 'addr', 'show', 'dev', 'lo']);
    assert.match(lo6, /2001:2:0:ff::2\/128/);
    assert.match(lo6, /2001:2:0:ff::3\/128/);
    assert.equal(bed.exec('a', ['sysctl', '-n', 'net.ipv6.conf.eth0.forwarding']).trim(), '1');
    // IPv4 as before.
    assert.match(saved(bed, 'a'), /raw: -A DPR_PRE -d 198\.18\.0\.1\/32 -p tcp -m multiport --dports 80 -j DPR_ENTRY/);

    bed.exec('a', ['bash', uninstall, config]);
    assert.equal(`${hostState(bed, 'a')}\n${hostState6(bed, 'a')}`, before, 'uninstall left something of ours, or removed too much');
  } finally {
    await bed.destroy();
  }
});

test('51.rules: IPv6 restore addresses follow the host list, and a reinstall without IPv6 takes the IPv6 rules away', async () => {
  const bed = Testbed.create([{ name: 'a', addrs: ['198.18.0.1/24', '2001:2::1/64'] }], 'r');
  try {
    const lo6 = () => bed.exec('a', ['ip', '-6', '-o', 'addr', 'show', 'dev', 'lo']);
    const before6 = hostState6(bed, 'a');
    bed.exec('a', ['bash', install, writeConfig(dualStack(clusterConfig(0, { hosts: 3 })))]);
    bed.exec('a', ['bash', install, writeConfig(dualStack(clusterConfig(0, { hosts: 2 })))]);
    assert.match(lo6(), /2001:2:0:ff::2\/128/);
    assert.doesNotMatch(lo6(), /2001:2:0:ff::3/, 'the IPv6 restore address of the removed host 2 stayed');
    // The same cluster without IPv6: nothing of ip6tables stays, IPv4 stays installed.
    const v4only = writeConfig(clusterConfig(0, { hosts: 2 }));
    bed.exec('a', ['bash', install, v4only]);
    assert.doesNotMatch(saved6(bed, 'a'), /DPR_/);
    assert.doesNotMatch(lo6(), /2001:2:0:ff::/);
    assert.match(saved(bed, 'a'), /-A PREROUTING -j DPR_PRE/);
    bed.exec('a', ['bash', uninstall, v4only]);
    assert.equal(hostState6(bed, 'a'), before6);
  } finally {
    await bed.destroy();
  }
});

test('51.rules: an IPv6 restore address someone else holds on lo stops the install, and both families are left as they were', async () => {
  const bed = Testbed.create([{ name: 'a', addrs: ['198.18.0.1/24', '2001:2::1/64'] }], 'r');
  try {
    bed.exec('a', ['ip', '-6', 'addr', 'add', '2001:2:0:ff::3/128', 'dev', 'lo']);
    const before = `${hostState(bed, 'a')}\n${hostState6(bed, 'a')}`;
    assert.throws(() => bed.exec('a', ['bash', install, writeConfig(dualStack(clusterConfig(0, { hosts: 3 })))]), /2001:2:0:ff::3 is on lo already, not put there by dpr/);
    assert.equal(`${hostState(bed, 'a')}\n${hostState6(bed, 'a')}`, before);
  } finally {
    await bed.destroy();
  }
});
