// `direct` mode on IPv6-only hosts (issue 15): no IPv4 address on any host or
// the client, no iptables rules, heartbeats over IPv6; the mode suite's checks
// with the hash policy (test/63.cluster.ipv6 holds `rewrite` with load on
// such hosts). See test/support/mode-suite.ts.
import { modeSuite } from './support/mode-suite';

modeSuite({ mode: 'direct', policy: 'hash', networks: 'split', tag: 'md6o', ipv6: true, ipv4: false, checks: ['spread', 'bulk', 'failopen', 'health'] });
