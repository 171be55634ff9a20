import { IsolatedVMBackend } from '../../backends/isolated-vm/index.js';
import { defineBackendConformance } from '../suites/backend-conformance.js';

defineBackendConformance('isolated-vm', {
  makeBackend: () => new IsolatedVMBackend(),
  containerType: 'NodeLTS',
  language: 'javascript',
});
