/**
 * Backends are loaded lazily by name, through the package's own subpath exports
 * (`sandpool/backends/NAME`), so the CLI starts without loading engines it will not use, and a
 * backend that is not built or cannot run here is reported with its reason instead of crashing.
 */

import { accessSync, constants } from 'node:fs';

import type { Backend } from '../backend.js';
import type { ContainerType } from '../options.js';

export const BACKEND_NAMES = ['quickjs', 'isolated-vm', 'container', 'vm'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

type BackendModule = Record<string, unknown>;
type BackendClass = new (options?: Record<string, unknown>) => Backend;

const modules = new Map<string, Promise<BackendModule>>();

/** Import a backend module; rejects with the reason it is unavailable. */
export function loadBackendModule(name: string): Promise<BackendModule> {
  let loading = modules.get(name);
  if (loading === undefined) {
    // A computed specifier keeps the bundler from inlining backends into the CLI.
    const specifier = `sandpool/backends/${name}`;
    loading = import(specifier) as Promise<BackendModule>;
    modules.set(name, loading);
  }
  return loading;
}

/** The backend class a module exports (`QuickJSBackend`, `ContainerBackend`…). */
function backendClass(mod: BackendModule, name: string): BackendClass {
  const found = Object.entries(mod).find(([key, value]) => /Backend$/.test(key) && typeof value === 'function');
  if (found === undefined) throw new Error(`sandpool/backends/${name} exports no *Backend class`);
  return found[1] as BackendClass;
}

/** Construct a backend by name. */
export async function createBackend(name: string, options?: Record<string, unknown>): Promise<Backend> {
  const Cls = backendClass(await loadBackendModule(name), name);
  return new Cls(options);
}

/** Whether a backend loads and its engine answers, with the reason when not. */
export async function backendUsable(
  name: string,
  containerType: ContainerType,
): Promise<{ ok: boolean; reason: string; backend?: Backend }> {
  let backend: Backend;
  try {
    backend = await createBackend(name);
  } catch (error) {
    return { ok: false, reason: `${name} backend not available: ${(error as Error).message.split('\n')[0]}` };
  }
  if (!backend.capabilities.containerTypes.includes(containerType)) {
    await backend.close().catch(() => {});
    return { ok: false, reason: `${name} backend cannot run ${containerType}` };
  }
  try {
    await backend.prepare?.({
      poolName: `probe-${containerType.toLowerCase()}`,
      ownerId: `probe-${process.pid}`,
      containerType,
      limits: {
        memoryMb: 256,
        cpus: 1,
        executionTimeoutSeconds: 60,
        outputMaxBytes: 1 << 20,
        maxFileSizeBytes: 1 << 27,
        pids: 256,
        diskMb: 1024,
        maxQueuedExecutions: 64,
      },
      network: { egress: 'EgressDisabled', allow: [] },
    });
  } catch (error) {
    await backend.close().catch(() => {});
    return { ok: false, reason: `${name} backend cannot run here: ${(error as Error).message.split('\n')[0]}` };
  }
  return { ok: true, reason: `${name} backend ready`, backend };
}

/**
 * Whether VMs get hardware acceleration here. The vm backend's own probe is used when it exports
 * one (KVM may open fine and still not run guests); `/dev/kvm` alone is not trusted.
 */
export async function hardwareAcceleration(): Promise<{ available: boolean; reason: string }> {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    if (process.platform === 'linux') return { available: false, reason: '/dev/kvm is not usable' };
  }
  let backend: Backend | undefined;
  try {
    backend = await createBackend('vm');
    // The vm backend boots a probe guest per hardware accelerator and falls back to TCG.
    const probe = (backend as unknown as { accelerator?: () => Promise<{ accelerator: string; reason: string }> }).accelerator;
    if (typeof probe !== 'function')
      return { available: false, reason: 'the vm backend offers no acceleration probe; assuming none' };
    const result = await probe.call(backend);
    return { available: result.accelerator !== 'tcg', reason: `${result.accelerator}: ${result.reason}` };
  } catch (error) {
    return { available: false, reason: `vm backend not available: ${(error as Error).message.split('\n')[0]}` };
  } finally {
    await backend?.close().catch(() => {});
  }
}
