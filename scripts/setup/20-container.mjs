/**
 * Setup step 20: the container backend's host side and its code-interpreter image.
 *
 * 1. Debian packages: podman, runc (crun fails on this host's hybrid cgroups), conmon, catatonit,
 *    CNI plugins, socat (custom-container port forwarder), docker-registry (tests), iptables.
 * 2. /etc/containers/containers.conf.d/50-sandpool.conf: runc, cgroupfs (there is no systemd),
 *    file event logger (no journald); registries.conf.d: the loopback test registry as insecure.
 * 3. An engine socket: when /run/podman/podman.sock does not answer, start
 *    `podman system service --time=0` detached (the backend also starts its own when it finds none).
 * 4. Images, rebuilt only when their recipe changes:
 *    - localhost/sandpool/rootfs:<rootfs hash>        `podman import` of the shared rootfs tar;
 *    - localhost/sandpool/code-interpreter:<hash>     the agent layer on top (hash of the base tag,
 *      the Containerfile, the entrypoint and every agent file), also tagged `:latest`.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

import { aptInstall, ensureRootfs } from './10-rootfs.mjs';

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
export const IMAGE_REPOSITORY = 'localhost/sandpool/code-interpreter';
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
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, content);
  log(`wrote ${path}`);
}

function podman(args, { log, input } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn('podman', args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (err = (err + c).slice(-4000)));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(out.trim());
      else {
        log?.(`podman ${args.join(' ')}:\n${err}`);
        reject(new Error(`podman ${args[0]} ${args[1] ?? ''} failed (exit ${code}): ${err.trim().split('\n').pop()}`));
      }
    });
    if (input !== undefined) child.stdin.end(input);
  });
}

function imageExists(ref) {
  return spawnSync('podman', ['image', 'exists', ref], { stdio: 'ignore' }).status === 0;
}

/** GET /_ping on a unix socket; true when an engine answers. */
export function pingSocket(socketPath, timeoutMs = 2000) {
  return new Promise((resolve) => {
    if (!existsSync(socketPath)) return resolve(false);
    const req = request({ socketPath, path: '/_ping', timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

async function ensureEngineSocket(log) {
  if (process.env.DOCKER_HOST !== undefined) return;
  if (await pingSocket(PODMAN_SOCKET)) return;
  mkdirSync('/run/podman', { recursive: true });
  rmSync(PODMAN_SOCKET, { force: true });
  log(`starting podman system service on ${PODMAN_SOCKET}`);
  // cwd '/': conmon writes an `oom` marker into the service's working directory when a container
  // is OOM-killed; it must not land in the checkout the setup ran from.
  const child = spawn('podman', ['system', 'service', '--time=0', `unix://${PODMAN_SOCKET}`], {
    cwd: '/',
    detached: true,
    stdio: 'ignore',
  });
  child.unref();
  for (let i = 0; i < 100; i++) {
    if (await pingSocket(PODMAN_SOCKET, 500)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`podman system service did not answer on ${PODMAN_SOCKET} within 10 s`);
}

/** Remove earlier builds of a repository (a tag still used by a container is kept: rmi fails). */
async function pruneOldTags(repository, keep, log) {
  const tags = (await podman(['images', '--format', '{{.Repository}}:{{.Tag}}', '--filter', `reference=${repository}`]))
    .split('\n')
    .filter((t) => t !== '' && !keep.includes(t));
  for (const tag of tags) {
    await podman(['rmi', tag]).then(
      () => log(`removed old image ${tag}`),
      () => {},
    );
  }
}

function agentFiles(dir, out = []) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === '__pycache__' || entry.name.startsWith('.') || entry.name === 'tests') continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) agentFiles(path, out);
    else if (entry.isFile()) out.push(path);
  }
  return out;
}

/**
 * Build (when missing) the code-interpreter image for the current rootfs and agent.
 * @returns {Promise<{ base: string, image: string, built: boolean }>}
 */
export async function ensureCodeInterpreterImage({ root, log }) {
  // A checkout-specific tag (see backends/container/options.ts): tag it, leave :latest and every
  // other tag alone, so checkouts with different agent code can share the engine.
  const devTag = process.env.SANDPOOL_CONTAINER_IMAGE || undefined;
  const mainTag = devTag ?? `${IMAGE_REPOSITORY}:latest`;
  const { tar, hash: rootfsHash } = await ensureRootfs({ log });
  const base = `localhost/sandpool/rootfs:${rootfsHash}`;
  if (!imageExists(base)) {
    const started = Date.now();
    log(`podman import ${tar} as ${base}`);
    await podman(['import', '--change', 'CMD ["/bin/sh"]', tar, base], { log });
    log(`imported in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
  const agentDir = join(root, 'agent');
  if (!existsSync(join(agentDir, 'sandpool_agent'))) {
    throw new Error(`the sandpool agent is missing (${join(agentDir, 'sandpool_agent')}); the image needs it`);
  }
  const recipeDir = join(root, 'images', 'container');
  const hash = createHash('sha256').update(base);
  const files = [join(recipeDir, 'code-interpreter.Containerfile'), join(recipeDir, 'entrypoint.sh'), ...agentFiles(agentDir)];
  for (const file of files.sort()) hash.update(relative(root, file)).update('\0').update(readFileSync(file));
  const image = `${IMAGE_REPOSITORY}:${hash.digest('hex').slice(0, 16)}`;
  if (imageExists(image)) {
    await podman(['tag', image, mainTag], { log });
    return { base, image, built: false };
  }
  const context = mkdtempSync(join(tmpdir(), 'sandpool-image-'));
  try {
    cpSync(agentDir, join(context, 'agent'), {
      recursive: true,
      filter: (src) => !/(__pycache__|\/\.|\/tests(\/|$))/.test(relative(root, src)),
    });
    cpSync(join(recipeDir, 'entrypoint.sh'), join(context, 'entrypoint.sh'));
    const started = Date.now();
    log(`building ${image}`);
    await podman(
      [
        'build',
        '--quiet',
        '--build-arg',
        `BASE=${base}`,
        '--label',
        `sandpool.rootfs=${rootfsHash}`,
        '-f',
        join(recipeDir, 'code-interpreter.Containerfile'),
        '-t',
        image,
        '-t',
        `${IMAGE_REPOSITORY}:latest`,
        context,
      ],
      { log },
    );
    log(`built ${image} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    rmSync(context, { recursive: true, force: true });
  }
  if (devTag === undefined) {
    await pruneOldTags(IMAGE_REPOSITORY, [image, mainTag], log);
    await pruneOldTags('localhost/sandpool/rootfs', [base], log);
  }
  return { base, image, built: true };
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
