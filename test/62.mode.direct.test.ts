// `direct` mode (all hosts on one segment): both policies. See test/support/mode-suite.ts.
import { modeSuite } from './support/mode-suite';

modeSuite({ mode: 'direct', policy: 'hash', networks: 'split', tag: 'mdh', checks: ['spread', 'conntrack', 'bulk', 'failopen', 'drain', 'membership', 'health'] });
modeSuite({ mode: 'direct', policy: 'load', networks: 'split', tag: 'mdl', checks: ['spread', 'conntrack', 'failopen', 'drain'] });
