/**
 * The pools `sandpool serve` offers out of the box: `python` (PythonLTS) on the strongest backend
 * that is also fast here — vm with hardware acceleration, else container, else vm under TCG —
 * `javascript` (NodeLTS) on an isolate backend, and `shell`. Each choice is logged with its reason.
 */

import type { Logger } from '../server/logging.js';
import { SessionPool } from '../session-pool.js';
import type { ContainerType } from '../options.js';
import { backendUsable, hardwareAcceleration } from './backend-loader.js';

interface Choice {
  readonly pool: string;
  readonly containerType: ContainerType;
  readonly candidates: readonly string[];
  readonly why: string;
  readonly ready: (backend: string) => number;
}

async function firstUsable(choice: Choice, log: Logger): Promise<SessionPool | undefined> {
  const rejected: string[] = [];
  for (const name of choice.candidates) {
    const probe = await backendUsable(name, choice.containerType);
    if (!probe.ok || probe.backend === undefined) {
      rejected.push(probe.reason);
      continue;
    }
    const pool = new SessionPool({
      name: choice.pool,
      backend: probe.backend,
      containerType: choice.containerType,
      readySessionInstances: choice.ready(name),
      maxConcurrentSessions: 20,
    });
    log({
      level: 'info',
      msg: `built-in pool "${choice.pool}" uses the ${name} backend`,
      pool: choice.pool,
      backend: name,
      why: choice.why,
      ...(rejected.length > 0 ? { skipped: rejected } : {}),
    });
    return pool;
  }
  log({
    level: 'warn',
    msg: `built-in pool "${choice.pool}" is not served: no backend can run ${choice.containerType} here`,
    pool: choice.pool,
    reasons: rejected,
  });
  return undefined;
}

/** Build the built-in pools that can run on this host (not started). */
export async function builtinPools(log: Logger, only?: ReadonlySet<string>): Promise<SessionPool[]> {
  // The probe boots a guest (seconds); skip it when no VM-capable pool is wanted.
  const needsOs = only === undefined || only.has('python') || only.has('shell');
  const accel = needsOs ? await hardwareAcceleration() : { available: false, reason: 'not probed' };
  const vmFirst = accel.available;
  const pythonWhy = vmFirst
    ? `hardware virtualisation works (${accel.reason}): microVMs are the strongest isolation and fast here`
    : `no working hardware virtualisation (${accel.reason}): containers start in ~0.1 s, VMs under TCG take ~20 s`;
  const choices: Choice[] = [
    {
      pool: 'python',
      containerType: 'PythonLTS',
      candidates: vmFirst ? ['vm', 'container'] : ['container', 'vm'],
      why: pythonWhy,
      ready: (b) => (b === 'vm' && !vmFirst ? 1 : 2),
    },
    {
      pool: 'javascript',
      containerType: 'NodeLTS',
      candidates: ['isolated-vm', 'quickjs'],
      why: 'isolates start in well under a millisecond; isolated-vm runs real V8, QuickJS needs no native addon',
      ready: () => 2,
    },
    {
      pool: 'shell',
      containerType: 'Shell',
      candidates: vmFirst ? ['vm', 'container'] : ['container', 'vm'],
      why: pythonWhy,
      ready: (b) => (b === 'vm' && !vmFirst ? 1 : 2),
    },
  ];
  const pools: SessionPool[] = [];
  for (const choice of choices) {
    if (only !== undefined && !only.has(choice.pool)) continue;
    const pool = await firstUsable(choice, log);
    if (pool !== undefined) pools.push(pool);
  }
  return pools;
}
