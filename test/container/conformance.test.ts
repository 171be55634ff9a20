/**
 * The core backend conformance suite (test/suites/backend-conformance.ts) on real containers, for
 * Python (PythonLTS) and JavaScript (NodeLTS) sessions on the same code-interpreter image, on each
 * engine (Podman, and setup's Docker engine).
 */

import { afterAll, expect } from 'vitest';

import { ContainerBackend } from '../../backends/container/index.js';
import { defineBackendConformance } from '../suites/backend-conformance.js';
import { containerEngines } from './helpers.js';

for (const engine of containerEngines()) {
  const timeouts = { createMs: 120_000, testMs: 60_000, loopTimeoutMs: 2000, executionMs: 30_000 };
  // Preloaded pandas/matplotlib/numpy take ~150 MiB; the memory bomb still meets this limit.
  const limits = { memoryMb: 512 };
  defineBackendConformance(`container on ${engine.name} (python)`, {
    makeBackend: () => new ContainerBackend(engine.backendOptions),
    containerType: 'PythonLTS',
    language: 'python',
    limits,
    timeouts,
  });
  defineBackendConformance(`container on ${engine.name} (javascript)`, {
    makeBackend: () => new ContainerBackend(engine.backendOptions),
    containerType: 'NodeLTS',
    language: 'javascript',
    limits,
    timeouts,
  });
  afterAll(() => {
    // The suite closes its backends; nothing of ours may be left behind.
    // Only this process's: other checkouts may run the same suite on the same engine right now.
    const left = engine.cli('ps', '-a', '--filter', `label=sandpool.owner=conformance-${process.pid}`, '--format', '{{.Names}}');
    expect(left).toBe('');
  });
}
