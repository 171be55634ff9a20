/**
 * Code-interpreter sessions end to end through a SessionPool on real Podman: warm acquire and
 * first execution, libraries preloaded, images, files (both directions, symlink and traversal
 * refusals, size cap), limits (memory bomb, fork bomb, disk cap), no network, hardening.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ContainerBackend } from '../../backends/container/index.js';
import { ErrorCode, SandpoolError } from '../../src/errors.js';
import { SessionPool } from '../../src/index.js';
import { containersOf, podmanAvailable } from './helpers.js';

const available = podmanAvailable();

async function text(body: AsyncIterable<Uint8Array>): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks).toString('utf8');
}

describe.skipIf(!available)('container backend: code-interpreter sessions through a pool', () => {
  let pool: SessionPool;

  beforeAll(async () => {
    pool = new SessionPool({
      name: 'ctest-ci',
      backend: new ContainerBackend(),
      containerType: 'PythonLTS',
      readySessionInstances: 2,
      maxConcurrentSessions: 12,
      limits: { memoryMb: 512, pids: 64, diskMb: 16, maxFileSizeBytes: 4 << 20, executionTimeoutSeconds: 60 },
    });
    await pool.start();
  }, 180_000);

  afterAll(async () => {
    const owner = pool.ownerId;
    await pool.close();
    expect(containersOf(owner)).toEqual([]);
  });

  it('acquires a warm session and runs print(1) at once, with the libraries already imported', async () => {
    const session = await pool.acquire(SessionPool.generateIdentifier());
    const first = await session.execute({ code: 'print(1)' });
    expect(first).toMatchObject({ status: 'Succeeded', stdout: '1\n' });
    const libs = await session.execute({
      code: 'import sys\nsorted(m for m in ("numpy","pandas","matplotlib") if m in sys.modules)',
    });
    expect(libs.result).toBe("['matplotlib', 'numpy', 'pandas']");
    const stack = await session.execute({
      code: 'import scipy, sklearn, seaborn, sympy, PIL, openpyxl, bs4, lxml, requests\nimport pandas as pd\nint(pd.Series([1,2,3]).sum())',
    });
    expect(stack).toMatchObject({ status: 'Succeeded', result: 6 });
    const js = await session.execute({ code: 'const a = [1, 2, 3]; a.reduce((x, y) => x + y)', language: 'javascript' });
    expect(js).toMatchObject({ status: 'Succeeded', result: 6 });
  }, 120_000);

  it('returns a matplotlib figure as a PNG image result', async () => {
    const session = await pool.acquire(SessionPool.generateIdentifier());
    const outcome = await session.execute({
      code: 'import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [3, 1, 2])\nplt.show()',
    });
    expect(outcome.status).toBe('Succeeded');
    const image = outcome.result as { type: string; format: string; base64_data: string };
    expect(image).toMatchObject({ type: 'image', format: 'png' });
    expect(Buffer.from(image.base64_data, 'base64').subarray(1, 4).toString()).toBe('PNG');
  }, 120_000);

  it('moves files both ways under /mnt/data and refuses symlinks and traversal', async () => {
    const session = await pool.acquire(SessionPool.generateIdentifier());
    await session.uploadFile('in/data.csv', 'a,b\n1,2\n3,4\n');
    const read = await session.execute({ code: "import pandas as pd\nint(pd.read_csv('/mnt/data/in/data.csv')['b'].sum())" });
    expect(read.result).toBe(6);
    await session.execute({ code: "open('/mnt/data/out.txt', 'w').write('written by code')" });
    const listed = await session.listFiles({ recursive: true });
    expect(listed.map((f) => f.path).sort()).toEqual(['in', 'in/data.csv', 'out.txt']);
    const { info, body } = await session.downloadFile('out.txt');
    expect(info.sizeInBytes).toBe(15);
    expect(await text(body)).toBe('written by code');

    // A symlink planted by session code is never followed by the files API.
    await session.execute({
      code: "import os\nos.symlink('/etc/passwd', '/mnt/data/link')\nos.symlink('/etc', '/mnt/data/dir')",
      language: 'python',
    });
    for (const attempt of [
      () => session.downloadFile('link'),
      () => session.fileInfo('dir/passwd'),
      () => session.uploadFile('dir/evil', 'x'),
    ]) {
      await expect(attempt()).rejects.toMatchObject({ code: ErrorCode.INVALID_PATH });
    }
    for (const bad of ['../etc/passwd', '/etc/passwd', 'a/../../x']) {
      const error = await session.downloadFile(bad).catch((e: unknown) => e);
      expect(SandpoolError.is(error)).toBe(true);
      expect((error as SandpoolError).code).toBe(ErrorCode.INVALID_PATH);
    }
    // The upload size cap (pool limit 4 MiB).
    await expect(session.uploadFile('big.bin', new Uint8Array(5 << 20))).rejects.toMatchObject({
      code: ErrorCode.FILE_TOO_LARGE,
    });
    await session.deleteFile('out.txt');
    await expect(session.fileInfo('out.txt')).rejects.toMatchObject({ code: ErrorCode.FILE_NOT_FOUND });
  }, 120_000);

  it('contains a fork bomb at the pids limit and keeps the session usable', async () => {
    const session = await pool.acquire(SessionPool.generateIdentifier());
    const bomb = await session.execute({
      code: [
        'import os, time',
        'pids, err = [], None',
        'for i in range(300):',
        '    try:',
        '        pid = os.fork()',
        '    except OSError as e:',
        '        err = e.errno',
        '        break',
        '    if pid == 0:',
        '        time.sleep(3)',
        '        os._exit(0)',
        '    pids.append(pid)',
        'for p in pids:',
        '    os.waitpid(p, 0)',
        '[len(pids), err]',
      ].join('\n'),
      timeoutInSeconds: 30,
    });
    expect(bomb.status).toBe('Succeeded');
    const [forked, errno] = JSON.parse(String(bomb.result)) as [number, number];
    expect(forked).toBeLessThan(64);
    expect(errno).toBe(11); // EAGAIN: the pids cgroup said no
    const after = await session.execute({ code: '21 * 2' });
    expect(after.result).toBe(42);
    await session.stop();
  }, 120_000);

  it('fails a memory bomb at the memory limit, and the pool carries on', async () => {
    const session = await pool.acquire(SessionPool.generateIdentifier());
    const bomb = await session.execute({ code: 'x = bytearray(2 * 1024 ** 3)\nlen(x)', timeoutInSeconds: 60 });
    expect(bomb.status).toBe('Failed');
    const other = await pool.acquire(SessionPool.generateIdentifier());
    expect((await other.execute({ code: '1 + 1' })).result).toBe(2);
  }, 120_000);

  it('fails an execution at once when the container dies under it, and replaces the session', async () => {
    const identifier = SessionPool.generateIdentifier();
    const session = await pool.acquire(identifier);
    await session.execute({ code: 'marker = 1' });
    const started = Date.now();
    // Kill the agent (the kernel's parent): the container ends mid-execution.
    const outcome = await session.execute({
      code: 'import os, signal, time\nos.kill(os.getppid(), signal.SIGKILL)\ntime.sleep(60)',
    });
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(outcome.status).toBe('Failed');
    expect(outcome.sessionState).toBe('replaced');
    expect(outcome.stderr).toMatch(/session died during the execution/);
    const again = await pool.acquire(identifier);
    expect(again.id).not.toBe(session.id);
    expect((await again.execute({ code: "'marker' in globals()" })).result).toBe(false);
  }, 120_000);

  it('caps /mnt/data at the disk limit', async () => {
    const session = await pool.acquire(SessionPool.generateIdentifier());
    const fill = await session.execute({
      code: 'dd if=/dev/zero of=/mnt/data/fill bs=1M count=64 2>&1; rm -f /mnt/data/fill',
      language: 'shell',
    });
    expect(fill.stdout).toMatch(/No space left on device/);
  }, 120_000);

  it('runs unprivileged, read-only, with no network', async () => {
    const session = await pool.acquire(SessionPool.generateIdentifier());
    const probe = await session.execute({
      language: 'shell',
      code: [
        'id -u',
        'grep CapEff /proc/self/status',
        'grep NoNewPrivs /proc/self/status',
        'touch /usr/x 2>&1 | grep -o "Read-only file system"',
        'cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d " " | sort | tr "\\n" " "',
      ].join('; '),
    });
    const lines = probe.stdout.trim().split('\n');
    expect(lines[0]).toBe('61000'); // an id no host account has
    expect(lines[1]).toMatch(/CapEff:\s+0000000000000000/);
    expect(lines[2]).toMatch(/NoNewPrivs:\s+1/);
    expect(lines[3]).toBe('Read-only file system');
    expect(lines[4]?.trim()).toBe('lo');
    const out = await session.execute({
      code: "import socket\ns = socket.socket()\ns.settimeout(3)\ntry:\n  s.connect(('1.1.1.1', 80)); r = 'connected'\nexcept OSError as e:\n  r = type(e).__name__ + ': ' + str(e)\nr",
    });
    expect(String(out.result)).toMatch(/unreachable|OSError|Errno 101/i);
  }, 120_000);
});
