/** The isolate attack suite against the QuickJS backend (see test/conformance/isolate-attacks.ts). */

import { QuickJSBackend } from '../../backends/quickjs/index.js';
import { defineIsolateAttacks } from '../conformance/isolate-attack-suite.js';

defineIsolateAttacks('quickjs', { makeBackend: () => new QuickJSBackend() });
