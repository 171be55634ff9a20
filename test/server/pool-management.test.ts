/** Pool management over HTTP: Azure `properties`, live counts, validation naming every problem, persistence, metrics. */

import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, test } from 'vitest';

import { json, newIdentifier, startServer } from './helpers.js';

let dataDir: string;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'sandpool-pools-'));
});
afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

const definition = {
  backend: 'quickjs',
  properties: {
    containerType: 'NodeLTS',
    scaleConfiguration: { maxConcurrentSessions: 5, readySessionInstances: 2 },
    dynamicPoolConfiguration: { lifecycleConfiguration: { lifecycleType: 'Timed', cooldownPeriodInSeconds: 300 } },
  },
};

async function waitFor(check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error('condition not reached');
}

describe('pool management', () => {
  test('PUT, GET with live counts, PATCH, persistence across restarts, DELETE', async () => {
    const h = await startServer({ dataDir, withDefaultPool: false });
    try {
      const put = await h.request('/pools/calc', {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(definition),
      });
      expect(put.status).toBe(201);
      const created = await json(put);
      expect(created).toMatchObject({ name: 'calc', type: 'Microsoft.App/sessionPools', backend: 'quickjs' });
      expect(created['properties'].poolManagementEndpoint).toBe(`${h.url}/pools/calc`);

      await waitFor(async () => (await json(await h.request('/pools/calc')))['properties'].status.readySessionCount === 2);
      const ep = created['properties'].poolManagementEndpoint as string;
      const id = newIdentifier();
      const run = await h.request(`/pools/calc/executions?identifier=${id}`, {
        method: 'POST',
        body: JSON.stringify({ code: '2 ** 10' }),
      });
      expect((await json(run))['result'].executionResult).toBe(1024);
      await waitFor(async () => {
        const s = (await json(await fetch(ep, { headers: { authorization: 'Bearer test-admin-key-0123456789' } })))['properties']
          .status;
        return s.allocatedSessionCount === 1 && s.readySessionCount === 2 && s.pendingSessionCount === 0;
      });

      const patch = await h.request('/pools/calc', {
        method: 'PATCH',
        body: JSON.stringify({ properties: { scaleConfiguration: { readySessionInstances: 1 } } }),
      });
      expect(patch.status).toBe(200);
      const patched = await json(patch);
      expect(patched['properties'].scaleConfiguration).toEqual({ maxConcurrentSessions: 5, readySessionInstances: 1 });
      // A live update keeps the allocated session.
      const again = await h.request(`/pools/calc/executions?identifier=${id}`, {
        method: 'POST',
        body: JSON.stringify({ code: '1' }),
      });
      expect(again.status).toBe(200);
      expect((await json(await h.request(`/pools/calc/session?identifier=${id}`)))['identifier']).toBe(id);

      // What GET returns can be PUT back as it is (read-only fields are ignored): a replace.
      const resource = await json(await h.request('/pools/calc'));
      const replaced = await h.request('/pools/calc', { method: 'PUT', body: JSON.stringify(resource) });
      expect(replaced.status).toBe(200);
      expect((await json(replaced))['properties'].scaleConfiguration).toEqual(resource['properties'].scaleConfiguration);

      const list = await json(await h.request('/pools'));
      expect(list['value'].map((p: { name: string }) => p.name)).toEqual(['calc']);
      expect(await readdir(join(dataDir, 'pools'))).toEqual(['calc.json']);
      expect(JSON.parse(await readFile(join(dataDir, 'pools', 'calc.json'), 'utf8'))).toMatchObject({
        name: 'calc',
        backend: 'quickjs',
      });
    } finally {
      await h.close();
    }

    const restarted = await startServer({ dataDir, withDefaultPool: false });
    try {
      const back = await json(await restarted.request('/pools/calc'));
      expect(back['properties'].scaleConfiguration).toEqual({ maxConcurrentSessions: 5, readySessionInstances: 1 });
      const del = await restarted.request('/pools/calc', { method: 'DELETE' });
      expect(del.status).toBe(200);
      expect((await restarted.request('/pools/calc')).status).toBe(404);
      expect(await readdir(join(dataDir, 'pools'))).toEqual([]);
      expect((await restarted.request('/pools/calc', { method: 'DELETE' })).status).toBe(204);
    } finally {
      await restarted.close();
    }
  });

  test('an invalid definition gets 400 naming every problem', async () => {
    const h = await startServer({ withDefaultPool: false });
    try {
      const bad = {
        backend: 'quickjs',
        properties: {
          containerType: 'PythonLTS',
          scaleConfiguration: { maxConcurrentSessions: 2, readySessionInstances: 5 },
          dynamicPoolConfiguration: {
            lifecycleConfiguration: { lifecycleType: 'OnContainerExit', cooldownPeriodInSeconds: 300 },
          },
        },
      };
      const r = await h.request('/pools/broken', { method: 'PUT', body: JSON.stringify(bad) });
      expect(r.status).toBe(400);
      const error = (await json(r))['error'];
      const targets = (error.details as { target: string }[]).map((d) => d.target).sort();
      expect(targets).toEqual(['containerType', 'cooldownPeriodInSeconds', 'readySessionInstances']);
      expect(error.message).toContain('readySessionInstances');
      const unknownBackend = await h.request('/pools/x1', {
        method: 'PUT',
        body: JSON.stringify({ backend: 'warp', properties: {} }),
      });
      expect((await json(unknownBackend))['error'].message).toMatch(/unknown backend "warp"; available: quickjs/);
      const broken = await startServer({
        withDefaultPool: false,
        backends: { flaky: () => Promise.reject(new Error('engine socket missing')) },
      });
      try {
        const r2 = await broken.request('/pools/x2', {
          method: 'PUT',
          body: JSON.stringify({ backend: 'flaky', properties: {} }),
        });
        expect(r2.status).toBe(400);
        expect((await json(r2))['error'].message).toBe('backend "flaky" is not available on this server: engine socket missing');
      } finally {
        await broken.close();
      }
      const badName = await h.request('/pools/-bad!', { method: 'PUT', body: JSON.stringify(definition) });
      expect(badName.status).toBe(400);
      expect((await h.request('/pools')).status).toBe(200);
      expect((await json(await h.request('/pools')))['value']).toEqual([]);
    } finally {
      await h.close();
    }
  });

  test('/metrics: pool gauges, latency histograms, no identifier anywhere', async () => {
    const h = await startServer();
    try {
      const id = `metric-${newIdentifier()}`;
      await h.request(`/pools/js/executions?identifier=${id}`, { method: 'POST', body: JSON.stringify({ code: '1' }) });
      const unauth = await fetch(`${h.url}/metrics`);
      expect(unauth.status).toBe(401);
      const text = await (await h.request('/metrics')).text();
      expect(text).toMatch(/sandpool_sessions_allocated\{pool="js",backend="quickjs"\} 1/);
      expect(text).toMatch(/sandpool_sessions_ready\{pool="js",backend="quickjs"\} \d/);
      expect(text).toMatch(/sandpool_allocation_latency_seconds_count\{pool="js",cold="(?:true|false)"\} 1/);
      expect(text).toMatch(/sandpool_execution_duration_seconds_count\{pool="js",status="Succeeded"\} 1/);
      expect(text).toMatch(/sandpool_http_requests_total\{operation="gen2.execute",status="200"\} 1/);
      expect(text).not.toContain(id);
      await h.request(`/pools/js/session?identifier=${id}`, { method: 'DELETE' });
      const after = await (await h.request('/metrics')).text();
      expect(after).toMatch(/sandpool_sessions_destroyed_total\{pool="js",reason="stopped"\} 1/);
    } finally {
      await h.close();
    }
  });
});
