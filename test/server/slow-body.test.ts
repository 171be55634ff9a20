/**
 * Slow clients against the real server: a client that sends its headers and then stalls its body
 * must not hold a connection (and the request's resources) forever. The server's header timeout
 * (`headersTimeoutMs`) covers the headers only; this file checks the body too.
 */

import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { QuickJSBackend } from '../../backends/quickjs/index.js';
import { SessionPool } from '../../src/index.js';
import { createServer, silentLogger, type SandpoolServer } from '../../src/server/index.js';

const KEY = `key-${randomBytes(16).toString('hex')}`;
const HEADERS_TIMEOUT_MS = 1_000;
/** How long a stalled client waits to be cut off before the test gives up on the server. */
const STALL_MS = 8_000;

/**
 * Send headers and the first byte of a 1000-byte JSON body, then stall. Resolves with what
 * happened as soon as the server closes the connection, or after STALL_MS with `closed: false`.
 */
function stallBody(port: number, authorized: boolean): Promise<{ closed: boolean; response: string }> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let response = '';
    let closed = false;
    socket.on('data', (d) => (response += d.toString()));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      closed = true;
      resolve({ closed, response: response.split('\r\n')[0] ?? '' });
    });
    socket.write(
      'POST /pools/js/code/execute?identifier=slow-client HTTP/1.1\r\nHost: x\r\n' +
        (authorized ? `Authorization: Bearer ${KEY}\r\n` : '') +
        'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{',
    );
    setTimeout(() => {
      socket.destroy();
      resolve({ closed, response: response.split('\r\n')[0] ?? '' });
    }, STALL_MS);
  });
}

describe('server: stalled request bodies', () => {
  let server: SandpoolServer;
  let port = 0;

  beforeAll(async () => {
    server = createServer({
      pools: [new SessionPool({ name: 'js', backend: new QuickJSBackend(), containerType: 'NodeLTS', readySessionInstances: 0 })],
      auth: { adminKey: KEY },
      logger: silentLogger,
      headersTimeoutMs: HEADERS_TIMEOUT_MS,
    });
    port = Number(new URL((await server.listen({ host: '127.0.0.1', port: 0 })).url).port);
  });

  afterAll(() => server.close());

  it('an unauthenticated client is answered 401 and cut off without waiting for its body', async () => {
    const outcome = await stallBody(port, false);
    expect(outcome.response).toBe('HTTP/1.1 401 Unauthorized');
    expect(outcome.closed).toBe(true);
  }, 30_000);

  it('an authenticated client stalling its body is answered 408 and cut off after the idle timeout', async () => {
    const outcome = await stallBody(port, true);
    expect(outcome.response).toBe('HTTP/1.1 408 Request Timeout');
    expect(outcome.closed).toBe(true);
  }, 30_000);
});
