import { QuickJSBackend } from '../../backends/quickjs/index.js';
import { defineBackendConformance } from './backend-suite.js';

defineBackendConformance('quickjs', {
  makeBackend: () => new QuickJSBackend(),
  containerType: 'NodeLTS',
  language: 'javascript',
});
