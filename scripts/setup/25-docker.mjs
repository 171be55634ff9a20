/**
 * Setup step 25: a real Docker engine beside Podman, so the container backend is tested on both.
 *
 * 1. Debian's docker.io (dockerd 20.10, containerd, runc, docker-init).
 * 2. A dockerd of setup's own, on its own socket, data root, exec root and containerd namespace,
 *    with no default bridge and no iptables rules: it leaves Podman, the host's firewall and any
 *    other Docker on the machine alone. cgroupfs is its cgroup driver (there is no systemd here).
 *    Sessions on it have no network unless a pool enables egress (the backend then creates a
 *    bridge network and its own firewall rules, as on Podman).
 * 3. The code-interpreter image in it, built without any registry (lib/images.mjs): `docker import`
 *    of the shared rootfs tar, then the agent layer on top.
 * SANDPOOL_SKIP_DOCKER=1 skips this step (the Docker variants of the container tests are then
 * skipped, or fail under CI).
 */
import { ensureRootfs } from './10-rootfs.mjs';
import { aptInstall } from './lib/apt.mjs';
import { ensureService } from './lib/engine.mjs';
import { ensureCodeInterpreterImage } from './lib/images.mjs';

export const DOCKER_SOCKET = process.env.SANDPOOL_DOCKER_SOCKET || '/run/sandpool-docker/docker.sock';
const DATA_ROOT = '/var/lib/sandpool-docker';
const EXEC_ROOT = '/run/sandpool-docker/exec';
const LOG_FILE = '/var/log/sandpool-dockerd.log';

/** @type {import('./lib/images.mjs').EngineCli} */
export const DOCKER = {
  name: 'docker',
  command: 'docker',
  args: ['--host', `unix://${DOCKER_SOCKET}`],
  // The classic builder: BuildKit needs its own daemon plugin; this build is two COPYs and a chown.
  env: { DOCKER_BUILDKIT: '0' },
};

export async function ensureDockerd(log) {
  await ensureService({
    name: 'dockerd',
    socketPath: DOCKER_SOCKET,
    command: 'dockerd',
    args: [
      '--host',
      `unix://${DOCKER_SOCKET}`,
      '--data-root',
      DATA_ROOT,
      '--exec-root',
      EXEC_ROOT,
      '--pidfile',
      `${EXEC_ROOT}.pid`,
      '--containerd-namespace',
      'sandpool-docker',
      '--containerd-plugins-namespace',
      'sandpool-docker-plugins',
      '--iptables=false',
      '--ip-masq=false',
      '--bridge=none',
      '--exec-opt',
      'native.cgroupdriver=cgroupfs',
    ],
    logFile: LOG_FILE,
    timeoutMs: 60_000,
    log,
  });
}

export default async function setup({ root, log }) {
  if (process.env.SANDPOOL_SKIP_DOCKER === '1') {
    log('skipped (SANDPOOL_SKIP_DOCKER=1)');
    return;
  }
  if (process.platform !== 'linux') {
    log('skipped: setup starts its own Docker engine on Linux only');
    return;
  }
  if (process.getuid?.() !== 0) throw new Error('the Docker setup needs root (apt-get, dockerd); or set SANDPOOL_SKIP_DOCKER=1');
  // Not Docker's own service (a dockerd with iptables rules on /var/run/docker.sock): ours only.
  await aptInstall(['docker.io'], log, { startServices: false });
  await ensureDockerd(log);
  const rootfs = await ensureRootfs({ log });
  const { image } = await ensureCodeInterpreterImage({ engine: DOCKER, root, rootfs, log });
  log(`code-interpreter image ${image} in the Docker engine on ${DOCKER_SOCKET}`);
}
