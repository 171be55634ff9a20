/**
 * Setup step 20: the container backend's host side and its code-interpreter image in Podman.
 *
 * 1. Debian packages: podman, runc (crun fails on this host's hybrid cgroups), conmon, catatonit,
 *    CNI plugins, socat (custom-container port forwarder), docker-registry (tests), iptables.
 * 2. /etc/containers/containers.conf.d/50-sandpool.conf: runc, cgroupfs (there is no systemd),
 *    file event logger (no journald); registries.conf.d: the loopback test registry as insecure.
 * 3. An engine socket: when /run/podman/podman.sock does not answer, start
 *    `podman system service --time=0` detached (the backend also starts its own when it finds none).
 * 4. The images (lib/images.mjs): the shared rootfs imported as a base, the agent layer on top.
 * Step 25 does the same for a Docker engine of setup's own.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';

import { ensureRootfs } from './10-rootfs.mjs';
import { aptInstall } from './lib/apt.mjs';
import { ensureService, pingSocket } from './lib/engine.mjs';
import { writeFileAtomic } from './lib/fs-safe.mjs';
import { ensureCodeInterpreterImage as ensureImageIn, IMAGE_REPOSITORY } from './lib/images.mjs';

export { IMAGE_REPOSITORY, pingSocket };

/** @type {import('./lib/images.mjs').EngineCli} */
export const PODMAN = { name: 'podman', command: 'podman', args: [] };

export const HOST_PACKAGES = [
  'podman',
  'runc',
  'conmon',
  'catatonit',
  'containernetworking-plugins',
  'iptables',
  'uidmap',
  'slirp4netns',
  'fuse-overlayfs',
  'socat',
  'docker-registry',
  // A static busybox: the registry test builds a 2 MB image from it (FROM scratch).
  'busybox-static',
];

/** Loopback port of the registry the tests start (registries.conf marks it insecure: plain HTTP). */
export const TEST_REGISTRY = '127.0.0.1:5787';
export const PODMAN_SOCKET = '/run/podman/podman.sock';

const CONTAINERS_CONF = `# Written by sandpool's setup (scripts/setup/20-container.mjs).
# Podman's default ulimits exceed this host's hard limits (runc then fails with "error setting rlimits").
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
`;

const REGISTRIES_CONF = `# Written by sandpool's setup: the loopback registry the container tests push to and pull from.
[[registry]]
location = "${TEST_REGISTRY}"
insecure = true
`;

function writeIfChanged(path, content, log) {
  if (existsSync(path) && readFileSync(path, 'utf8') === content) return;
  mkdirSync(dirname(path), { recursive: true });
  writeFileAtomic(path, content);
  log(`wrote ${path}`);
}

async function ensureEngineSocket(log) {
  if (process.env.DOCKER_HOST !== undefined) return;
  await ensureService({
    name: 'podman system service',
    socketPath: PODMAN_SOCKET,
    command: 'podman',
    args: ['system', 'service', '--time=0', `unix://${PODMAN_SOCKET}`],
    timeoutMs: 10_000,
    log,
  });
}

/**
 * Build (when missing) the code-interpreter image in Podman for the current rootfs and agent.
 * @returns {Promise<{ base: string, image: string, built: boolean }>}
 */
export async function ensureCodeInterpreterImage({ root, log }) {
  const rootfs = await ensureRootfs({ log });
  return ensureImageIn({ engine: PODMAN, root, rootfs, log });
}

export default async function setup({ root, log }) {
  if (process.getuid?.() !== 0) throw new Error('the container setup needs root (apt-get, podman)');
  await aptInstall(HOST_PACKAGES, log);
  writeIfChanged('/etc/containers/containers.conf.d/50-sandpool.conf', CONTAINERS_CONF, log);
  writeIfChanged('/etc/containers/registries.conf.d/50-sandpool-test-registry.conf', REGISTRIES_CONF, log);
  await ensureEngineSocket(log);
  const { image } = await ensureCodeInterpreterImage({ root, log });
  log(`code-interpreter image ${image}`);
}
