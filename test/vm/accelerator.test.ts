/** The accelerator probe boots the real guest kernel; TCG must pass, and a guest that hangs must be rejected. */
import { describe, expect, it } from 'vitest';

import { chooseAccelerator, hardwareCandidates, probeAccelerator } from '../../backends/vm/accelerator.js';
import { loadImage } from '../../backends/vm/vm-environment.js';

const cacheDir = process.env['SANDPOOL_CACHE_DIR'] ?? '/var/cache/sandpool';

describe('accelerator choice', () => {
  const image = loadImage(`${cacheDir}/vm/current.json`);

  it('passes the probe under TCG, and rejects a guest that does not finish in time', async () => {
    expect(await probeAccelerator('tcg', { qemu: 'qemu-system-x86_64', kernel: image.kernel, timeoutMs: 120_000 })).toBeNull();
    const hung = await probeAccelerator('tcg', { qemu: 'qemu-system-x86_64', kernel: image.kernel, timeoutMs: 50 });
    expect(hung).toMatch(/did not finish within 50 ms/);
  }, 180_000);

  it('reports a missing QEMU instead of crashing', async () => {
    const failure = await probeAccelerator('tcg', { qemu: '/nonexistent/qemu', kernel: image.kernel, timeoutMs: 5000 });
    expect(failure).toMatch(/ENOENT/);
  });

  it('honours a forced accelerator and lists the platform candidates', async () => {
    expect(await chooseAccelerator({ qemu: 'qemu-system-x86_64', kernel: image.kernel, timeoutMs: 1, forced: 'tcg' })).toEqual({
      accelerator: 'tcg',
      reason: 'forced by option',
    });
    expect(hardwareCandidates('linux')).toEqual(['kvm']);
    expect(hardwareCandidates('win32')).toEqual(['whpx']);
    expect(hardwareCandidates('darwin')).toEqual(['hvf']);
  });
});
