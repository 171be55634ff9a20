/**
 * The global host memory budget (src/pool/host-budget.ts) must reserve what a session really gets.
 * A custom container's memory comes from `customContainerTemplate.resources.memory` when given, so
 * that is what the budget must count, or many pools of large custom containers could promise the
 * host more memory than it has.
 */

import { afterAll, describe, expect, it } from 'vitest';

import { ContainerBackend } from '../../backends/container/index.js';
import { SessionPool } from '../../src/index.js';
import { hostMemoryBudget } from '../../src/pool/host-budget.js';
import { buildEchoImage, containersOf, podman, podmanAvailable } from '../container/helpers.js';

const available = podmanAvailable();

describe.skipIf(!available)('host memory budget and custom-container memory', () => {
  let pool: SessionPool | undefined;
  let reservedBySession = 0;

  afterAll(async () => {
    const owner = pool?.ownerId;
    await pool?.close();
    if (owner !== undefined) expect(containersOf(owner)).toEqual([]);
    expect(hostMemoryBudget.reservedMb).toBe(0);
  }, 120_000);

  it('a custom container gets its template memory (2 GiB) from the engine', async () => {
    const before = hostMemoryBudget.reservedMb;
    pool = new SessionPool({
      name: 'sec-budget',
      backend: new ContainerBackend(),
      containerType: 'CustomContainer',
      readySessionInstances: 1,
      maxConcurrentSessions: 1,
      customContainerTemplate: { image: buildEchoImage(), targetPort: 8080, resources: { memory: '2Gi' } },
    });
    await pool.start();
    reservedBySession = hostMemoryBudget.reservedMb - before;
    const [container] = containersOf(pool.ownerId);
    expect(container).toBeDefined();
    expect(Number(podman('inspect', '-f', '{{.HostConfig.Memory}}', container!))).toBe(2048 * 1024 * 1024);
  }, 180_000);

  it('the budget reserves that memory for the session', () => {
    expect(reservedBySession).toBeGreaterThanOrEqual(2048);
  });
});
