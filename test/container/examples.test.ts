/**
 * The container examples run as a user runs them (against the built package) and print what the
 * README promises: pandas over an uploaded file, a matplotlib figure, a failed cell, and custom
 * containers with per-identifier state and a secret in their environment.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { describe, expect, it } from 'vitest';

import { podmanAvailable } from './helpers.js';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..', '..');
const tsx = join(root, 'node_modules', '.bin', 'tsx');

describe.skipIf(!podmanAvailable())('container examples', () => {
  it('python-container: pandas, a figure, a failure, files', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'sandpool-example-'));
    try {
      const { stdout } = await run(tsx, [join(root, 'examples', 'python-container.ts')], { cwd, timeout: 240_000 });
      expect(stdout).toContain('sum: 33');
      expect(stdout).toContain('figure: image → sales.png');
      expect(stdout).toContain('Failed ZeroDivisionError: division by zero');
      expect(stdout).toContain("files: [ 'sales.csv 33 B' ]");
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  }, 300_000);

  it('custom-container: an image built locally, state per identifier, secrets in env', async () => {
    const { stdout } = await run(tsx, [join(root, 'examples', 'custom-container', 'run.ts')], { cwd: root, timeout: 240_000 });
    expect(stdout).toContain('stored color (hi from a secret)');
    expect(stdout).toContain('alice: blue');
    expect(stdout).toContain('bob:   (none)');
  }, 300_000);
});
