/**
 * When is a custom container Ready? When its Startup probe passes, or — without one — as soon as
 * something listens on the target port. Liveness probes are watched afterwards.
 */

import type { CustomContainerTemplate } from '../../src/types.js';
import { AbortedError, BackendError } from '../../src/errors.js';
import { httpProbe } from './http-forward.js';
import { isListening } from './port-forwarder.js';

type Probe = CustomContainerTemplate['probes'][number];

export interface ProbeTarget {
  /** Pid of the container's first process (its network namespace). */
  readonly pid: number;
  /** Forwarder socket reaching `port` inside the container (started on demand). */
  socketFor(port: number): Promise<string>;
}

/** Sleep that an abort ends early; the listener is removed either way (long-lived signals). */
const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });

/** One attempt of a probe. */
export async function probeOnce(probe: Probe, target: ProbeTarget): Promise<boolean> {
  const timeoutMs = probe.timeoutSeconds * 1000;
  if (probe.httpGet !== undefined) {
    const socket = await target.socketFor(probe.httpGet.port);
    return await httpProbe(socket, probe.httpGet.path, `localhost:${probe.httpGet.port}`, timeoutMs);
  }
  if (probe.tcpSocket !== undefined) return isListening(target.pid, probe.tcpSocket.port);
  return false;
}

export interface ReadyWait {
  readonly template: CustomContainerTemplate;
  readonly target: ProbeTarget;
  readonly deadline: number;
  /** Why the container can no longer become Ready (it exited), or undefined while it runs. */
  readonly stopped: () => string | undefined;
  readonly signal?: AbortSignal | undefined;
}

export async function waitUntilReady(wait: ReadyWait): Promise<void> {
  const { template, target } = wait;
  const startup = template.probes.find((p) => p.type === 'Startup');
  const check = (): void => {
    if (wait.signal?.aborted) throw new AbortedError('session creation was aborted');
    const stopped = wait.stopped();
    if (stopped !== undefined) throw new BackendError(stopped);
    if (Date.now() > wait.deadline) {
      throw new BackendError(
        startup === undefined
          ? `custom container did not listen on port ${template.targetPort} before the create timeout`
          : 'custom container did not pass its Startup probe before the create timeout',
      );
    }
  };
  if (startup === undefined) {
    for (let delay = 10; ; delay = Math.min(delay * 2, 100)) {
      check();
      if (isListening(target.pid, template.targetPort)) return;
      await sleep(delay, wait.signal);
    }
  }
  if (startup.initialDelaySeconds > 0) await sleep(startup.initialDelaySeconds * 1000, wait.signal);
  for (let failures = 0; ; ) {
    check();
    if (await probeOnce(startup, target)) return;
    failures++;
    if (failures >= startup.failureThreshold) {
      throw new BackendError(`custom container failed its Startup probe ${failures} times`);
    }
    await sleep(startup.periodSeconds * 1000, wait.signal);
  }
}

/**
 * Run Liveness probes until `signal` aborts; calls `onFailed` once when one fails
 * `failureThreshold` times in a row.
 */
export function watchLiveness(
  template: CustomContainerTemplate,
  target: ProbeTarget,
  signal: AbortSignal,
  onFailed: (message: string) => void,
): void {
  for (const probe of template.probes.filter((p) => p.type === 'Liveness')) {
    void (async () => {
      await sleep(probe.initialDelaySeconds * 1000, signal);
      let failures = 0;
      while (!signal.aborted) {
        const ok = await probeOnce(probe, target).catch(() => false);
        if (signal.aborted) return;
        failures = ok ? 0 : failures + 1;
        if (failures >= probe.failureThreshold) {
          onFailed(`custom container failed its Liveness probe ${failures} times`);
          return;
        }
        await sleep(probe.periodSeconds * 1000, signal);
      }
    })();
  }
}
