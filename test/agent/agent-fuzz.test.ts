/** Property tests against the real agent: random host frames never crash it or leave it deaf, and
 * random paths never reach outside the data directory. */

import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import path from 'node:path';

import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { AgentClient } from '../../backends/support/agent-client/index.js';
import { startAgent, type AgentHarness } from './agent-harness.js';

const OPS = [
  'hello',
  'ping',
  'info',
  'execute',
  'execute.cancel',
  'kernel.restart',
  'files.stat',
  'files.list',
  'files.delete',
  'files.upload',
  'files.upload.chunk',
  'files.upload.end',
  'files.upload.abort',
  'files.download',
  'files.download.credit',
  'files.download.cancel',
  'bogus',
];

const anyValue = fc.oneof(
  fc.string(),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.string(), { maxKeys: 3 }),
);

const frame = fc.record(
  {
    op: fc.oneof(fc.constantFrom(...OPS), anyValue),
    id: fc.oneof(fc.integer({ min: -5, max: 1000 }), fc.string({ maxLength: 70 }), anyValue),
    language: fc.oneof(fc.constantFrom('python', 'javascript', 'shell'), anyValue),
    code: fc.oneof(fc.constantFrom('1', 'print(1)', ''), anyValue),
    timeoutMs: fc.oneof(fc.integer({ min: -10, max: 2000 }), anyValue),
    outputMaxBytes: fc.oneof(fc.integer({ min: -10, max: 5000 }), anyValue),
    path: fc.oneof(fc.constantFrom('a.txt', '../x', '/etc/passwd', 'd/e', ''), anyValue),
    maxBytes: fc.oneof(fc.integer({ min: -1, max: 100 }), anyValue),
    data: fc.oneof(fc.base64String({ maxLength: 40 }), anyValue),
    recursive: anyValue,
    window: anyValue,
    chunks: anyValue,
    argv: anyValue,
    stdin: anyValue,
  },
  { requiredKeys: [] },
);

/** Paths built from dangerous pieces: dot segments, slashes, NUL, long names, unicode. */
const nastyPath = fc
  .array(fc.constantFrom('..', '.', '', '/', 'a', 'b c', '\0', 'é', 'x'.repeat(300), '%2e%2e', '\\', 'outside', '~'), {
    minLength: 1,
    maxLength: 6,
  })
  .map((parts) => parts.join('/'));

describe('agent fuzzing', () => {
  let agent: AgentHarness;
  let client: AgentClient;

  beforeAll(async () => {
    agent = await startAgent({ transport: 'unix' });
    client = agent.client;
  });
  afterAll(async () => {
    await agent?.close();
  });

  it('survives random frames and keeps answering pings', async () => {
    client.close();
    const socket: Socket = connect(agent.socketPath as string);
    await once(socket, 'connect');
    socket.on('error', () => undefined);
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      received += text;
      if (received.length > 1 << 20) received = received.slice(-4096);
    });
    await fc.assert(
      fc.asyncProperty(fc.array(frame, { minLength: 1, maxLength: 20 }), async (frames) => {
        const marker = `probe-${Math.random().toString(36).slice(2)}`;
        socket.write(`${frames.map((f) => JSON.stringify(f)).join('\n')}\n`);
        socket.write(`${JSON.stringify({ op: 'ping', id: marker })}\n`);
        const deadline = Date.now() + 20_000;
        while (!received.includes(`"id":"${marker}"`)) {
          if (Date.now() > deadline) throw new Error('agent stopped answering');
          await new Promise((r) => setTimeout(r, 5));
        }
      }),
      { numRuns: 60 },
    );
    socket.destroy();
    client = await agent.reconnect();
    expect(await client.ping(5000)).toBeLessThan(5000);
    // Every bad frame was answered as such: none reached an unexpected code path.
    expect(agent.stderr()).toContain('ready in'); // the log is captured…
    expect(agent.stderr()).not.toContain('internal error'); // …and holds no internal error
  }, 120_000);

  it('never lets a path reach outside the data directory', async () => {
    const outside = path.dirname(agent.dataDir);
    const before = readdirSync(outside).sort();
    await fc.assert(
      fc.asyncProperty(nastyPath, async (p) => {
        async function* one(): AsyncGenerator<Uint8Array> {
          yield Buffer.from('x');
        }
        const attempts = [
          client.upload(p, one(), { maxBytes: 10 }),
          client.stat(p),
          client.list({ path: p, recursive: true }),
          client.download(p),
          client.delete(p),
        ];
        const results = await Promise.allSettled(attempts);
        for (const result of results) {
          if (result.status === 'rejected') {
            expect(String((result.reason as { code?: string }).code)).toMatch(
              /^SANDPOOL_(INVALID_PATH|FILE_NOT_FOUND|INVALID_REQUEST)$/,
            );
          } else if (result.value && typeof result.value === 'object' && 'path' in result.value) {
            expect(String(result.value.path)).not.toMatch(/(^|\/)\.\.?(\/|$)|^\//);
          }
        }
      }),
      { numRuns: 150 },
    );
    expect(readdirSync(outside).sort()).toEqual(before);
    expect(await client.ping(5000)).toBeLessThan(5000);
  }, 120_000);
});
