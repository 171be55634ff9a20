/**
 * JSON request bodies are untrusted on every route, not only the data plane: nesting deep enough
 * to overflow a recursive walk (the PATCH merge, the persisted definition) is a 400, never a 500 or
 * a crash; a `__proto__` key anywhere is a 400 instead of silently re-parenting the objects the
 * body is merged into (a PATCH could give the running pool properties its stored definition does
 * not have); and no user-supplied name is looked up on a plain object (`constructor`, `toString`).
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Readable } from 'node:stream';
import type { IncomingMessage } from 'node:http';

import { parseRole } from '../../src/server/auth.js';
import { readRequestMessage } from '../../src/server/e2b/connect-rpc.js';
import { MAX_JSON_DEPTH, parseUntrustedJsonText, UntrustedJsonError } from '../../src/untrusted-json.js';
import { json, jsPool, startServer, type Harness } from './helpers.js';

const nested = (depth: number, leaf = '1'): string => '{"a":'.repeat(depth) + leaf + '}'.repeat(depth);

describe('untrusted JSON bodies', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startServer({ pools: [jsPool('js')] });
    const put = await h.request('/pools/calc', {
      method: 'PUT',
      body: JSON.stringify({ backend: 'quickjs', properties: { containerType: 'NodeLTS' } }),
    });
    expect(put.status).toBe(201);
  });
  afterAll(async () => {
    await h?.close();
  });

  const send = (method: string, path: string, body: string) =>
    h.request(path, { method, headers: { 'content-type': 'application/json' }, body });

  it.each([
    ['PUT', '/pools/deep'],
    ['PATCH', '/pools/calc'],
    ['POST', '/pools/js/code/execute?identifier=deep-1'],
    ['POST', '/pools/js/executions?identifier=deep-1'],
  ])('%s %s: a body nested 100,000 levels deep is a 400 naming the limit', async (method, path) => {
    const body = method === 'POST' ? `{"code":"1","x":${nested(100_000)}}` : `{"properties":${nested(100_000)}}`;
    const r = await send(method, path, body);
    expect(r.status).toBe(400);
    expect((await json(r))['error'].message).toMatch(/nested deeper than \d+ levels/);
  });

  // The MCP endpoint parses its own bodies (the SDK's transport gets them parsed): the same rules.
  const mcpHeaders = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
  it.each([
    [`{"jsonrpc":"2.0","id":1,"method":"initialize","params":${nested(100_000)}}`, /nested deeper than \d+ levels/],
    ['{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"__proto__":{"x":1}}}', /"__proto__"/],
  ])('POST /mcp: %#: a hostile body is a 400 naming why', async (body, why) => {
    const r = await h.request('/mcp?pool=js', { method: 'POST', headers: mcpHeaders, body });
    expect(r.status).toBe(400);
    expect(((await r.json()) as { error: { message: string } }).error.message).toMatch(why);
  });

  it('a body within the limit still works (a realistic PUT)', async () => {
    const r = await send(
      'PATCH',
      '/pools/calc',
      JSON.stringify({ properties: { scaleConfiguration: { readySessionInstances: 1 } } }),
    );
    expect(r.status).toBe(200);
  });

  it.each([
    ['PATCH', '/pools/calc', '{"properties":{"__proto__":{"containerType":"Shell"}}}'],
    ['PUT', '/pools/proto', '{"backend":"quickjs","properties":{"containerType":"NodeLTS","__proto__":{"x":1}}}'],
    ['POST', '/pools/js/code/execute?identifier=proto-1', '{"__proto__":{"code":"1"},"properties":{"code":"2"}}'],
  ])('%s %s: a "__proto__" key is a 400', async (method, path, body) => {
    const r = await send(method, path, body);
    expect(r.status).toBe(400);
    expect((await json(r))['error'].message).toMatch(/"__proto__"/);
    // The pool the PATCH aimed at is untouched: still NodeLTS, in its answer and in its definition.
    const calc = await json(await h.request('/pools/calc'));
    expect(calc['properties'].containerType).toBe('NodeLTS');
  });

  it.each(['constructor', '__proto__', 'toString', 'hasOwnProperty'])('backend "%s" is an unknown backend', async (name) => {
    const r = await send(
      'PUT',
      `/pools/b-${name.replace(/_/g, 'x')}`,
      JSON.stringify({ backend: name, properties: { containerType: 'NodeLTS' } }),
    );
    expect(r.status).toBe(400);
    expect((await json(r))['error'].message).toMatch(new RegExp(`unknown backend "${name}"`));
  });

  it.each(['constructor', '__proto__', 'toString', 'valueOf'])('role "%s" is no role', (name) => {
    expect(parseRole(name)).toBeUndefined();
  });
});

describe("E2B's Connect-RPC messages and the shared parser", () => {
  const request = (body: string, contentType = 'application/json'): IncomingMessage =>
    Object.assign(Readable.from([Buffer.from(body)]), { headers: { 'content-type': contentType } }) as unknown as IncomingMessage;
  const envelope = (text: string): string => {
    const head = Buffer.alloc(5);
    head.writeUInt32BE(Buffer.byteLength(text), 1);
    return Buffer.concat([head, Buffer.from(text)]).toString('latin1');
  };

  it.each([
    ['unary', nested(100_000), /nested deeper than \d+ levels/],
    ['unary', '{"process":{"__proto__":{"cmd":"sh"}}}', /"__proto__"/],
    ['stream', `{"x":${nested(10_000)}}`, /nested deeper than \d+ levels/],
  ] as const)('a %s message that is too deep or carries __proto__ is invalid_argument (%#)', async (kind, text, why) => {
    const body = kind === 'stream' ? envelope(text) : text;
    const req = kind === 'stream' ? Object.assign(Readable.from([Buffer.from(body, 'latin1')]), { headers: {} }) : request(body);
    await expect(readRequestMessage(req as unknown as IncomingMessage, kind, 1 << 24)).rejects.toMatchObject({
      connectCode: 'invalid_argument',
      message: expect.stringMatching(why),
    });
  });

  it('a realistic message parses', async () => {
    await expect(readRequestMessage(request('{"process":{"cmd":"ls","args":["-la"]}}'), 'unary', 1 << 20)).resolves.toEqual({
      process: { cmd: 'ls', args: ['-la'] },
    });
  });

  it('the limit is exact: MAX_JSON_DEPTH levels parse, one more is refused', () => {
    expect(parseUntrustedJsonText(nested(MAX_JSON_DEPTH - 1, '[]'))).toBeTypeOf('object');
    expect(() => parseUntrustedJsonText(nested(MAX_JSON_DEPTH, '[]'))).toThrow(UntrustedJsonError);
    // Brackets inside strings are text, not nesting.
    expect(parseUntrustedJsonText(`{"a":"${'['.repeat(1000)}"}`)).toEqual({ a: '['.repeat(1000) });
  });
});
