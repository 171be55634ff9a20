// Custom-container sessions: your own OCI image per identifier, HTTP forwarded to its port.
// Run after `npm run setup`: npx tsx examples/custom-container/run.ts
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

import { SessionPool } from 'sandpool';
import { ContainerBackend } from 'sandpool/backends/container';

// Build the image locally (no registry): FROM sandpool's rootfs image, plus server.mjs.
const base = execFileSync('podman', ['images', 'localhost/sandpool/rootfs', '--format', '{{.Repository}}:{{.Tag}}'], {
  encoding: 'utf8',
})
  .split('\n')
  .find(Boolean);
if (base === undefined) throw new Error('no localhost/sandpool/rootfs image: run `npm run setup` first');
const dir = join(import.meta.dirname);
execFileSync('podman', ['build', '-q', '--build-arg', `BASE=${base}`, '-t', 'localhost/sandpool-example/kv:1', dir], {
  stdio: 'inherit',
});

await using pool = new SessionPool({
  name: 'kv',
  backend: new ContainerBackend(),
  containerType: 'CustomContainer',
  lifecycleType: 'OnContainerExit',
  maxAlivePeriodInSeconds: 600,
  readySessionInstances: 2,
  customContainerTemplate: {
    image: 'localhost/sandpool-example/kv:1',
    targetPort: 8080,
    env: [{ name: 'GREETING', secretRef: 'greeting' }],
    resources: { cpu: 0.5, memory: '256Mi' },
    probes: [{ type: 'Startup', httpGet: { path: '/healthz', port: 8080 }, periodSeconds: 0.2 }],
  },
  secrets: [{ name: 'greeting', value: 'hi from a secret' }],
});
await pool.start();

// Each identifier gets its own container; its state stays with it.
const alice = await pool.acquire('alice');
const bob = await pool.acquire('bob-2');
console.log(await (await alice.fetch(new Request('http://session/color', { method: 'PUT', body: 'blue' }))).text());
console.log('alice:', await (await alice.fetch(new Request('http://session/color'))).text());
console.log('bob:  ', await (await bob.fetch(new Request('http://session/color'))).text());
