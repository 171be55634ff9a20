/**
 * The core backend conformance suite (test/suites/backend-conformance.ts) on real containers, for
 * Python (PythonLTS) and JavaScript (NodeLTS) sessions on the same code-interpreter image.
 */

import { afterAll, expect } from 'vitest';

import { ContainerBackend } from '../../backends/container/index.js';
import { defineBackendConformance } from '../suites/backend-conformance.js';
import { podman, podmanAvailable } from './helpers.js';

if (podmanAvailable()) {
  const timeouts = { createMs: 120_000, testMs: 60_000, loopTimeoutMs: 2000, executionMs: 30_000 };
  // Preloaded pandas/matplotlib/numpy take ~150 MiB; the memory bomb still meets this limit.
  const limits = { memoryMb: 512 };
  defineBackendConformance('container (python)', {
    makeBackend: () => new ContainerBackend(),
    containerType: 'PythonLTS',
    language: 'python',
    limits,
    timeouts,
  });
  defineBackendConformance('container (javascript)', {
    makeBackend: () => new ContainerBackend(),
    containerType: 'NodeLTS',
    language: 'javascript',
    limits,
    timeouts,
  });
  afterAll(() => {
    // The suite closes its backends; nothing of ours may be left behind.
    const left = podman('ps', '-a', '--filter', 'label=sandpool.pool=conformance', '--format', '{{.Names}}');
    expect(left).toBe('');
  });
}
