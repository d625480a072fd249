// One repetition of the forward trial: what the kernel modes cost per
// forwarded packet on the entry host, against the kernel forwarding the same
// packets with nothing of dpr (plain ip_forward and a route).
//
// Topology (198.18.0.0/15 only, in namespaces made and removed here):
//   snd 198.18.0.10 --- front --- host 198.18.0.1 | 198.18.1.1 --- back --- peer 198.18.1.2
// The sender floods ACKs (not SYNs: after the SYN is what the kernel modes
// carry) of 65,536 established flows to 198.18.0.1:80; the host routes them
// to the peer, whose raw PREROUTING drops and counts them (after VXLAN
// decapsulation in `tunnel`).
//   ip-forward: the host does not hold 198.18.0.1; a route sends it to the
//               peer, the sender reaches it through the host. The baseline.
//   direct / tunnel: iptables/install.sh of that mode on the host (and on the
//               peer for the tunnel's far end), every flow in the peer's ipset
//               (`ipset restore`), no daemon: after the SYN the kernel alone
//               routes (DPR_ENTRY's socket lookup, the set match, CT
//               --notrack, MARK, the entry's renewal, policy routing).
//
// The veth delivers in the sender's softirq: sender, host and peer all run on
// the sender's core (pinned to CPU 1), in the sender's context or in that
// core's ksoftirqd. So the number is forwarded packets per CPU-second of the
// two (sender process CPU time + ksoftirqd/1), which includes the sender's
// own cost, the same in every variant.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { Testbed } from '../test/support/netns';
import { BIN } from './datapath';

export type ForwardKind = 'ip-forward' | 'direct' | 'tunnel';

export interface ForwardSize {
  seconds: number;
}

export interface ForwardResult {
  delivered: number;
  sent: number;
  seconds: number;
  cpuSeconds: number;
  cpuPps: number;
  pps: number;
}

const FLOWS = 65536;
const ROOT = path.resolve(__dirname, '..', '..');
const KEY = '00112233445566778899aabbccddeeff';

function ksoftirqdCpu(cpu: number): number {
  const pid = execFileSync('pgrep', ['-x', `ksoftirqd/${cpu}`], { encoding: 'utf8' }).trim().split('\n')[0]!;
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  // utime and stime (fields 14 and 15), in clock ticks of 1/100 s.
  return (Number(f[11]) + Number(f[12])) / 100;
}

function install(bed: Testbed, host: string, self: number, mode: string, dir: string): void {
  const file = path.join(dir, `${host}.json`);
  fs.writeFileSync(file, JSON.stringify({
    self, mode, clusterCidr: '198.18.1.0/24', peers: { key: KEY },
    hosts: [{ id: 0, service: '198.18.0.1', cluster: '198.18.1.1' }, { id: 1, service: '198.18.0.2', cluster: '198.18.1.2' }],
  }));
  bed.exec(host, ['bash', path.join(ROOT, 'iptables', 'install.sh'), file]);
}

export async function runForward(kind: ForwardKind, size: ForwardSize): Promise<ForwardResult> {
  const plain = kind === 'ip-forward';
  const bed = Testbed.create([
    { name: 'snd', addrs: ['198.18.0.10/24'] },
    { name: 'host', addrs: [plain ? '198.18.0.3/24' : '198.18.0.1/24'], nics: [{ bridge: 'back', addrs: ['198.18.1.1/24'] }] },
    { name: 'peer', addrs: [], nics: [{ bridge: 'back', addrs: ['198.18.1.2/24'] }] },
  ], 'bfw');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpr-forward-'));
  try {
    if (plain) {
      bed.sysctl('host', 'net.ipv4.ip_forward', 1);
      bed.exec('host', ['ip', 'route', 'add', '198.18.0.1/32', 'via', '198.18.1.2']);
      bed.exec('snd', ['ip', 'route', 'add', '198.18.0.1/32', 'via', '198.18.0.3']);
    } else {
      install(bed, 'host', 0, kind, dir);
      if (kind === 'tunnel') install(bed, 'peer', 1, kind, dir);
      // The flows as the daemon would have handed them off: client 198.18.0.16.. port 1024.. (syn_flood's tuples).
      const lines: string[] = [];
      for (let f = 0; f < FLOWS; f++) {
        const src = `198.18.0.${16 + Math.floor(f / 64512)}`;
        lines.push(`add dpr4_to1 ${src},tcp:${1024 + (f % 64512)},198.18.0.1 timeout 900`);
      }
      bed.exec('host', ['ipset', 'restore'], lines.join('\n') + '\n');
    }
    // The peer: drop and count what arrives (for the tunnel, what comes out of it).
    bed.exec('peer', ['iptables', '-w', '-t', 'raw', '-I', 'PREROUTING', '1', '-p', 'tcp', '--dport', '80', '-j', 'DROP']);
    const before = ksoftirqdCpu(1);
    const out = bed.exec('snd', ['taskset', '-c', '1', BIN.synFlood, '--dst', '198.18.0.1', '--flows', String(FLOWS), '--count', '100000000',
      '--seconds', String(size.seconds), '--ack', '1']);
    const softirq = ksoftirqdCpu(1) - before;
    const r = JSON.parse(out) as { sent: number; seconds: number; cpuSeconds: number };
    const counters = bed.exec('peer', ['iptables', '-w', '-t', 'raw', '-L', 'PREROUTING', '1', '-v', '-x', '-n']);
    const delivered = Number(counters.trim().split(/\s+/)[0]);
    if (!(delivered > 0.5 * r.sent)) throw new Error(`forward ${kind}: only ${delivered} of ${r.sent} packets reached the peer`);
    const cpuSeconds = r.cpuSeconds + softirq;
    return { delivered, sent: r.sent, seconds: r.seconds, cpuSeconds, cpuPps: delivered / cpuSeconds, pps: delivered / r.seconds };
  } finally {
    bed.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
