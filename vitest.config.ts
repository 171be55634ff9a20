import { defineConfig } from 'vitest/config';

/**
 * Two projects:
 * - `unit`: everything that needs no container engine, no QEMU and no host packages (the pool on
 *   the fake backend, the isolate backends, the server over isolates, parsers, fuzz seeds).
 *   `npm run test:unit` runs it alone, in under a minute.
 * - `engines`: real containers, VMs and the in-sandbox agent on the host's Python, and the tests
 *   that drive whole processes rather than the library (the built CLI, the setup scripts, the
 *   bench): they need no engine, but each spawns Node processes, which on two cores would take
 *   the inner loop past its minute. `npm test` runs both after `npm run setup` has installed and
 *   built what they need.
 * A test that needs an engine lives under test/container, test/vm or test/agent, or, when it
 * belongs to another component (the server over containers), is named `*.containers.test.ts`.
 * A third project, `from-scratch`, exists only while scripts/ci/from-scratch.sh runs it (it checks
 * what a setup into an empty cache built; see that script).
 */
const ENGINE_TESTS = [
  'test/container/**/*.test.ts',
  'test/vm/**/*.test.ts',
  'test/agent/**/*.test.ts',
  'test/**/*.containers.test.ts',
  'test/cluster/**/*.test.ts',
  // Whole processes: the built CLI, the setup scripts, the bench runner.
  'test/server/cli.test.ts',
  'test/setup/**/*.test.ts',
  'test/bench/**/*.test.ts',
];

export default defineConfig({
  test: {
    // Native addons (isolated-vm) and child processes are safest in forked workers.
    pool: 'forks',
    // Real engines (containers, VMs under TCG) are slow: tests set their own, larger timeouts.
    testTimeout: 30_000,
    hookTimeout: 120_000,
    // Two cores: run at most two test files at once.
    maxWorkers: 2,
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/**/*.test.ts'], exclude: ENGINE_TESTS } },
      { extends: true, test: { name: 'engines', include: ENGINE_TESTS } },
      ...(process.env['SANDPOOL_FROM_SCRATCH_SINCE'] === undefined
        ? []
        : [{ extends: true as const, test: { name: 'from-scratch', include: ['test/setup/from-scratch.check.ts'] } }]),
    ],
  },
});
