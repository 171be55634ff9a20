/**
 * The pools `sandpool serve` offers out of the box: `python` (PythonLTS) on the strongest backend
 * that is also fast here — vm with hardware acceleration, else container, else vm under TCG —
 * `javascript` (NodeLTS) on an isolate backend, and `shell`. Each choice is logged with its reason,
 * and each step as it starts (probing a backend can take minutes on a fresh machine: the VM
 * backend builds its warm snapshot in prepare()).
 */

import { join } from 'node:path';

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

/** Told about each built-in pool as soon as its fate is known, so the server can serve it at once. */
export interface BuiltinPoolSink {
  /** The pool's backend is about to be probed. */
  probing(pool: string): void;
  /** The pool is made (not started). */
  chosen(pool: SessionPool): void;
  /** No backend can run it here. */
  unavailable(pool: string): void;
}

async function firstUsable(choice: Choice, log: Logger, dataDir: string | undefined): Promise<SessionPool | undefined> {
  const rejected: string[] = [];
  for (const name of choice.candidates) {
    log({ level: 'info', msg: `built-in pool "${choice.pool}": trying the ${name} backend`, pool: choice.pool, backend: name });
    const started = Date.now();
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
      // Paused sessions survive a restart of the server (the pool adopts them again).
      ...(dataDir === undefined ? {} : { dataDirectory: join(dataDir, 'builtin-pools', choice.pool) }),
    });
    log({
      level: 'info',
      msg: `built-in pool "${choice.pool}" uses the ${name} backend`,
      pool: choice.pool,
      backend: name,
      probeMs: Date.now() - started,
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

/** The built-in pools wanted, in the order they are set up. */
export const BUILTIN_POOL_NAMES = ['python', 'javascript', 'shell'] as const;

/** Build the built-in pools that can run on this host (not started), telling `sink` as it goes. */
export async function builtinPools(
  log: Logger,
  only?: ReadonlySet<string>,
  sink?: BuiltinPoolSink,
  dataDir?: string,
): Promise<SessionPool[]> {
  const wanted = BUILTIN_POOL_NAMES.filter((name) => only === undefined || only.has(name));
  for (const name of wanted) sink?.probing(name);
  // The probe boots a guest (seconds); skip it when no VM-capable pool is wanted.
  const needsOs = wanted.includes('python') || wanted.includes('shell');
  if (needsOs) log({ level: 'info', msg: 'probing hardware virtualisation for VM sessions (KVM)' });
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
    const pool = await firstUsable(choice, log, dataDir);
    if (pool === undefined) {
      sink?.unavailable(choice.pool);
      continue;
    }
    pools.push(pool);
    sink?.chosen(pool);
  }
  return pools;
}
