// Configurations for tests: a valid cluster, and ways to break it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface ClusterShape {
  hosts: number;
  /** Third octet of the 198.18.x.0/24 test network. */
  net?: number;
}

/** A valid configuration for host `self` of an N-host cluster on 198.18.<net>.0/24. */
export function clusterConfig(self: number, shape: ClusterShape, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const net = shape.net ?? 0;
  const hosts = Array.from({ length: shape.hosts }, (_, id) => ({
    id,
    service: `198.18.${net}.${id + 1}`,
    cluster: `198.18.${net}.${id + 1}`,
  }));
  return {
    self,
    hosts,
    clusterCidr: `198.18.${net}.0/24`,
    peers: { key: '00112233445566778899aabbccddeeff', heartbeatMs: 100, deadAfterMs: 600 },
    ...extra,
  };
}

/** Test IPv6 addresses (2001:2::/48 only): host `id`'s service6 and cluster6 on network `net`. */
export const address6 = (id: number, net = 0): string => `2001:2:0:${net.toString(16)}::${(id + 1).toString(16)}`;
/** The IPv6 restore block of test configurations (set explicitly: the default is no test address). */
export const TEST_RESTORE_CIDR6 = '2001:2:0:ff::/64';

/** `config` (from clusterConfig) made dual-stack: every host gets service6 = cluster6 = address6(id, net). */
export function dualStack(config: Record<string, unknown>, net = 0): Record<string, unknown> {
  const hosts = (config.hosts as Array<Record<string, unknown>>).map((h) => ({ ...h, service6: address6(h.id as number, net), cluster6: address6(h.id as number, net) }));
  return { ...config, hosts, clusterCidr6: '2001:2::/48', restoreCidr6: TEST_RESTORE_CIDR6 };
}

// One folder per test process for every config it writes, removed when the
// process exits (also when a test fails).
let folder: string | null = null;
let written = 0;

/** Writes a config to a fresh file in this process's temporary folder and returns its path. */
export function writeConfig(config: unknown): string {
  if (folder === null) {
    folder = fs.mkdtempSync(path.join(os.tmpdir(), 'dpr-config-'));
    const mine = folder;
    process.on('exit', () => fs.rmSync(mine, { recursive: true, force: true }));
  }
  const file = path.join(folder, `dpr-${++written}.json`);
  fs.writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}
