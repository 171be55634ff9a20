/**
 * Custom-container sessions against each real engine (Podman, and setup's Docker engine): readiness (port or Startup probe), HTTP
 * forwarding with streaming both ways, server-sent events, a WebSocket echo over connect(),
 * OnContainerExit reporting, and a container that crashes before it is Ready.
 */

import { spawnSync } from 'node:child_process';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';

import { ContainerBackend } from '../../backends/container/index.js';
import type { SessionExit } from '../../src/backend.js';
import { ErrorCode, SandpoolError } from '../../src/errors.js';
import {
  buildEchoImage,
  containerEngines,
  containersOf,
  echoTemplate,
  LIMITS,
  newOwnerId,
  NO_EGRESS,
  noExit,
  spec,
} from './helpers.js';

for (const engine of containerEngines()) {
  describe(`container backend on ${engine.name}: custom containers`, () => {
    const owner = newOwnerId();
    const backend = new ContainerBackend(engine.backendOptions);
    const custom = (template = echoTemplate()) => spec(owner, { containerType: 'CustomContainer', customContainer: template });

    beforeAll(async () => {
      buildEchoImage(undefined, engine);
      await backend.prepare({
        poolName: 'ctest',
        ownerId: owner,
        containerType: 'CustomContainer',
        limits: LIMITS,
        network: NO_EGRESS,
        customContainer: echoTemplate(),
      });
    });

    afterAll(async () => {
      await backend.close();
      expect(containersOf(owner, engine)).toEqual([]);
      // No port forwarder (socat) of this process survives close().
      const forwarders = spawnSync('pgrep', ['-f', `UNIX-LISTEN:/run/sandpool/container/sessions/${process.pid}\\.`], {
        encoding: 'utf8',
      });
      expect(forwarders.stdout.trim()).toBe('');
    });

    it('is Ready when the port listens, forwards requests and passes env (secrets) through', async () => {
      const session = await backend.create(custom(echoTemplate({ env: [{ name: 'GREETING', value: 's3cr3t-value' }] })), {
        onExit: noExit,
      });
      try {
        const hello = await backend.fetch(session, new Request('http://session.local/hello'));
        expect(hello.status).toBe(200);
        expect(await hello.text()).toMatch(/^hello from \S+ s3cr3t-value$/);
        const missing = await backend.fetch(session, new Request('http://session.local/nope'));
        expect(missing.status).toBe(404);
        await missing.text();
      } finally {
        await backend.destroy(session, { reason: 'stopped' });
      }
      // Destroy is idempotent and the session is gone afterwards.
      await backend.destroy(session, { reason: 'stopped' });
      await expect(backend.fetch(session, new Request('http://x/hello'))).rejects.toMatchObject({
        code: ErrorCode.SESSION_NOT_FOUND,
      });
    });

    it('streams request and response bodies both ways (echo answers before the upload ends)', async () => {
      const session = await backend.create(custom(), { onExit: noExit });
      try {
        let push!: (chunk: string | null) => void;
        const body = new ReadableStream<Uint8Array>({
          start(controller) {
            push = (chunk) => (chunk === null ? controller.close() : controller.enqueue(new TextEncoder().encode(chunk)));
          },
        });
        push('first;');
        const response = await backend.fetch(
          session,
          new Request('http://session.local/echo', { method: 'POST', body, duplex: 'half' } as RequestInit & { duplex: 'half' }),
        );
        const reader = response.body!.getReader();
        const decoder = new TextDecoder();
        // The first chunk comes back while the request body is still open: streaming, not buffering.
        const first = await reader.read();
        expect(decoder.decode(first.value)).toBe('first;');
        push('second');
        push(null);
        let rest = '';
        for (let r = await reader.read(); !r.done; r = await reader.read()) rest += decoder.decode(r.value);
        expect(rest).toBe('second');
      } finally {
        await backend.destroy(session, { reason: 'stopped' });
      }
    });

    it('delivers server-sent events as they are sent', async () => {
      const session = await backend.create(custom(), { onExit: noExit });
      try {
        const response = await backend.fetch(session, new Request('http://session.local/sse?n=4'));
        expect(response.headers.get('content-type')).toBe('text/event-stream');
        const reader = response.body!.getReader();
        const arrivals: number[] = [];
        let text = '';
        for (let r = await reader.read(); !r.done; r = await reader.read()) {
          arrivals.push(Date.now());
          text += new TextDecoder().decode(r.value);
        }
        expect(text).toBe('data: event 0\n\ndata: event 1\n\ndata: event 2\n\ndata: event 3\n\n');
        // Events are 50 ms apart at the source; they must not arrive as one buffered lump.
        expect(arrivals.length).toBeGreaterThanOrEqual(3);
        expect(arrivals.at(-1)! - arrivals[0]!).toBeGreaterThanOrEqual(80);
      } finally {
        await backend.destroy(session, { reason: 'stopped' });
      }
    });

    it('carries a WebSocket upgrade over connect()', async () => {
      const session = await backend.create(custom(), { onExit: noExit });
      try {
        const stream = await backend.connect(session);
        const ws = new WebSocket('ws://session.local/ws', { createConnection: () => stream as never });
        const replies: string[] = [];
        await new Promise<void>((resolve, reject) => {
          ws.on('open', () => {
            ws.send('ping 1');
            ws.send('x'.repeat(300));
          });
          ws.on('message', (data) => {
            replies.push(String(data));
            if (replies.length === 2) resolve();
          });
          ws.on('error', reject);
        });
        expect(replies).toEqual(['echo: ping 1', `echo: ${'x'.repeat(300)}`]);
        ws.close();
        stream.destroy();
      } finally {
        await backend.destroy(session, { reason: 'stopped' });
      }
    });

    it('waits for a Startup probe (httpGet) when the server starts late', async () => {
      const template = echoTemplate({
        env: [{ name: 'LISTEN_DELAY_MS', value: '700' }],
        probes: [
          {
            type: 'Startup',
            httpGet: { path: '/healthz', port: 8080 },
            initialDelaySeconds: 0,
            periodSeconds: 0.1,
            timeoutSeconds: 1,
            failureThreshold: 100,
          },
        ],
      });
      const started = Date.now();
      const session = await backend.create(custom(template), { onExit: noExit });
      try {
        expect(Date.now() - started).toBeGreaterThanOrEqual(700);
        const response = await backend.fetch(session, new Request('http://session.local/healthz'));
        expect(await response.text()).toBe('ok');
      } finally {
        await backend.destroy(session, { reason: 'stopped' });
      }
    });

    it('reports the container exit through onExit (OnContainerExit)', async () => {
      let exit: SessionExit | undefined;
      const exited = new Promise<void>((resolve) => {
        void backend
          .create(custom(), {
            onExit: (e) => {
              exit = e;
              resolve();
            },
          })
          .then(async (session) => {
            await (await backend.fetch(session, new Request('http://session.local/exit?code=0'))).text();
            await exited;
            await backend.destroy(session, { reason: 'exited' });
          });
      });
      await exited;
      expect(exit).toMatchObject({ reason: 'exited', exitCode: 0 });
    });

    it('rejects create with a clear BackendError when the container dies before Ready', async () => {
      const template = echoTemplate({
        env: [
          { name: 'CRASH_AT_START', value: '1' },
          { name: 'API_KEY', value: 'never-in-errors' },
        ],
      });
      const error = await backend.create(custom(template), { onExit: noExit }).catch((e: unknown) => e);
      expect(SandpoolError.is(error)).toBe(true);
      const e = error as SandpoolError;
      expect(e.code).toBe(ErrorCode.BACKEND_FAILED);
      expect(e.message).toMatch(/exited with code 3/);
      expect(e.message).toMatch(/crashing on purpose/);
      expect(e.message).not.toContain('never-in-errors');
      expect(containersOf(owner, engine)).toEqual([]);
    });

    it('applies the template resources and the hardening to the container', async () => {
      const session = await backend.create(custom(echoTemplate({ memoryMb: 192, cpu: 0.5 })), { onExit: noExit });
      try {
        const host = JSON.parse(engine.cli('inspect', '-f', '{{json .HostConfig}}', session.etag!)) as Record<string, unknown>;
        expect(host.Memory).toBe(192 * 1024 * 1024);
        expect(host.MemorySwap).toBe(192 * 1024 * 1024);
        expect(host.NanoCpus).toBe(5e8);
        expect(host.PidsLimit).toBe(LIMITS.pids);
        expect(host.NetworkMode).toBe('none');
        expect(host.SecurityOpt).toContain('no-new-privileges');
        // Every capability dropped, as the kernel sees it: the bounding set of the container's pid 1 is empty.
        expect(engine.cli('exec', session.etag!, 'grep', 'CapBnd', '/proc/1/status')).toBe('CapBnd:\t0000000000000000');
        const labels = JSON.parse(engine.cli('inspect', '-f', '{{json .Config.Labels}}', session.etag!)) as Record<
          string,
          string
        >;
        expect(labels).toMatchObject({
          'sandpool.owner': owner,
          'sandpool.pool': 'ctest',
          'sandpool.owner-pid': String(process.pid),
        });
      } finally {
        await backend.destroy(session, { reason: 'stopped' });
      }
    });

    it('close() during a create leaves no container behind', async () => {
      const other = new ContainerBackend(engine.backendOptions);
      const creating = other.create(custom(), { onExit: noExit });
      await new Promise((r) => setTimeout(r, 150));
      await other.close();
      await expect(creating).rejects.toMatchObject({ code: ErrorCode.BACKEND_FAILED });
      expect(containersOf(owner, engine)).toEqual([]);
    });

    it('rejects a port that never listens once the create timeout passes', async () => {
      const slow = new ContainerBackend({ ...engine.backendOptions, createTimeoutMs: 1500 });
      try {
        const error = await slow.create(custom(echoTemplate({ targetPort: 9999 })), { onExit: noExit }).catch((e: unknown) => e);
        expect(error).toMatchObject({ code: ErrorCode.BACKEND_FAILED });
        expect((error as Error).message).toMatch(/did not listen on port 9999/);
      } finally {
        await slow.close();
      }
    });
  });
}
