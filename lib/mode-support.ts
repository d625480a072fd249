// Whether this host can run the configured data path (`dpr check`, `dpr
// install`): the kernel modes need ipset (tool and kernel), `tunnel` also the
// kernel's VXLAN driver. Read-only: nothing is created to find out.
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import type { DprConfig } from './config';

function succeeds(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Why this host cannot run `c.mode`, or null. */
export function modeProblem(c: Pick<DprConfig, 'mode'>): string | null {
  if (c.mode === 'rewrite') return null;
  // `ipset version` asks the kernel for its protocol too: it fails without ip_set.
  if (!succeeds('ipset', ['version'])) {
    return `mode '${c.mode}' needs ipset: the ipset tool (Debian package ipset) and the kernel's ip_set (CONFIG_IP_SET); \`ipset version\` failed`;
  }
  if (c.mode === 'tunnel' && !fs.existsSync('/sys/module/vxlan') && !succeeds('modprobe', ['-n', '-q', 'vxlan'])) {
    return "mode 'tunnel' needs the kernel's VXLAN driver (CONFIG_VXLAN): it is not loaded and `modprobe -n vxlan` finds no module (IPIP, GRE and FOU are not used)";
  }
  return null;
}
