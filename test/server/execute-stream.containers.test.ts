/**
 * sandpool's HTTP extensions for agents, on real container sessions behind the real server:
 * `POST code/execute/stream` (server-sent events while the code runs; a disconnect interrupts it)
 * and `env` on the session-creating execute request (bound when the session is claimed, absent from
 * a later session, never in a log line or an answer).
 */

import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { ContainerBackend } from '../../backends/container/index.js';
import { SessionPool } from '../../src/index.js';
import { ADMIN_KEY, containerBackendAvailable, json, newIdentifier, startServer, type Harness } from './helpers.js';

const available = await containerBackendAvailable();
const bearer = { authorization: `Bearer ${ADMIN_KEY}` };
let h: Harness;
let pool: SessionPool;
const events: unknown[] = [];

interface SseEvent {
  readonly event: string;
  readonly data: Record<string, any>;
  /** performance.now() when the event was complete. */
  readonly at: number;
}

/** POST to the stream route and read events as they arrive; `stopAfter` aborts the request early. */
async function stream(
  identifier: string,
  body: Record<string, unknown>,
  stopAfter?: (event: SseEvent) => boolean,
): Promise<{ status: number; contentType: string | null; events: SseEvent[]; sentAt: number }> {
  const controller = new AbortController();
  const sentAt = performance.now();
  const response = await fetch(`${h.url}/pools/py/code/execute/stream?identifier=${encodeURIComponent(identifier)}`, {
    method: 'POST',
    headers: { ...bearer, 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: controller.signal,
  });
  const seen: SseEvent[] = [];
  const decoder = new TextDecoder();
  let buffer = '';
  try {
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const name = /^event: (.+)$/m.exec(block)?.[1];
        const data = /^data: (.+)$/m.exec(block)?.[1];
        if (name === undefined || data === undefined) continue; // keep-alive comment
        const event = { event: name, data: JSON.parse(data) as Record<string, any>, at: performance.now() };
        seen.push(event);
        if (stopAfter?.(event)) {
          controller.abort();
          return { status: response.status, contentType: response.headers.get('content-type'), events: seen, sentAt };
        }
      }
    }
  } catch (error) {
    if (!controller.signal.aborted) throw error;
  }
  return { status: response.status, contentType: response.headers.get('content-type'), events: seen, sentAt };
}

async function execute(identifier: string, code: string, extra: Record<string, unknown> = {}): Promise<Record<string, any>> {
  const response = await fetch(`${h.url}/pools/py/code/execute?identifier=${encodeURIComponent(identifier)}`, {
    method: 'POST',
    headers: { ...bearer, 'content-type': 'application/json' },
    body: JSON.stringify({ properties: { codeInputType: 'inline', executionType: 'synchronous', code }, ...extra }),
  });
  expect(response.status).toBe(200);
  return (await json(response))['properties'];
}

describe.skipIf(!available)('execute stream and env over HTTP (containers)', () => {
  beforeAll(async () => {
    pool = new SessionPool({
      name: 'py',
      backend: new ContainerBackend(),
      containerType: 'PythonLTS',
      readySessionInstances: 2,
      maxConcurrentSessions: 8,
      limits: { memoryMb: 512 },
    });
    for (const name of ['sessionAllocated', 'executionStarted', 'executionFinished', 'sessionDestroyed', 'error'] as const) {
      pool.on(name, (payload: unknown) => events.push(payload));
    }
    h = await startServer({ withDefaultPool: false, pools: [pool] });
  }, 180_000);
  afterAll(async () => {
    await h?.close();
  }, 120_000);

  test('delivers the first stdout event long before the execution ends', async () => {
    const code = 'import time\nfor i in range(3): print(i, flush=True); time.sleep(1)';
    const {
      status,
      contentType,
      events: got,
      sentAt,
    } = await stream(newIdentifier(), {
      properties: { codeInputType: 'inline', executionType: 'synchronous', code },
    });
    expect(status).toBe(200);
    expect(contentType).toMatch(/^text\/event-stream/);
    const stdout = got.filter((e) => e.event === 'stdout');
    expect(stdout.map((e) => e.data['text']).join('')).toBe('0\n1\n2\n');
    const end = got.at(-1)!;
    expect(end.event).toBe('end');
    expect(end.data).toMatchObject({ status: 'Succeeded', stdout: '0\n1\n2\n', stderr: '', sessionState: 'kept' });
    const first = stdout[0]!;
    const lead = end.at - first.at;
    // The code sleeps 3 s after its first line: that line must not wait for the end.
    console.log(
      `[measure] SSE first stdout after ${Math.round(first.at - sentAt)} ms, end after ${Math.round(end.at - sentAt)} ms (first chunk ${Math.round(lead)} ms before the end)`,
    );
    expect(lead).toBeGreaterThan(2500);
  }, 60_000);

  test('sends result and display events, and an error event when the execution cannot run', async () => {
    const id = newIdentifier();
    const code = 'import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()\n6 * 7';
    const { events: got } = await stream(id, { code });
    expect(got.map((e) => e.event)).toEqual(['display', 'result', 'end']);
    expect(got[0]!.data['image']).toMatchObject({ type: 'image', format: 'png' });
    expect(got[1]!.data).toEqual({ result: 42 });
    const shellOnly = await stream(id, { code: '1', shellCommand: 'ls' });
    expect(shellOnly.status).toBe(400);
  }, 60_000);

  test('a client that disconnects interrupts the execution', async () => {
    const id = newIdentifier();
    const code = 'import time\nn = 0\nwhile True:\n    n += 1\n    print(n, flush=True)\n    time.sleep(0.1)';
    const { events: got } = await stream(id, { code }, (e) => e.event === 'stdout');
    expect(got[0]!.event).toBe('stdout');
    // The loop was interrupted: the session answers at once and `n` no longer grows.
    const started = performance.now();
    const first = await execute(id, 'n');
    expect(performance.now() - started).toBeLessThan(5000);
    await new Promise((r) => setTimeout(r, 600));
    const second = await execute(id, 'n');
    expect(typeof first['result']).toBe('number');
    expect(second['result']).toBe(first['result']);
  }, 60_000);

  test('binds env from the session-creating request, for Python, Node and shell, and only for that session', async () => {
    const secret = `sk-${newIdentifier()}`;
    const id = newIdentifier();
    const first = await execute(id, 'import os\nos.environ["API_TOKEN"]', { env: { API_TOKEN: secret } });
    expect(first['result']).toBe(secret);
    // The binding belongs to the claim: a later request for the same session does not change it.
    const again = await execute(id, 'import os\nos.environ["API_TOKEN"]', { env: { API_TOKEN: 'other' } });
    expect(again['result']).toBe(secret);
    const { events: got } = await stream(id, {
      code: 'import subprocess\nprint(subprocess.run(["node", "-e", "process.stdout.write(process.env.API_TOKEN)"], capture_output=True, text=True).stdout)',
    });
    expect(got.find((e) => e.event === 'end')!.data['stdout']).toBe(`${secret}\n`);
    const other = await execute(newIdentifier(), 'import os\nos.environ.get("API_TOKEN", "absent")');
    expect(other['result']).toBe('absent');
    const bad = await fetch(`${h.url}/pools/py/code/execute?identifier=${newIdentifier()}`, {
      method: 'POST',
      headers: { ...bearer, 'content-type': 'application/json' },
      body: JSON.stringify({ code: '1', env: { 'NOT-A-NAME': secret } }),
    });
    expect(bad.status).toBe(400);
    expect(await bad.text()).not.toContain(secret);
    // Never in a log record or a pool event.
    expect(JSON.stringify(h.logs)).not.toContain(secret);
    expect(JSON.stringify(events)).not.toContain(secret);
  }, 90_000);
});
