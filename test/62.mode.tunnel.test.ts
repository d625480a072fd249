// `tunnel` mode (peers routers apart: each host's cluster address on a network
// of its own behind a router namespace), both policies. See test/support/mode-suite.ts.
import { modeSuite } from './support/mode-suite';

modeSuite({ mode: 'tunnel', policy: 'hash', networks: 'routed', tag: 'mth', checks: ['spread', 'conntrack', 'bulk', 'failopen', 'membership'] });
modeSuite({ mode: 'tunnel', policy: 'load', networks: 'routed', tag: 'mtl', checks: ['spread', 'drain'] });
