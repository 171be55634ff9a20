import { makeVmBackend, VM_LIMITS, CREATE_TIMEOUT_MS, TEST_TIMEOUT_MS } from './vm-test-config.js';
import { defineBackendConformance } from '../suites/backend-conformance.js';

// The core conformance suite, unchanged, on microVMs under whatever accelerator works here (TCG on
// the CI machine). Sessions are restored from the shared warm snapshot.
defineBackendConformance('vm (python)', {
  makeBackend: () => makeVmBackend(),
  containerType: 'PythonLTS',
  language: 'python',
  limits: VM_LIMITS,
  // A kernel restart re-imports numpy/pandas/matplotlib: ~35 s under TCG on an idle host, over a
  // minute on a loaded one. The first execution after it waits for that, so allow minutes.
  timeouts: { createMs: CREATE_TIMEOUT_MS, testMs: TEST_TIMEOUT_MS * 2, loopTimeoutMs: 3000, executionMs: 240_000 },
});
