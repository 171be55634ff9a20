/**
 * The README's examples run as a user would run them (against the built package, through the
 * `sandpool` self-reference), and each exits by itself after closing its pool: proof that a closed
 * pool leaves no timer, handle or child process behind.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = join(import.meta.dirname, '..', '..');
const tsx = join(root, 'node_modules', '.bin', 'tsx');

describe('examples', () => {
  it('quickstart prints the documented results and exits on its own', async () => {
    const { stdout } = await run(tsx, [join(root, 'examples', 'quickstart.ts')], { cwd: root, timeout: 60_000 });
    expect(stdout).toContain('Succeeded 42 "hi\\n"');
    expect(stdout).toContain('same session: true 41');
    expect(stdout).toMatch(/Failed TypeError: cannot read property 'boom' of null/);
  });

  it('lifecycle-events shows every step, a timeout, a cooldown reap, and exits on its own', async () => {
    const { stdout } = await run(tsx, [join(root, 'examples', 'lifecycle-events.ts')], { cwd: root, timeout: 60_000 });
    for (const step of ['pending', 'ready', 'allocated', 'exec start', 'exec done', 'reason=cooldown', 'reason=poolClosed']) {
      expect(stdout).toContain(step);
    }
    expect(stdout).toContain('timeout result: Failed SANDPOOL_EXECUTION_TIMEOUT session kept');
    expect(stdout).toContain('closed; the process exits by itself');
  });
});
