/**
 * The sandpool extension routes for pause, resume, extend, fork and snapshots (docs/SERVER.md), on
 * a server with a pausable fake backend: each is one pool call, bad input is a typed 4xx, a
 * defined pool keeps its paused sessions under the data dir and DELETE removes them.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, test } from 'vitest';

import { PausableFakeBackend } from '../helpers/pausable-fake-backend.js';
import { startServer } from './helpers.js';

const json = async (r: Response) => (await r.json()) as Record<string, unknown>;

const definition = {
  backend: 'fake',
  properties: {
    containerType: 'NodeLTS',
    scaleConfiguration: { maxConcurrentSessions: 5, readySessionInstances: 1 },
    dynamicPoolConfiguration: {
      lifecycleConfiguration: { lifecycleType: 'Timed', cooldownPeriodInSeconds: 300, idleAction: 'pause' },
    },
  },
};

describe('pause, resume, fork and snapshot routes', () => {
  test('pause → resume on use; extend; fork; snapshot → fromSnapshot; list and delete; DELETE pool wipes', async () => {
    const h = await startServer({ withDefaultPool: false, backends: { fake: () => new PausableFakeBackend('interpreter') } });
    try {
      const put = await h.request('/pools/p', { method: 'PUT', body: JSON.stringify(definition) });
      expect(put.status).toBe(201);
      expect(
        ((await json(put))['properties'] as Record<string, any>).dynamicPoolConfiguration.lifecycleConfiguration,
      ).toMatchObject({
        idleAction: 'pause',
      });
      const exec = (id: string, code: string) =>
        h.request(`/pools/p/executions?identifier=${id}`, { method: 'POST', body: JSON.stringify({ code }) });
      await exec('alpha', 'set:x=41');

      const paused = await h.request('/pools/p/session/pause?identifier=alpha', { method: 'POST' });
      expect(paused.status).toBe(200);
      expect(await json(paused)).toMatchObject({ identifier: 'alpha', state: 'Paused', lost: [] });
      expect(readdirSync(join(h.dataDir, 'pool-data', 'p', 'paused'))).toHaveLength(1);
      const listed = await json(await h.request('/pools/p/listSessions'));
      expect((listed['value'] as { identifier: string }[]).map((s) => s.identifier)).toEqual(['alpha']);

      // Any use resumes it.
      expect(((await json(await exec('alpha', 'get:x')))['result'] as Record<string, unknown>).executionResult).toBe('41');
      expect(await json(await h.request('/pools/p/session/resume?identifier=alpha', { method: 'POST' }))).toMatchObject({
        resumed: false,
      });

      const extended = await h.request('/pools/p/session/extend?identifier=alpha', { method: 'POST', body: '{"seconds": 3600}' });
      expect(Date.parse(String((await json(extended))['expiresAt']))).toBeGreaterThan(Date.now() + 3_500_000);
      for (const bad of ['{"seconds": -1}', '{"seconds": "1"}', '{}', '{"seconds": 1, "x": 1}']) {
        const r = await h.request('/pools/p/session/extend?identifier=alpha', { method: 'POST', body: bad });
        expect(r.status).toBe(400);
      }

      const fork = await h.request('/pools/p/session/fork?identifier=alpha', { method: 'POST', body: '{"identifier": "beta"}' });
      expect(fork.status).toBe(201);
      expect(((await json(await exec('beta', 'get:x')))['result'] as Record<string, unknown>).executionResult).toBe('41');
      const taken = await h.request('/pools/p/session/fork?identifier=alpha', { method: 'POST', body: '{"identifier": "beta"}' });
      expect(taken.status).toBe(400);

      const snap = await json(await h.request('/pools/p/session/snapshot?identifier=alpha', { method: 'POST' }));
      const snapshotId = String(snap['snapshotId']);
      const from = await h.request('/pools/p/session/fromSnapshot?identifier=gamma', {
        method: 'POST',
        body: JSON.stringify({ snapshotId }),
      });
      expect(from.status).toBe(201);
      expect(((await json(await exec('gamma', 'get:x')))['result'] as Record<string, unknown>).executionResult).toBe('41');
      expect(
        ((await json(await h.request('/pools/p/snapshots')))['value'] as { snapshotId: string }[]).map((s) => s.snapshotId),
      ).toEqual([snapshotId]);
      expect((await h.request(`/pools/p/snapshots/${snapshotId}`, { method: 'DELETE' })).status).toBe(204);
      expect((await h.request(`/pools/p/snapshots/${snapshotId}`, { method: 'DELETE' })).status).toBe(404);

      expect((await h.request('/pools/p/session/pause?identifier=nobody', { method: 'POST' })).status).toBe(400);
      await h.request('/pools/p/session/pause?identifier=alpha', { method: 'POST' });
      expect((await h.request('/pools/p', { method: 'DELETE' })).status).toBeLessThan(300);
      expect(existsSync(join(h.dataDir, 'pool-data', 'p'))).toBe(false);
    } finally {
      await h.close();
    }
  });

  test('a pool on a backend that cannot pause answers 400 SessionRequestNotSupported', async () => {
    const h = await startServer();
    try {
      await h.request('/pools/js/executions?identifier=plain-1', { method: 'POST', body: JSON.stringify({ code: '1' }) });
      const r = await h.request('/pools/js/session/pause?identifier=plain-1', { method: 'POST' });
      expect(r.status).toBe(400);
      expect(JSON.stringify(await r.json())).toMatch(/cannot pause/);
    } finally {
      await h.close();
    }
  });
});
