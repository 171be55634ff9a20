/** The isolate attack suite against the isolated-vm backend (see test/suites/isolate-attacks.ts). */

import { IsolatedVMBackend } from '../../backends/isolated-vm/index.js';
import { defineIsolateAttacks } from '../suites/isolate-attack-suite.js';

defineIsolateAttacks('isolated-vm', { makeBackend: () => new IsolatedVMBackend() });
