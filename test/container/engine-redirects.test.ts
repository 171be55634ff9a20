/**
 * The container backend never follows a redirect from the Engine API (docker-modem follows 5 by
 * default, to the host and port the Location header names, on a request with no 'error' listener).
 * A fake engine on a unix socket answers image calls with 301s; the redirect targets must see no
 * request, the call must fail with a typed error, and the process must see no unhandled error.
 * No container engine is needed.
 */

import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ContainerBackend } from '../../backends/container/index.js';
import { SandpoolError } from '../../src/errors.js';
import { startRedirectingEngine, type RedirectingEngine } from '../helpers/fake-engine.js';
import { trapProcessErrors } from '../helpers/process-errors.js';

describe('Engine API redirects', () => {
  let engine: RedirectingEngine;
  beforeAll(async () => {
    engine = await startRedirectingEngine();
  });
  afterAll(async () => {
    await engine?.close();
  });

  const context = (image: string) => ({
    poolName: 'redirects',
    ownerId: 'redirect-test',
    containerType: 'CustomContainer' as const,
    limits: {} as never,
    network: { egress: 'EgressDisabled' as const, allow: [] },
    customContainer: { image, env: [], targetPort: 8080, probes: [] },
  });

  for (const [label, target] of [
    ['a host:port of our own', () => `${engine.trapUrl}/images/x/json`],
    ['a host that does not resolve', () => 'http://sandpool-redirect-target.invalid:9/images/x/json'],
  ] as const) {
    it(`refuses a redirect to ${label}: no request follows, a typed error, no unhandled 'error' event`, async () => {
      engine.location = target();
      const hitsBefore = engine.trapHits();
      const errors = trapProcessErrors();
      const backend = new ContainerBackend({
        socketPath: engine.socketPath,
        runDir: join(engine.dir, 'run'),
        startPodman: false,
        pullImages: false,
      });
      try {
        const failure = await backend.prepare(context('registry.example/team/app:1.0')).then(
          () => undefined,
          (error: unknown) => error,
        );
        // A followed redirect (or a failed lookup of its target) surfaces after the call returned.
        await new Promise((r) => setTimeout(r, 500));
        expect(engine.trapHits() - hitsBefore).toBe(0);
        errors.assertNone();
        expect(SandpoolError.is(failure), String(failure)).toBe(true);
        expect((failure as Error).message).toMatch(/answered with a redirect, which sandpool never follows/);
      } finally {
        errors.dispose();
        await backend.close();
      }
    });
  }
});
