// `tunnel` mode with IPv6 clients on a dual-stack cluster (issue 15): the
// mode suite's checks of test/62.mode.tunnel, over IPv6. The underlay stays
// IPv4 (the dprvx<id> VXLAN devices between the routed cluster addresses);
// the dpr6_to<id> sets and `ip -6` tables send IPv6 packets into the same
// devices. See test/support/mode-suite.ts.
import { modeSuite } from './support/mode-suite';

modeSuite({ mode: 'tunnel', policy: 'hash', networks: 'routed', tag: 'mt6h', ipv6: true, checks: ['spread', 'conntrack', 'bulk', 'failopen'] });
modeSuite({ mode: 'tunnel', policy: 'load', networks: 'routed', tag: 'mt6l', ipv6: true, checks: ['spread', 'drain'] });
