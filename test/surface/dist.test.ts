/**
 * The built package as users load it: both module formats, the curated exports, and a root entry
 * that loads no backend dependency (no native addon, no WASM) until a backend subpath is imported.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';

import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const dist = join(root, 'dist');
const require = createRequire(import.meta.url);

/** Every file the ESM entry reaches through relative imports. */
function importGraph(entry: string, seen = new Set<string>()): Set<string> {
  if (seen.has(entry)) return seen;
  seen.add(entry);
  const source = readFileSync(entry, 'utf8');
  for (const match of source.matchAll(/(?:import|export)[^'"]*?from\s*['"](\.[^'"]+)['"]/g)) {
    importGraph(resolve(dirname(entry), match[1]!), seen);
  }
  return seen;
}

/**
 * `npm run test:unit` builds without type declarations (the quick loop); `npm test` and every
 * other build have them (scripts/setup.mjs writes which into dist/.build-hash).
 */
const declarationsBuilt = (() => {
  try {
    return readFileSync(join(dist, '.build-hash'), 'utf8').endsWith(' dts');
  } catch {
    return true; // Built some other way (npm run build): check everything.
  }
})();

describe('dist', () => {
  it('has ESM and CJS for every public subpath that exists', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { exports: Record<string, unknown> };
    const subpaths = Object.keys(pkg.exports).filter((k) => k !== './package.json');
    expect(subpaths).toEqual(expect.arrayContaining(['.', './server', './backends/quickjs', './backends/isolated-vm']));
    for (const base of ['index', 'backends/quickjs/index', 'backends/isolated-vm/index']) {
      for (const ext of ['.js', '.cjs']) expect(existsSync(join(dist, base + ext)), base + ext).toBe(true);
    }
  });

  it.skipIf(!declarationsBuilt)('has type declarations for every public subpath (npm test builds them)', () => {
    for (const base of ['index', 'backends/quickjs/index', 'backends/isolated-vm/index']) {
      for (const ext of ['.d.ts', '.d.cts']) expect(existsSync(join(dist, base + ext)), base + ext).toBe(true);
    }
  });

  it('loads through require and import with the same public surface', async () => {
    const cjs = require(join(dist, 'index.cjs')) as Record<string, unknown>;
    const esm = (await import(join(dist, 'index.js'))) as Record<string, unknown>;
    for (const name of [
      'SessionPool',
      'Session',
      'SandpoolError',
      'PoolExhaustedError',
      'InvalidIdentifierError',
      'SessionNotFoundError',
      'BackendError',
      'ExecutionTimeoutError',
      'ErrorCode',
    ]) {
      expect(typeof cjs[name], `cjs ${name}`).not.toBe('undefined');
      expect(typeof esm[name], `esm ${name}`).not.toBe('undefined');
    }
  });

  it('recognises an error from the other module format (brand, not identity)', async () => {
    const cjs = require(join(dist, 'index.cjs')) as typeof import('../../src/index.js');
    const esm = (await import(join(dist, 'index.js'))) as typeof import('../../src/index.js');
    const error = new cjs.PoolExhaustedError('full');
    expect(error instanceof esm.SandpoolError).toBe(true);
    expect(esm.SandpoolError.is(error)).toBe(true);
    expect(JSON.parse(JSON.stringify(error))).toEqual({
      name: 'PoolExhaustedError',
      code: 'SANDPOOL_POOL_EXHAUSTED',
      message: 'full',
    });
  });

  it('keeps the MCP SDK out of the root and server entries (the server loads it on the first /mcp request)', async () => {
    for (const entry of ['index.js', 'server/index.js']) {
      for (const file of importGraph(join(dist, entry))) {
        expect(readFileSync(file, 'utf8').includes('@modelcontextprotocol/sdk'), `${file} imports the MCP SDK`).toBe(false);
      }
    }
    const mcp = (await import(join(dist, 'mcp', 'index.js'))) as Record<string, unknown>;
    expect(typeof mcp['SandpoolMcpSession']).toBe('function');
    expect(typeof mcp['localSessions']).toBe('function');
  });

  it('keeps backend dependencies out of the root entry', () => {
    for (const file of importGraph(join(dist, 'index.js'))) {
      const source = readFileSync(file, 'utf8');
      for (const dep of ['isolated-vm', 'quickjs-emscripten', 'dockerode', '@modelcontextprotocol/sdk']) {
        expect(source.includes(`from "${dep}"`) || source.includes(`from '${dep}'`), `${file} imports ${dep}`).toBe(false);
      }
    }
  });
});
