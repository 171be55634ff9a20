/**
 * Shared pieces of the container tests: engine availability (a loud failure under CI, a skip on a
 * developer machine without podman), the engines a suite runs on (Podman, and the Docker engine
 * setup starts), session specs, the test image built from the shared rootfs, and the leak check
 * (no container with our owner label may survive a test file).
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

/** The socket of the Docker engine setup starts (scripts/setup/25-docker.mjs). */
export const DOCKER_SOCKET = process.env['SANDPOOL_DOCKER_SOCKET'] || '/run/sandpool-docker/docker.sock';

/** A container engine a suite runs on: how the backend reaches it and how a test inspects it. */
export interface TestEngine {
  readonly name: 'podman' | 'docker';
  /** ContainerBackend options that select this engine. */
  readonly backendOptions: { readonly socketPath?: string };
  /** The engine's command line (`podman …`, `docker --host … …`); returns trimmed stdout. */
  cli(...args: string[]): string;
  /** The engine's init, pid 1 of every session container (`Init: true`). */
  readonly initPath: string;
}

export const PODMAN: TestEngine = {
  name: 'podman',
  // The backend finds /run/podman/podman.sock itself (the first well-known socket).
  backendOptions: {},
  cli: podman,
  initPath: '/run/podman-init',
};

export const DOCKER: TestEngine = {
  name: 'docker',
  backendOptions: { socketPath: DOCKER_SOCKET },
  cli: (...args) =>
    execFileSync('docker', ['--host', `unix://${DOCKER_SOCKET}`, ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      // The classic builder (as setup uses): BuildKit is not set up on setup's engine.
      env: { ...process.env, DOCKER_BUILDKIT: '0' },
    }).trim(),
  initPath: '/sbin/docker-init',
};

/** True when setup's Docker engine answers and holds the code-interpreter image. Under CI, absence is an error. */
export function dockerAvailable(): boolean {
  let ok = false;
  try {
    DOCKER.cli(
      'image',
      'inspect',
      '--format',
      '{{.Id}}',
      process.env['SANDPOOL_CONTAINER_IMAGE'] || `${IMAGE_REPOSITORY}:latest`,
    );
    ok = true;
  } catch {
    ok = false;
  }
  if (!ok && CI && process.env['SANDPOOL_SKIP_DOCKER'] !== '1') {
    throw new Error(
      `the Docker engine on ${DOCKER_SOCKET} (with the code-interpreter image) is not available, but the container tests must run on it under CI (npm run setup starts it)`,
    );
  }
  return ok;
}

/**
 * The engines the engine-parameterised suites (conformance, attacks, custom containers) run on:
 * Podman always (a skip without it, a failure under CI), Docker when setup's engine is up.
 */
export function containerEngines(): TestEngine[] {
  return [...(podmanAvailable() ? [PODMAN] : []), ...(dockerAvailable() ? [DOCKER] : [])];
}

const IMAGE_REPOSITORY = 'localhost/sandpool/code-interpreter';

/**
 * The rootfs base image the checkout's code-interpreter image was built on (setup labels it
 * `sandpool.base`), so test images share its layers and this checkout's rootfs build.
 */
export function rootfsImage(engine: TestEngine = PODMAN): string {
  const image = process.env['SANDPOOL_CONTAINER_IMAGE'] || `${IMAGE_REPOSITORY}:latest`;
  const base = engine.cli('image', 'inspect', '--format', '{{index .Config.Labels "sandpool.base"}}', image);
  if (base === '' || base === '<no value>') throw new Error(`${image} has no sandpool.base label: run npm run setup`);
  return base;
}

/** Build the HTTP echo test image (Node.js server from fixtures/) on top of the rootfs; ~1 s when cached. */
export function buildEchoImage(tag = ECHO_IMAGE, engine: TestEngine = PODMAN): string {
  engine.cli(
    'build',
    '-q',
    '--network',
    'none',
    '--build-arg',
    `BASE=${rootfsImage(engine)}`,
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
export function containersOf(ownerId: string, engine: TestEngine = PODMAN): string[] {
  return engine
    .cli('ps', '-a', '--filter', `label=sandpool.owner=${ownerId}`, '--format', '{{.Names}}')
    .split('\n')
    .filter(Boolean);
}

/**
 * The container of one session (its `sandpool.session` label is the session id). Not `containersOf`'s
 * first name: a pool's refill may be listed first (Docker lists the newest first) and still be starting.
 */
export function containerOfSession(sessionId: string, engine: TestEngine = PODMAN): string {
  const names = engine
    .cli('ps', '-a', '--filter', `label=sandpool.session=${sessionId}`, '--format', '{{.Names}}')
    .split('\n')
    .filter(Boolean);
  if (names.length !== 1) throw new Error(`expected one container for session ${sessionId}, found ${names.length}`);
  return names[0] as string;
}

export const noExit = (): void => {};
