/**
 * The from-scratch proof (scripts/ci/from-scratch.sh runs it as the vitest project `from-scratch`
 * after a whole setup into a new, empty SANDPOOL_CACHE_DIR): Python runs in a container session on
 * each engine and in a VM session, on what that setup built; the server starts as `npm start`
 * starts it (/healthz at once, /readyz once its built-in pools are ready) and runs Python over
 * Azure's API; and the cache holds nothing older than the run.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { ContainerBackend } from '../../backends/container/index.js';
import { VMBackend } from '../../backends/vm/index.js';
import { SessionPool } from '../../src/index.js';
import { containerEngines } from '../container/helpers.js';

const cache = process.env['SANDPOOL_CACHE_DIR'] ?? '';
const since = Number(process.env['SANDPOOL_FROM_SCRATCH_SINCE']);
const image = process.env['SANDPOOL_CONTAINER_IMAGE'] ?? '';

/** The one rootfs build in the cache, and the base image tag setup derives from it (lib/images.mjs). */
function rootfsBuild(): { hash: string; baseTag: string } {
  const builds = readdirSync(join(cache, 'rootfs')).filter((n) => existsSync(join(cache, 'rootfs', n, 'complete')));
  expect(builds).toHaveLength(1);
  const hash = builds[0]!;
  const buildId = createHash('sha256')
    .update(readFileSync(join(cache, 'rootfs', hash, 'complete')))
    .digest('hex')
    .slice(0, 12);
  return { hash, baseTag: `localhost/sandpool/rootfs:${hash}-${buildId}` };
}

/** Every entry under `dir` whose inode changed before `seconds` (epoch): anything not made by this run. */
function olderThan(dir: string, seconds: number, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const stat = lstatSync(path);
    if (stat.ctimeMs / 1000 < seconds - 1) out.push(path);
    if (stat.isDirectory() && out.length < 20) olderThan(path, seconds, out);
  }
  return out;
}

describe('from scratch: what one setup built into an empty cache', () => {
  it('runs in a fresh cache and image tag', () => {
    expect(cache).toMatch(/sandpool-from-scratch\/cache\./);
    expect(image).toMatch(/:scratch-/);
    expect(Number.isFinite(since)).toBe(true);
  });

  for (const engine of containerEngines()) {
    it(`runs Python in a container session on ${engine.name}, on the image built from this run's rootfs`, async () => {
      const { baseTag } = rootfsBuild();
      expect(engine.cli('image', 'inspect', '--format', '{{index .Config.Labels "sandpool.base"}}', image)).toBe(baseTag);
      const pool = new SessionPool({
        name: `scratch-${engine.name}`,
        backend: new ContainerBackend({ ...engine.backendOptions, image }),
        containerType: 'PythonLTS',
        readySessionInstances: 1,
      });
      try {
        await pool.start();
        const session = await pool.acquire(SessionPool.generateIdentifier());
        const run = await session.execute({ code: 'import numpy, sys\nprint(sys.version_info[0])\nint(numpy.arange(5).sum())' });
        expect(run.status, run.stderr).toBe('Succeeded');
        expect(run.stdout).toBe('3\n');
        expect(run.result).toBe(10);
      } finally {
        await pool.close();
      }
    }, 300_000);
  }

  it("runs Python in a VM session restored from a snapshot built in this run's cache", async () => {
    const { hash } = rootfsBuild();
    const { manifest } = JSON.parse(readFileSync(join(cache, 'vm', 'current.json'), 'utf8')) as { manifest: string };
    expect(manifest.startsWith(`${cache}/vm/`)).toBe(true);
    const built = JSON.parse(readFileSync(manifest, 'utf8')) as { base: string; rootfs: { hash: string } };
    expect(built.base.startsWith(`${cache}/vm/`)).toBe(true);
    expect(built.rootfs.hash.startsWith(`${hash}-`)).toBe(true);
    const backend = new VMBackend({ cacheDir: cache, onLog: () => undefined });
    const pool = new SessionPool({
      name: 'scratch-vm',
      backend,
      containerType: 'PythonLTS',
      readySessionInstances: 1,
      limits: { memoryMb: 512 },
    });
    try {
      await pool.start();
      const session = await pool.acquire(SessionPool.generateIdentifier());
      const run = await session.execute({ code: 'import platform\nplatform.system() + " " + str(6 * 7)' });
      expect(run.status, run.stderr).toBe('Succeeded');
      expect(run.result).toBe('Linux 42');
      expect(backend.lastStart?.mode).toBe('snapshot');
      expect(readdirSync(join(cache, 'vm', 'snapshots')).length).toBeGreaterThan(0);
    } finally {
      await pool.close();
    }
  }, 900_000);

  it("serves as `npm start` does: /healthz at once, /readyz once the built-in pools are ready, Python over Azure's API, a clean stop", async () => {
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const { port: free } = probe.address() as { port: number };
        probe.close(() => resolve(free));
      });
    });
    const base = `http://127.0.0.1:${port}`;
    const dataDir = mkdtempSync(join(cache, 'serve-'));
    const child = spawn(process.execPath, ['dist/cli/main.js', 'serve', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let log = '';
    child.stdout.on('data', (c: Buffer) => (log += c.toString()));
    child.stderr.on('data', (c: Buffer) => (log += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const poll = async (path: string, ok: (status: number) => boolean, withinMs: number): Promise<number> => {
      const until = Date.now() + withinMs;
      for (;;) {
        const status = await fetch(`${base}${path}`).then(
          (r) => r.status,
          () => 0,
        );
        if (ok(status) || Date.now() > until) return status;
        await new Promise((r) => setTimeout(r, 250));
      }
    };
    try {
      const started = Date.now();
      expect(await poll('/healthz', (s) => s === 200, 30_000), log).toBe(200);
      const healthzMs = Date.now() - started;
      expect(await poll('/readyz', (s) => s === 200, 600_000), log).toBe(200);
      console.log(`[from-scratch] npm start: /healthz after ${healthzMs} ms, /readyz after ${Date.now() - started} ms`);
      const r = await fetch(`${base}/pools/python/code/execute?identifier=from-scratch-1`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ properties: { codeInputType: 'inline', executionType: 'synchronous', code: 'print(6 * 7)' } }),
      });
      const body = (await r.json()) as { properties?: { status?: string; stdout?: string } };
      expect(r.status, JSON.stringify(body)).toBe(200);
      expect(body.properties).toMatchObject({ status: 'Success', stdout: '42\n' });
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited, log).toBe(0);
  }, 900_000);

  it('holds nothing older than this run', () => {
    expect(olderThan(cache, since)).toEqual([]);
    // And no engine served an image of another rootfs build under this run's tag.
    expect(execFileSync('podman', ['image', 'inspect', '--format', '{{.Created}}', image], { encoding: 'utf8' })).not.toBe('');
  });

  afterAll(() => {
    // scripts/ci/from-scratch.sh removes the cache and the images.
  });
});
