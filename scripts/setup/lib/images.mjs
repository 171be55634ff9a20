/**
 * The code-interpreter image in one container engine (Podman, or the Docker engine setup starts):
 *
 *   localhost/sandpool/rootfs:<recipe hash>-<build id>   `import` of the shared rootfs tar;
 *   localhost/sandpool/code-interpreter:<hash>           the agent layer on top (hash of the base tag,
 *     the Containerfile, the entrypoint and every agent file), also tagged with the checkout's tag
 *     ($SANDPOOL_CONTAINER_IMAGE, else :latest).
 *
 * The base tag carries the rootfs build id, so an image is reused only for the very rootfs build it
 * was imported from (a new empty cache builds a new rootfs and imports it again). Reusing an image
 * of the same tag from the engine's store is on purpose: same tag, same content.
 * An interrupted import or build leaves no tag (engines tag only a committed image), so the next
 * run imports or builds again.
 */
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

import { run } from './run.mjs';

export const IMAGE_REPOSITORY = 'localhost/sandpool/code-interpreter';
export const ROOTFS_REPOSITORY = 'localhost/sandpool/rootfs';

/**
 * @typedef {{ name: 'podman' | 'docker', command: string, args: string[], env?: Record<string, string> }} EngineCli
 * The engine's command line: `podman`, or `docker -H unix://…` for setup's own Docker engine.
 */

function cli(engine, args, options = {}) {
  return run(engine.command, [...engine.args, ...args], { env: engine.env, ...options });
}

export async function imageExists(engine, ref) {
  return cli(engine, ['image', 'inspect', '--format', '{{.Id}}', ref]).then(
    () => true,
    () => false,
  );
}

async function tagsOf(engine, repository) {
  return (await cli(engine, ['images', '--format', '{{.Repository}}:{{.Tag}}', '--filter', `reference=${repository}`]))
    .split('\n')
    .filter((t) => t !== '' && !t.endsWith(':<none>'));
}

/**
 * Remove earlier builds: content-hash tags of the code-interpreter image other than this one, and
 * rootfs bases no remaining code-interpreter image was built on. Named tags (a checkout's own,
 * `SANDPOOL_CONTAINER_IMAGE`) and what they use are left alone; a tag still used by a container is
 * kept (rmi fails).
 */
async function pruneOldBuilds(engine, keepImage, log) {
  const images = await tagsOf(engine, IMAGE_REPOSITORY);
  const stale = images.filter((t) => /:[0-9a-f]{16}$/.test(t) && t !== keepImage);
  for (const tag of stale) await remove(engine, tag, log);
  const usedBases = new Set();
  for (const tag of await tagsOf(engine, IMAGE_REPOSITORY)) {
    const base = await cli(engine, ['image', 'inspect', '--format', '{{index .Config.Labels "sandpool.base"}}', tag]).catch(
      () => '',
    );
    usedBases.add(base);
  }
  for (const tag of await tagsOf(engine, ROOTFS_REPOSITORY)) if (!usedBases.has(tag)) await remove(engine, tag, log);
}

async function remove(engine, tag, log) {
  await cli(engine, ['rmi', tag]).then(
    () => log(`removed old image ${tag}`),
    () => {},
  );
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

/** The tag a checkout's sessions use: $SANDPOOL_CONTAINER_IMAGE, else :latest. */
export function checkoutTag() {
  return process.env.SANDPOOL_CONTAINER_IMAGE || `${IMAGE_REPOSITORY}:latest`;
}

/**
 * Build (when missing) the code-interpreter image for this rootfs build and agent.
 * @param {{ engine: EngineCli, root: string, rootfs: { tar: string, hash: string, buildId: string }, log: (m: string) => void }} options
 * @returns {Promise<{ base: string, image: string, built: boolean }>}
 */
export async function ensureCodeInterpreterImage({ engine, root, rootfs, log }) {
  // A checkout-specific tag (see backends/container/options.ts): tag it, leave :latest and every
  // other tag alone, so checkouts with different agent code can share the engine.
  const devTag = process.env.SANDPOOL_CONTAINER_IMAGE || undefined;
  const mainTag = checkoutTag();
  const base = `${ROOTFS_REPOSITORY}:${rootfs.hash}-${rootfs.buildId}`;
  if (!(await imageExists(engine, base))) {
    const started = Date.now();
    log(`${engine.name} import ${rootfs.tar} as ${base}`);
    await cli(engine, ['import', '--change', 'CMD ["/bin/sh"]', rootfs.tar, base]);
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
  if (await imageExists(engine, image)) {
    await cli(engine, ['tag', image, mainTag]);
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
    log(`building ${image} in ${engine.name}`);
    await cli(engine, [
      'build',
      '--quiet',
      // The build's RUN steps need no network (and setup's Docker engine has no default bridge).
      '--network',
      'none',
      '--build-arg',
      `BASE=${base}`,
      '--label',
      `sandpool.rootfs=${rootfs.hash}`,
      '--label',
      `sandpool.base=${base}`,
      '-f',
      join(recipeDir, 'code-interpreter.Containerfile'),
      '-t',
      image,
      '-t',
      mainTag,
      context,
    ]);
    log(`built ${image} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    rmSync(context, { recursive: true, force: true });
  }
  if (devTag === undefined) await pruneOldBuilds(engine, image, log);
  return { base, image, built: true };
}
