/**
 * Custom-container images from a registry: Debian's docker-registry on loopback (the port that
 * setup marks insecure in registries.conf.d), a test image pushed to it and removed locally, then
 * pulled by the backend's prepare() and run as a session.
 */

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ContainerBackend } from '../../backends/container/index.js';
import { ErrorCode } from '../../src/errors.js';
import { containersOf, echoTemplate, LIMITS, newOwnerId, NO_EGRESS, noExit, podman, podmanAvailable, spec } from './helpers.js';

const available = podmanAvailable();
const REGISTRY = '127.0.0.1:5787';
const IMAGE = `${REGISTRY}/sandpool-test/busybox-httpd:pulled`;

/** A 2 MB image FROM scratch: Debian's static busybox serving /www with its httpd (quick to push). */
function buildTinyImage(dir: string): void {
  const context = join(dir, 'context');
  mkdirSync(join(context, 'www'), { recursive: true });
  copyFileSync('/bin/busybox', join(context, 'busybox'));
  writeFileSync(join(context, 'www', 'hello'), 'hello from busybox\n');
  writeFileSync(
    join(context, 'Containerfile'),
    'FROM scratch\nCOPY busybox /bin/busybox\nCOPY www /www\nUSER 1000:1000\nCMD ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]\n',
  );
  podman('build', '-q', '-t', IMAGE, context);
}

function registryUp(): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port: 5787, path: '/v2/', timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

describe.skipIf(!available)('container backend: images from a registry', () => {
  let registry: ChildProcess | undefined;
  let dir = '';
  const owner = newOwnerId();

  beforeAll(async () => {
    if (await registryUp()) throw new Error(`something already listens on ${REGISTRY}; the test needs that port`);
    dir = mkdtempSync(join(tmpdir(), 'sandpool-registry-'));
    writeFileSync(
      join(dir, 'config.yml'),
      `version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\n  delete:\n    enabled: true\nhttp:\n  addr: ${REGISTRY}\n`,
    );
    registry = spawn('docker-registry', ['serve', join(dir, 'config.yml')], { stdio: 'ignore' });
    for (let i = 0; i < 100 && !(await registryUp()); i++) await new Promise((r) => setTimeout(r, 100));
    if (!(await registryUp())) throw new Error('docker-registry did not start');
    buildTinyImage(dir);
    podman('push', '--tls-verify=false', IMAGE);
    podman('rmi', IMAGE);
  }, 120_000);

  afterAll(async () => {
    spawnSync('podman', ['rmi', '-f', IMAGE], { stdio: 'ignore' });
    registry?.kill('SIGTERM');
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
    expect(containersOf(owner)).toEqual([]);
  });

  it('pulls a missing image in prepare() and runs it', async () => {
    expect(spawnSync('podman', ['image', 'exists', IMAGE]).status).not.toBe(0);
    const backend = new ContainerBackend();
    try {
      const template = echoTemplate({ image: IMAGE });
      await backend.prepare({
        poolName: 'ctest-registry',
        ownerId: owner,
        containerType: 'CustomContainer',
        limits: LIMITS,
        network: NO_EGRESS,
        customContainer: template,
      });
      expect(spawnSync('podman', ['image', 'exists', IMAGE]).status).toBe(0);
      const session = await backend.create(spec(owner, { containerType: 'CustomContainer', customContainer: template }), {
        onExit: noExit,
      });
      const response = await backend.fetch(session, new Request('http://session.local/hello'));
      expect(await response.text()).toBe('hello from busybox\n');
      await backend.destroy(session, { reason: 'stopped' });
    } finally {
      await backend.close();
    }
  }, 120_000);

  it('reports an image that is neither local nor in the registry', async () => {
    const backend = new ContainerBackend();
    try {
      const template = echoTemplate({ image: `${REGISTRY}/sandpool-test/missing:1` });
      await expect(
        backend.prepare({
          poolName: 'ctest-registry',
          ownerId: owner,
          containerType: 'CustomContainer',
          limits: LIMITS,
          network: NO_EGRESS,
          customContainer: template,
        }),
      ).rejects.toMatchObject({ code: ErrorCode.BACKEND_UNAVAILABLE, message: expect.stringMatching(/pulling it failed/) });
    } finally {
      await backend.close();
    }
  }, 60_000);
});
