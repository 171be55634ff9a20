/** The isolate attack suite against the QuickJS backend (see test/suites/isolate-attacks.ts). */

import { QuickJSBackend } from '../../backends/quickjs/index.js';
import { defineIsolateAttacks } from '../suites/isolate-attack-suite.js';

defineIsolateAttacks('quickjs', { makeBackend: () => new QuickJSBackend() });
