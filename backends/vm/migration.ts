/**
 * Saving and loading a VM's state with QEMU's migration, over QMP. The warm snapshot uses it (save
 * once, load into every restored session); anything else that freezes a VM to a file and thaws it
 * (pausing a session) goes through the same two functions.
 *
 * With `ignoreShared`, guest RAM that lives in a `share=on` file backend is not written into the
 * stream (QEMU's `x-ignore-shared` capability): the stream holds the device state only, about half
 * a megabyte, and the RAM stays in its file (see snapshot-memory.ts). The loading side must set the
 * same capability, because it changes the stream's format: QEMU is then started with
 * `-incoming defer` and told where to read from once the capability is set.
 */

import { BackendError } from '../../src/errors.js';
import type { QmpClient } from './qmp-client.js';

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function setIgnoreShared(qmp: QmpClient, on: boolean): Promise<void> {
  await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'x-ignore-shared', state: on }] });
}

/**
 * Stop the vCPUs and write the machine's state to `uri` (a QEMU migration URI such as
 * `exec:cat > FILE` or `fd:NAME`), resolving once the stream is complete. The VM stays stopped.
 */
export async function saveState(
  qmp: QmpClient,
  uri: string,
  options: { readonly ignoreShared: boolean; readonly timeoutMs?: number | undefined },
): Promise<void> {
  await qmp.execute('stop');
  await setIgnoreShared(qmp, options.ignoreShared);
  // No bandwidth cap: the VM is stopped and the target is local.
  await qmp.execute('migrate-set-parameters', { 'max-bandwidth': 64 * 1024 * 1024 * 1024 });
  await qmp.execute('migrate', { uri });
  const deadline = Date.now() + (options.timeoutMs ?? 120_000);
  for (;;) {
    const info = (await qmp.execute('query-migrate')) as { status?: string; 'error-desc'?: string };
    if (info.status === 'completed') return;
    if (info.status === 'failed' || info.status === 'cancelled') {
      throw new BackendError(`saving the VM state failed: ${info['error-desc'] ?? info.status}`);
    }
    if (Date.now() > deadline) throw new BackendError('saving the VM state did not finish in time');
    await delay(10);
  }
}

/**
 * Load the state QEMU finds at `uri` (QEMU was started with `-incoming defer`), then make sure the
 * vCPUs run. Resolves once the guest is running again.
 */
export async function loadState(
  qmp: QmpClient,
  uri: string,
  options: { readonly ignoreShared: boolean; readonly deadline: number },
): Promise<void> {
  await setIgnoreShared(qmp, options.ignoreShared);
  // QEMU resumes the vCPUs by itself once the stream is loaded (no -S) and says so with RESUME;
  // a slow poll of the status catches a load that failed instead.
  let wake: () => void = () => {};
  let resumed = false;
  const unsubscribe = qmp.onEvent((event) => {
    if (event.event !== 'RESUME') return;
    resumed = true;
    wake();
  });
  try {
    await qmp.execute('migrate-incoming', { uri });
    for (;;) {
      if (resumed) return;
      const status = (await qmp.execute('query-status')) as { status?: string; running?: boolean };
      if (status.running === true) return;
      if (status.status !== 'inmigrate') {
        if (status.status === 'paused' || status.status === 'prelaunch' || status.status === 'postmigrate') {
          await qmp.execute('cont');
          return;
        }
        throw new BackendError(`the restored VM is in state "${status.status ?? '?'}"`);
      }
      if (Date.now() > options.deadline) throw new BackendError('loading the VM state did not finish in time');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 25);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  } finally {
    unsubscribe();
  }
}
