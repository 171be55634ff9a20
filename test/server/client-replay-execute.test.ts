/**
 * For every client in §6 of the reference: the exact execute/session requests it sends (URL
 * construction, encoding, body shape, enum case, headers), replayed against the real server with
 * real QuickJS sessions, asserting every field that client reads. The code is JavaScript because
 * the pool is NodeLTS; the wire is the same for Python pools (see client-replay-python.test.ts).
 */

import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { jsPool, json, newIdentifier, startServer, type Harness } from './helpers.js';

let h: Harness;
let ep: string;

beforeAll(async () => {
  h = await startServer({
    pools: [
      jsPool('js', { maxConcurrentSessions: 100 }),
      jsPool('tiny', { readySessionInstances: 0, maxConcurrentSessions: 1 }),
      jsPool('noqueue', { readySessionInstances: 1, limits: { maxQueuedExecutions: 0 } }),
    ],
  });
  ep = `${h.url}/pools/js`;
});
afterAll(async () => {
  await h.close();
});

const bearer = { authorization: `Bearer test-admin-key-0123456789` };
const post = (url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> =>
  fetch(url, {
    method: 'POST',
    headers: { ...bearer, 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });

describe('LangChain Python SessionsPythonREPLTool (Gen 1, 2024-02-02-preview)', () => {
  test('execute: reads properties.result|stdout|stderr; identifier quoted', async () => {
    const id = `lc-${newIdentifier()}|{x}`;
    const url = `${ep}/code/execute?identifier=${encodeURIComponent(id)}&api-version=2024-02-02-preview`;
    const body = {
      properties: { codeInputType: 'inline', executionType: 'synchronous', code: 'console.log("hello world"); 1 + 1' },
    };
    const r = await post(url, body, { 'user-agent': 'langchain-azure-dynamic-sessions/1.0.4 (Language=Python)' });
    expect(r.status).toBe(200);
    const properties = (await json(r))['properties'];
    expect(properties.result).toBe(2);
    expect(properties.stdout).toBe('hello world\n');
    expect(properties.stderr).toBe('');
    // State persists across calls with the same identifier.
    await post(url, { properties: { codeInputType: 'inline', executionType: 'synchronous', code: 'var kept = 41' } });
    const again = (
      await json(await post(url, { properties: { codeInputType: 'inline', executionType: 'synchronous', code: 'kept + 1' } }))
    )['properties'];
    expect(again.result).toBe(42);
  });

  test('close: DELETE session with 2025-10-02-preview answers 204, then the session is gone', async () => {
    const id = `lc-${newIdentifier()}`;
    await post(`${ep}/code/execute?identifier=${id}&api-version=2024-02-02-preview`, {
      properties: { codeInputType: 'inline', executionType: 'synchronous', code: '1' },
    });
    const del = await fetch(`${ep}/session?identifier=${id}&api-version=2025-10-02-preview`, {
      method: 'DELETE',
      headers: bearer,
    });
    expect(del.status).toBe(204);
    const again = await fetch(`${ep}/session?identifier=${id}&api-version=2025-10-02-preview`, {
      method: 'DELETE',
      headers: bearer,
    });
    expect(again.status).toBe(400);
    expect((await json(again))['error'].code).toBe('SessionWithIdentifierNotFound');
  });
});

describe('LangChain.js @langchain/azure-dynamic-sessions (Gen 1)', () => {
  test('execute with encodeURIComponent identifier and a trailing-slash endpoint', async () => {
    const id = `ljs-${newIdentifier()}`;
    const r = await post(`${ep}/code/execute?identifier=${encodeURIComponent(id)}&api-version=2024-02-02-preview`, {
      properties: { codeInputType: 'inline', executionType: 'synchronous', code: 'console.error("warn"); "text"' },
    });
    const p = (await json(r))['properties'];
    expect(p).toMatchObject({ result: 'text', stdout: '', stderr: 'warn\n' });
  });
});

describe('llama-index Python AzureCodeInterpreterToolSpec (Gen 1)', () => {
  test('code with a trailing newline; the whole JSON is returned to the LLM', async () => {
    const id = `li-${newIdentifier()}`;
    const r = await post(
      `${ep}/code/execute?identifier=${encodeURIComponent(id)}&api-version=2024-02-02-preview`,
      {
        properties: { codeInputType: 'inline', executionType: 'synchronous', code: '[1,2,3].map(x => x * 2).length\n' },
      },
      { 'user-agent': 'llamaindex-azure-code-interpreter/0.7.0 (Language=Python)' },
    );
    const body = await json(r);
    expect(body['properties'].status).toBe('Success');
    expect(body['properties'].result).toBe(3);
    expect(typeof body['properties'].executionTimeInMilliseconds).toBe('number');
  });
});

describe('LlamaIndex.TS AzureDynamicSessionTool (Gen 0 python/execute)', () => {
  test('identifier in query and body, pythonCode, flat response', async () => {
    const id = `lts-${newIdentifier()}`;
    const r = await post(`${ep}/python/execute?identifier=${encodeURIComponent(id)}&api-version=2024-02-02-preview`, {
      properties: { identifier: id, codeInputType: 'inline', executionType: 'synchronous', pythonCode: 'console.log(3); 6 * 7' },
    });
    const body = await json(r);
    expect(body).toMatchObject({ status: 'Success', result: 42, stdout: '3\n', stderr: '' });
    expect(body['properties']).toBeUndefined();
  });

  test('older variant: endpoint without trailing slash plus "/code/execute" gives a double slash', async () => {
    const id = `lts-${newIdentifier()}`;
    const r = await post(`${ep}//code/execute?identifier=${id}&api-version=2024-02-02-preview`, {
      properties: { identifier: id, codeInputType: 'inline', executionType: 'synchronous', pythonCode: '1' },
    });
    expect((await json(r))['properties'].result).toBe(1);
  });
});

describe('Semantic Kernel Python SessionsPythonTool (Gen 1)', () => {
  test('raw identifier, timeoutInSeconds 100, all four keys present', async () => {
    const id = `sk-${newIdentifier()}{|}`;
    const r = await post(`${ep}/code/execute?identifier=${id}&api-version=2024-02-02-preview`, {
      properties: { codeInputType: 'inline', executionType: 'synchronous', code: 'undefined', timeoutInSeconds: 100 },
    });
    const p = (await json(r))['properties'];
    for (const key of ['status', 'result', 'stdout', 'stderr']) expect(p).toHaveProperty(key);
    expect(p.status).toBe('Success');
    expect(p.result).toBe('');
  });
});

describe('raw identifiers with "%" (SK, AutoGen do not encode)', () => {
  test('a "%" that is not an escape is taken literally; a valid escape is decoded', async () => {
    const raw = `raw%b1-${newIdentifier().slice(0, 8)}`;
    const r = await json(
      await post(`${ep}/code/execute?identifier=${raw}&api-version=2024-02-02-preview`, { properties: { code: '1' } }),
    );
    expect(r['properties'].status).toBe('Success');
    const listed = await json(await fetch(`${ep}/listSessions`, { headers: bearer }));
    expect(listed['value'].map((s: { identifier: string }) => s.identifier)).toContain(raw);
    const encoded = `enc|${newIdentifier().slice(0, 8)}`;
    await post(`${ep}/code/execute?identifier=${encodeURIComponent(encoded)}`, { properties: { code: '1' } });
    const again = await json(await fetch(`${ep}/session?identifier=${encoded}`, { headers: bearer }));
    expect(again['identifier']).toBe(encoded);
  });
});

describe('Semantic Kernel .NET SessionsPythonPlugin', () => {
  test('current (2024-10-02-preview executions): flat body, Inline/Synchronous, executionResult as a string', async () => {
    const id = `skn-${newIdentifier()}`;
    const r = await post(
      `${ep}/executions?identifier=${id}&api-version=2024-10-02-preview`,
      { codeInputType: 'Inline', executionType: 'Synchronous', timeoutInSeconds: 100, code: '6 * 7' },
      { 'user-agent': 'Semantic-Kernel/1.60.0 (Language=dotnet)' },
    );
    expect(r.status).toBe(200);
    const body = await json(r);
    expect(body['status']).toBe('Succeeded');
    expect(body['result'].executionResult).toBe('42');
    expect(body['result'].stdout).toBe('');
    expect(body['result'].stderr).toBe('');
  });

  test('older releases: python/execute with no identifier in the query, flat GetProperty reads', async () => {
    const id = `sko-${newIdentifier()}`;
    const r = await post(`${ep}/python/execute?api-version=2024-02-02-preview`, {
      properties: {
        identifier: id,
        codeInputType: 'inline',
        executionType: 'synchronous',
        timeoutInSeconds: 100,
        pythonCode: 'throw new Error("boom")',
      },
    });
    const body = await json(r);
    for (const key of ['status', 'result', 'stdout', 'stderr']) expect(body).toHaveProperty(key);
    expect(body['status']).toBe('Failure');
    expect(body['stderr']).toContain('boom');
  });
});

describe('AutoGen ACADynamicSessionsCodeExecutor (Gen 1)', () => {
  test('api-version first, raw identifier; "Success"/"Failure" substrings', async () => {
    const id = newIdentifier();
    const url = `${ep}/code/execute?api-version=2024-02-02-preview&identifier=${id}`;
    const ok = (
      await json(
        await post(url, { properties: { codeInputType: 'inline', executionType: 'synchronous', code: 'console.log("a"); "r"' } }),
      )
    )['properties'];
    expect(ok.status).toContain('Success');
    expect(`${ok.stderr}${ok.stdout}${String(ok.result)}`).toBe('a\nr');
    const bad = (
      await json(await post(url, { properties: { codeInputType: 'inline', executionType: 'synchronous', code: 'nope(' } }))
    )['properties'];
    expect(bad.status).toContain('Failure');
    expect(bad.stderr.length).toBeGreaterThan(0);
  });
});

describe('Azure CLI az containerapp session code-interpreter execute', () => {
  test('wrapped body on executions, through an Azure-shaped endpoint', async () => {
    const id = `az-${newIdentifier()}`;
    const azureEp = `${h.url}/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/sessionPools/js`;
    const r = await post(`${azureEp}/executions?identifier=${id}&api-version=2025-02-02-preview`, {
      properties: { identifier: id, codeInputType: 'inline', executionType: 'synchronous', timeoutInSeconds: 60, code: '"hi"' },
    });
    const body = await json(r);
    expect(body).toMatchObject({ identifier: id, executionType: 'Synchronous', status: 'Succeeded' });
    expect(typeof body['id']).toBe('string');
    expect(body['result']).toMatchObject({ stdout: '', stderr: '', executionResult: 'hi' });
    expect(typeof body['result'].executionTimeInMilliseconds).toBe('number');
  });
});

describe('Gen 2 asynchronous executions', () => {
  test('operation-id header, 202 with Operation-Location, polled to Succeeded', async () => {
    const id = newIdentifier();
    const r = await post(
      `${ep}/executions?identifier=${id}&api-version=2025-10-02-preview`,
      {
        codeInputType: 'Inline',
        executionType: 'Asynchronous',
        code: 'let s = 0; for (let i = 0; i < 1e5; i++) s += i; s',
      },
      { 'operation-id': 'op-123' },
    );
    expect(r.status).toBe(202);
    expect(r.headers.get('operation-id')).toBe('op-123');
    const location = r.headers.get('operation-location')!;
    expect(location).toBe(`${ep}/executions/op-123?api-version=2025-10-02-preview&identifier=${id}`);
    expect(await json(r)).toMatchObject({ id: 'op-123', identifier: id, status: 'Running' });
    let body: Record<string, any> = {};
    for (let i = 0; i < 100; i++) {
      body = await json(await fetch(location, { headers: bearer }));
      if (body['status'] !== 'Running') break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(body).toMatchObject({ id: 'op-123', status: 'Succeeded', executionType: 'Asynchronous' });
    expect(body['result'].executionResult).toBe(4999950000);
    // Another identifier cannot read it: the identifier is the access secret.
    const other = await fetch(`${ep}/executions/op-123?identifier=${newIdentifier()}`, { headers: bearer });
    expect(other.status).toBe(404);
  });
});

describe('session management (third-party .management clients, 2025-02-02-preview)', () => {
  test('getSession, listSessions (value and sessions), stopSession, and unknown identifiers', async () => {
    const id = `mg-${newIdentifier()}`;
    await post(`${ep}/executions?identifier=${id}`, { code: '1' });
    const get = await json(
      await fetch(`${ep}/.management/getSession?identifier=${id}&api-version=2025-02-02-preview`, {
        method: 'POST',
        headers: bearer,
      }),
    );
    expect(get).toMatchObject({ identifier: id });
    for (const key of ['etag', 'expiresAt', 'expireAt', 'createdAt', 'lastAccessedAt']) expect(typeof get[key]).toBe('string');
    const viaGet = await json(await fetch(`${ep}/session?identifier=${id}&api-version=2025-02-02-preview`, { headers: bearer }));
    expect(viaGet['etag']).toBe(get['etag']);
    const list = await json(
      await fetch(`${ep}/.management/listSessions?skip=0&api-version=2025-02-02-preview`, { method: 'POST', headers: bearer }),
    );
    expect(list['value'].map((s: { identifier: string }) => s.identifier)).toContain(id);
    expect(list['sessions']).toEqual(list['value']);
    expect(list['count']).toBe(list['value'].length);
    const list2 = await json(await fetch(`${ep}/listSessions?api-version=2025-02-02-preview`, { headers: bearer }));
    expect(list2['sessions'].length).toBe(list['value'].length);
    const stop = await fetch(`${ep}/.management/stopSession?identifier=${id}&api-version=2025-02-02-preview`, {
      method: 'POST',
      headers: bearer,
    });
    expect(stop.status).toBe(200);
    expect(await stop.text()).toBe(`Session ${id} in session pool js stopped.`);
    const gone = await fetch(`${ep}/.management/getSession?identifier=${id}&api-version=2025-02-02-preview`, {
      method: 'POST',
      headers: bearer,
    });
    expect(gone.status).toBe(400);
    expect(gone.headers.get('x-ms-error-code')).toBe('SessionWithIdentifierNotFound');
    const meta = await json(await fetch(`${ep}/metadata?api-version=2025-02-02-preview`, { headers: bearer }));
    expect(meta['runtimes'][0].name).toBe('node');
  });
});

describe('limits', () => {
  test('maxConcurrentSessions reached: 429 with Retry-After and the Azure envelope', async () => {
    const url = (id: string): string => `${h.url}/pools/tiny/executions?identifier=${id}`;
    expect((await post(url(newIdentifier()), { code: '1' })).status).toBe(200);
    const r = await post(url(newIdentifier()), { code: '1' });
    expect(r.status).toBe(429);
    expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await json(r))['error'].code).toBe('SessionPoolCapacityExceeded');
  });

  test('a full session queue: 429 SessionBusy with Retry-After; the running execution is unharmed', async () => {
    const url = `${h.url}/pools/noqueue/executions?identifier=${newIdentifier()}`;
    const slow = post(url, { code: 'await new Promise((resolve) => setTimeout(resolve, 1500)); "done"' });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const busy = await post(url, { code: '1' });
    expect(busy.status).toBe(429);
    expect(busy.headers.get('retry-after')).not.toBeNull();
    expect((await json(busy))['error'].code).toBe('SessionBusy');
    expect((await json(await slow))['result'].executionResult).toBe('done');
  });

  test('every response carries a request id', async () => {
    const r = await fetch(`${h.url}/healthz`);
    expect(r.headers.get('x-ms-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const e = await fetch(`${h.url}/nowhere`, { headers: bearer });
    expect(e.status).toBe(404);
    expect(e.headers.get('x-ms-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });
});
