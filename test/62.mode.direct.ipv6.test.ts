// `direct` mode with IPv6 clients on a dual-stack cluster (issue 15): the
// mode suite's checks of test/62.mode.direct, over IPv6 (dpr6_to<id> sets,
// ip6tables kernel rules, `ip -6` rules and tables). See test/support/mode-suite.ts.
import { modeSuite } from './support/mode-suite';

modeSuite({ mode: 'direct', policy: 'hash', networks: 'split', tag: 'md6', ipv6: true, checks: ['spread', 'conntrack', 'bulk', 'failopen'] });
modeSuite({ mode: 'direct', policy: 'load', networks: 'split', tag: 'md6l', ipv6: true, checks: ['spread', 'drain'] });
