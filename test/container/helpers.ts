/**
 * Shared pieces of the container tests: engine availability (a loud failure under CI, a skip on a
 * developer machine without podman), session specs, the test image built from the shared rootfs,
 * and the leak check (no container with our owner label may survive a test file).
 */

import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';

import type { SessionSpec } from '../../src/backend.js';
import type { CustomContainerTemplate, NetworkPolicy, SessionLimits } from '../../src/types.js';

export const CI = process.env.CI === 'true' || process.env.CI === '1';
export const FIXTURES = join(import.meta.dirname, 'fixtures');
export const ECHO_IMAGE = 'localhost/sandpool-test/http-echo:latest';

/** True when podman and its engine socket work. Under CI, absence is an error, not a skip. */
export function podmanAvailable(): boolean {
  const ok = spawnSync('podman', ['info', '--format', '{{.Host.OCIRuntime.Name}}'], { encoding: 'utf8' }).status === 0;
  if (!ok && CI)
    throw new Error('podman is not available, but the container tests must run under CI (npm run setup installs it)');
  return ok;
}

export function podman(...args: string[]): string {
  return execFileSync('podman', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

/** Tag of the shared rootfs base image that setup imported (localhost/sandpool/rootfs:<hash>). */
export function rootfsImage(): string {
  const tags = podman('images', '--format', '{{.Repository}}:{{.Tag}}', '--filter', 'reference=localhost/sandpool/rootfs')
    .split('\n')
    .filter(Boolean);
  if (tags[0] === undefined) throw new Error('no localhost/sandpool/rootfs image: run npm run setup');
  return tags[0];
}

/** Build the HTTP echo test image (Node.js server from fixtures/) on top of the rootfs; ~1 s when cached. */
export function buildEchoImage(tag = ECHO_IMAGE): string {
  podman(
    'build',
    '-q',
    '--build-arg',
    `BASE=${rootfsImage()}`,
    '-f',
    join(FIXTURES, 'http-echo.Containerfile'),
    '-t',
    tag,
    FIXTURES,
  );
  return tag;
}

export const LIMITS: SessionLimits = {
  memoryMb: 512,
  cpus: 1,
  executionTimeoutSeconds: 60,
  outputMaxBytes: 1 << 20,
  maxFileSizeBytes: 8 << 20,
  pids: 128,
  diskMb: 64,
  maxQueuedExecutions: 8,
};
export const NO_EGRESS: NetworkPolicy = { egress: 'EgressDisabled', allow: [] };

export function newOwnerId(): string {
  return `test-${randomBytes(4).toString('hex')}`;
}

let counter = 0;
export function spec(ownerId: string, overrides: Partial<SessionSpec> = {}): SessionSpec {
  counter++;
  return {
    sessionId: `s${counter}-${randomBytes(3).toString('hex')}`,
    poolName: 'ctest',
    ownerId,
    containerType: 'PythonLTS',
    limits: LIMITS,
    network: NO_EGRESS,
    ...overrides,
  };
}

export function echoTemplate(overrides: Partial<CustomContainerTemplate> = {}): CustomContainerTemplate {
  return { image: ECHO_IMAGE, env: [], targetPort: 8080, probes: [], ...overrides };
}

/** Names of containers (running or not) carrying this owner id. */
export function containersOf(ownerId: string): string[] {
  return podman('ps', '-a', '--filter', `label=sandpool.owner=${ownerId}`, '--format', '{{.Names}}').split('\n').filter(Boolean);
}

export const noExit = (): void => {};
