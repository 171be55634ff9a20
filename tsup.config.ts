import { existsSync } from 'node:fs';

import { defineConfig } from 'tsup';

// One entry per public subpath (see package.json "exports"), plus the CLI. Entries whose source does
// not exist yet are skipped, so the build works while backends are being added.
const candidates: Record<string, string> = {
  index: 'src/index.ts',
  'server/index': 'src/server/index.ts',
  'mcp/index': 'src/mcp/index.ts',
  'cluster/index': 'src/cluster/index.ts',
  'cli/main': 'src/cli/main.ts',
  'backends/quickjs/index': 'backends/quickjs/index.ts',
  'backends/isolated-vm/index': 'backends/isolated-vm/index.ts',
  'backends/container/index': 'backends/container/index.ts',
  'backends/vm/index': 'backends/vm/index.ts',
};
const entry = Object.fromEntries(Object.entries(candidates).filter(([, file]) => existsSync(file)));

export default defineConfig({
  entry,
  format: ['esm', 'cjs'],
  // Type declarations take ~5x as long as the JavaScript; `npm run test:unit` builds without them
  // (SANDPOOL_BUILD_DTS=0, see scripts/setup.mjs), every other build has them.
  dts: process.env['SANDPOOL_BUILD_DTS'] !== '0',
  sourcemap: true,
  clean: true,
  target: 'node20',
  splitting: true,
  shims: true,
  // Heavy or native backend dependencies are loaded from node_modules at run time, never bundled.
  external: ['isolated-vm', 'quickjs-emscripten', 'dockerode', 'etcd3'],
});
