/**
 * An Azure dynamic-sessions compatible server over a QuickJS pool, in a few lines.
 * Run: npx tsx examples/server.ts, then point any Azure sessions client at
 * http://127.0.0.1:8080/pools/javascript with the bearer token below.
 */

import { QuickJSBackend } from '../backends/quickjs/index.js';
import { SessionPool } from '../src/index.js';
import { createServer } from '../src/server/index.js';

const pool = new SessionPool({
  name: 'javascript',
  backend: new QuickJSBackend(),
  containerType: 'NodeLTS',
  readySessionInstances: 2,
});
const server = createServer({
  pools: [pool],
  // Pools created with PUT /pools/NAME may use these backends.
  backends: { quickjs: () => new QuickJSBackend() },
  auth: { adminKey: process.env['SANDPOOL_ADMIN_KEY'] ?? 'dev-only-key' },
});
const { url } = await server.listen({ host: '127.0.0.1', port: Number(process.env['PORT'] ?? 8080) });
console.log(
  `try: curl -X POST '${url}/pools/javascript/executions?identifier=demo1234' -H 'authorization: Bearer dev-only-key' -d '{"code":"6*7"}'`,
);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void server.close());
}
