import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Native addons (isolated-vm) and child processes are safest in forked workers.
    pool: 'forks',
    // Real engines (containers, VMs under TCG) are slow: tests set their own, larger timeouts.
    testTimeout: 30_000,
    hookTimeout: 120_000,
    // Two cores: run at most two test files at once.
    maxWorkers: 2,
  },
});
