/** The isolate attack suite against the isolated-vm backend (see test/conformance/isolate-attacks.ts). */

import { IsolatedVMBackend } from '../../backends/isolated-vm/index.js';
import { defineIsolateAttacks } from '../conformance/isolate-attack-suite.js';

defineIsolateAttacks('isolated-vm', { makeBackend: () => new IsolatedVMBackend() });
