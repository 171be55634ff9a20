/**
 * Error paths of the server's own emitters: a listening server that hits an accept() failure
 * (EMFILE) logs it and keeps serving instead of ending the process with an unhandled 'error'.
 * (Every server test also fails on any uncaughtException or unhandledRejection: test/server/helpers.ts.)
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { startServer, type Harness } from './helpers.js';

describe('server error paths', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startServer();
  });
  afterAll(async () => {
    await h?.close();
  });

  it('an error event on the listening server is logged, and the server keeps answering', async () => {
    const emfile = Object.assign(new Error('accept EMFILE'), { code: 'EMFILE' });
    expect(() => h.server.httpServer!.emit('error', emfile)).not.toThrow();
    expect(h.logs.some((r) => r['msg'] === 'server error' && r['error'] === 'accept EMFILE')).toBe(true);
    expect((await h.request('/healthz')).status).toBe(200);
  });
});
