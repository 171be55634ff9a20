import { QuickJSBackend } from '../../backends/quickjs/index.js';
import { defineBackendConformance } from '../suites/backend-conformance.js';

defineBackendConformance('quickjs', {
  makeBackend: () => new QuickJSBackend(),
  containerType: 'NodeLTS',
  language: 'javascript',
});
