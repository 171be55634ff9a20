#!/usr/bin/env node
// `npm run setup`: installs whatever is missing and builds, idempotently. `npm start` and `npm test`
// run it first, so a fresh clone needs nothing else. Steps:
//   1. npm dependencies (when node_modules is missing or older than package-lock.json), then make
//      sure isolated-vm's native addon is built: npm 11 may skip install scripts it was not told to
//      allow, and an unbuilt addon only fails later, at first use.
//   2. the library build (tsup), skipped when no source changed since the last build (without type
//      declarations under `--no-host-steps`: they take most of the build's time).
//   3. each scripts/setup/*.mjs step in name order (host packages, container image, VM image…),
//      unless `--no-host-steps` is given (`npm run test:unit` needs only steps 1 and 2).
// A failed or interrupted setup names the step on its last line. Every step can be interrupted at
// any point: what it leaves is either finished (renamed into place, stamped) or removed by the
// next run (see scripts/setup/lib/fs-safe.mjs).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { cacheUnreadableByQemu } from './setup/lib/cache.mjs';
import { killChildren } from './setup/lib/run.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const ci = process.env.CI === 'true' || process.env.CI === '1';
const log = (message) => process.stderr.write(`[setup] ${message}\n`);
/** The step running now, named when setup fails or is interrupted. */
let currentStep = 'start';

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit', ...options });
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} failed with exit code ${result.status ?? result.signal}`);
  }
}

function ensureNpmDependencies() {
  const lock = join(root, 'package-lock.json');
  const installed = join(root, 'node_modules', '.package-lock.json');
  const stale =
    !existsSync(installed) ||
    statSync(join(root, 'package.json')).mtimeMs > statSync(installed).mtimeMs ||
    (existsSync(lock) && statSync(lock).mtimeMs > statSync(installed).mtimeMs);
  if (stale) {
    log('installing npm dependencies');
    run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error']);
  }
  const probe = spawnSync(process.execPath, ['-e', "require('isolated-vm')"], { cwd: root, stdio: 'ignore' });
  if (probe.status !== 0 && existsSync(join(root, 'node_modules', 'isolated-vm'))) {
    log('building the isolated-vm native addon (npm skipped its install script)');
    run('npm', ['rebuild', 'isolated-vm', '--foreground-scripts']);
  }
}

function sourceFiles(dir, out = []) {
  if (!existsSync(dir)) return out;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) sourceFiles(path, out);
    else if (/\.(ts|mts|cts|js|mjs|json)$/.test(entry.name)) out.push(path);
  }
  return out;
}

/**
 * The library build, skipped when no source changed. With `declarations: false` (the quick inner
 * loop, `npm run test:unit`) the .d.ts files are not emitted: they take most of the build's time.
 * The stamp records which kind was built, so a full build follows a quick one when needed.
 */
function ensureBuild({ declarations }) {
  const files = ['src', 'backends'].flatMap((d) => sourceFiles(join(root, d)));
  files.push(join(root, 'tsup.config.ts'), join(root, 'package.json'));
  const hash = createHash('sha256');
  for (const file of files.sort()) hash.update(relative(root, file)).update(readFileSync(file));
  const digest = hash.digest('hex');
  const stamp = join(root, 'dist', '.build-hash');
  const built = existsSync(stamp) ? readFileSync(stamp, 'utf8').split(' ') : [];
  if (built[0] === digest && (built[1] === 'dts' || !declarations)) return;
  log(`building dist/ with tsup${declarations ? '' : ' (no type declarations)'}`);
  // Removed first: a build interrupted half-way must not leave the previous stamp beside new files.
  rmSync(stamp, { force: true });
  run(join(root, 'node_modules', '.bin', 'tsup'), ['--silent'], {
    env: { ...process.env, SANDPOOL_BUILD_DTS: declarations ? '1' : '0' },
  });
  writeFileSync(stamp, `${digest} ${declarations ? 'dts' : 'js'}`);
}

/** Checks that need no work done yet, so a setup that cannot succeed fails in seconds, not minutes. */
function preflight() {
  if (process.env.SANDPOOL_SKIP_VM === '1') return;
  const unreadable = cacheUnreadableByQemu();
  if (unreadable !== undefined) throw new Error(unreadable);
}

async function runSteps() {
  // SANDPOOL_SETUP_STEPS_DIR: another folder of steps (the setup runner's own tests use it).
  const dir = process.env.SANDPOOL_SETUP_STEPS_DIR || join(root, 'scripts', 'setup');
  if (!existsSync(dir)) return;
  for (const name of readdirSync(dir)
    .filter((n) => n.endsWith('.mjs'))
    .sort()) {
    const step = name.replace(/\.mjs$/, '');
    currentStep = step;
    const started = Date.now();
    const module = await import(pathToFileURL(join(dir, name)).href);
    await module.default({ root, log: (m) => log(`${step}: ${m}`), ci });
    const seconds = (Date.now() - started) / 1000;
    if (seconds > 1) log(`${step} done in ${seconds.toFixed(1)} s`);
  }
}

// Interrupted (Ctrl-C, SIGTERM): stop the processes the current step started (each runs in its
// own process group) and say where setup stopped. What the step left is redone by the next run.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => {
    killChildren('SIGKILL');
    log(`interrupted (${signal}) during step ${currentStep}; run \`npm run setup\` again to finish`);
    process.exit(130);
  });
}

// Files setup writes into the cache are opened by each VM session's unprivileged QEMU: never let
// a private umask (077) make them unreadable.
process.umask(0o022);

try {
  const hostSteps = !process.argv.includes('--no-host-steps');
  if (hostSteps) {
    currentStep = 'preflight';
    preflight();
  }
  currentStep = 'npm-dependencies';
  ensureNpmDependencies();
  currentStep = 'build';
  ensureBuild({ declarations: hostSteps });
  if (hostSteps) await runSteps();
} catch (error) {
  const message = error instanceof Error ? error.message : String(error);
  log(`step ${currentStep} failed: ${message}`);
  log(`FAILED at step ${currentStep}`);
  process.exit(1);
}
