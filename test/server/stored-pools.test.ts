/**
 * One stored pool that cannot be loaded never stops the server or the other pools: it is marked
 * Failed and reported (GET /pools, GET /pools/NAME, the logs, 503 on its data plane) until a PUT
 * replaces it or a DELETE removes it. Among the broken definitions is the one an attack review
 * used to crash the server at every start: a CustomContainer pool whose engine answers with a
 * redirect. The process must see no uncaughtException or unhandledRejection throughout, including
 * a restart on the same data directory.
 */

import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ContainerBackend } from '../../backends/container/index.js';
import { QuickJSBackend } from '../../backends/quickjs/index.js';
import { startRedirectingEngine, type RedirectingEngine } from '../helpers/fake-engine.js';
import { trapProcessErrors, type ProcessErrorTrap } from '../helpers/process-errors.js';
import { json, startServer, type Harness } from './helpers.js';

const custom = (image: string) => ({
  containerType: 'CustomContainer',
  customContainerTemplate: { containers: [{ name: 'main', image }], ingress: { targetPort: 8080 } },
});

describe('stored pools that fail to load', () => {
  let engine: RedirectingEngine;
  let dataDir: string;
  let errors: ProcessErrorTrap;
  let h: Harness | undefined;

  const start = async () =>
    await startServer({
      dataDir,
      withDefaultPool: false,
      backends: {
        quickjs: () => new QuickJSBackend(),
        container: () =>
          new ContainerBackend({
            socketPath: engine.socketPath,
            runDir: join(engine.dir, 'run'),
            startPodman: false,
            pullImages: false,
          }),
      },
    });

  const store = async (file: string, content: unknown) =>
    await writeFile(join(dataDir, 'pools', file), typeof content === 'string' ? content : JSON.stringify(content));

  beforeAll(async () => {
    errors = trapProcessErrors();
    engine = await startRedirectingEngine();
    engine.location = 'http://sandpool-redirect-target.invalid:9/images/x/json';
    dataDir = await mkdtemp(join(tmpdir(), 'sandpool-stored-pools-'));
    await mkdir(join(dataDir, 'pools'), { recursive: true });
    await store('good.json', { name: 'good', backend: 'quickjs', properties: { containerType: 'NodeLTS' } });
    await store('redirect.json', { name: 'redirect', backend: 'container', properties: custom('registry.example/app:1') });
    await store('badimage.json', { name: 'badimage', backend: 'container', properties: custom('localhost/../../evil:80/x') });
    await store('notjson.json', '{"name": "notjson",');
    await store('wrongname.json', { name: 'other', backend: 'quickjs', properties: {} });
    await store('nobackend.json', { name: 'nobackend', backend: 'nope', properties: {} });
    await store('badoptions.json', {
      name: 'badoptions',
      backend: 'quickjs',
      properties: { containerType: 'NodeLTS', scaleConfiguration: { maxConcurrentSessions: -1 } },
    });
    h = await start();
  }, 60_000);

  afterAll(async () => {
    await h?.close();
    await engine?.close();
    await rm(dataDir, { recursive: true, force: true });
    errors?.dispose();
  });

  const poolsByName = async () => {
    const list = await json(await h!.request('/pools'));
    return Object.fromEntries((list['value'] as Record<string, any>[]).map((p) => [p['name'], p]));
  };

  it('reports each broken definition as Failed with its reason; the good pool serves', async () => {
    const pools = await poolsByName();
    expect(Object.keys(pools).sort()).toEqual(
      ['badimage', 'badoptions', 'good', 'nobackend', 'notjson', 'redirect', 'wrongname'].sort(),
    );
    const failure = (name: string) => {
      expect(pools[name].properties.provisioningState, name).toBe('Failed');
      return String(pools[name].properties.provisioningError);
    };
    expect(failure('badimage')).toMatch(/image reference: the registry host "\.\." |not a valid image reference/);
    expect(failure('notjson')).toMatch(/JSON/);
    expect(failure('wrongname')).toMatch(/names pool "other"/);
    expect(failure('nobackend')).toMatch(/unknown backend "nope"/);
    expect(failure('badoptions')).toMatch(/maxConcurrentSessions/);
    // Loaded, but its engine redirects: the pool is built and its start fails with a typed reason.
    await expect
      .poll(async () => (await poolsByName())['redirect'].properties.provisioningError ?? '', { timeout: 20_000 })
      .toMatch(/redirect, which sandpool never follows/);
    expect(engine.trapHits()).toBe(0);

    const run = await h!.request('/pools/good/code/execute?api-version=2024-02-02-preview&identifier=stored-1', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ properties: { codeInputType: 'inline', executionType: 'synchronous', code: '6 * 7' } }),
    });
    expect(run.status).toBe(200);
    expect((await json(run))['properties'].result).toBe(42);

    const broken = await h!.request('/pools/badimage/code/execute?identifier=stored-1', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"code":"1"}',
    });
    expect(broken.status).toBe(503);
    expect((await json(broken))['error'].message).toMatch(/failed to load/);
    expect((await json(await h!.request('/pools/notjson')))['properties'].provisioningState).toBe('Failed');

    const logged = h!.logs.filter((r) => r['msg'] === 'could not restore a persisted pool').map((r) => r['pool']);
    expect(logged.sort()).toEqual(['badimage', 'badoptions', 'nobackend', 'notjson', 'wrongname'].sort());
    errors.assertNone();
    errors = trapProcessErrors();
  });

  it('a failed definition never echoes stored properties (they may hold secret values)', async () => {
    await store('secretive.json', {
      name: 'secretive',
      backend: 'quickjs',
      properties: { secrets: [{ name: 's', value: 'TOP-SECRET-VALUE-1234' }], containerType: 'NoSuchType' },
    });
    await h!.close();
    h = await start();
    const text = await (await h.request('/pools')).text();
    expect(text).toContain('"secretive"');
    expect(text).not.toContain('TOP-SECRET-VALUE-1234');
    expect(JSON.stringify(h.logs)).not.toContain('TOP-SECRET-VALUE-1234');
  });

  it('survives a restart on the same data directory, and PUT or DELETE clear a failed pool', async () => {
    await h!.close();
    h = await start();
    expect((await poolsByName())['badimage'].properties.provisioningState).toBe('Failed');

    // A PUT with a bad image is refused before anything is stored, naming the problem.
    const bad = await h.request('/pools/another', {
      method: 'PUT',
      body: JSON.stringify({ backend: 'container', properties: custom('a/../b') }),
    });
    expect(bad.status).toBe(400);
    expect((await json(bad))['error'].message).toMatch(/customContainerTemplate\.image: not a valid image reference/);
    expect(existsSync(join(dataDir, 'pools', 'another.json'))).toBe(false);

    expect((await h.request('/pools/badimage', { method: 'DELETE' })).status).toBe(200);
    expect(existsSync(join(dataDir, 'pools', 'badimage.json'))).toBe(false);
    const put = await h.request('/pools/notjson', {
      method: 'PUT',
      body: JSON.stringify({ backend: 'quickjs', properties: { containerType: 'NodeLTS' } }),
    });
    expect(put.status).toBe(201);
    const pools = await poolsByName();
    expect(pools['badimage']).toBeUndefined();
    expect(pools['notjson'].properties.provisioningState).not.toBe('Failed');
    errors.assertNone();
  }, 60_000);
});
