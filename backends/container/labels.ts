/**
 * Labels on every container this backend creates, and the owner identity they carry. A later
 * process (after a crash) finds leftovers by these labels and removes them only when their owner
 * is provably dead: same host, and the owner pid is gone or now belongs to a different process
 * (its start time differs). Containers of live owners, of other hosts, and unlabeled ones are never
 * touched.
 */

import { hostname } from 'node:os';
import { processStartTime } from '../support/process-start-time.js';

export const LABEL = {
  /** Present on everything we create; the value is the backend name. */
  managed: 'sandpool.managed',
  pool: 'sandpool.pool',
  session: 'sandpool.session',
  /** `SessionSpec.ownerId`: the pool instance. */
  owner: 'sandpool.owner',
  ownerPid: 'sandpool.owner-pid',
  /** Start time of the owner process (clock ticks since boot), guards against pid reuse. */
  ownerStart: 'sandpool.owner-start',
  ownerHost: 'sandpool.owner-host',
  /** `code-interpreter` or `custom`. */
  kind: 'sandpool.kind',
} as const;

export interface OwnerIdentity {
  readonly pid: number;
  readonly start: string;
  readonly host: string;
}

let self: OwnerIdentity | undefined;

export function ownerIdentity(): OwnerIdentity {
  self ??= { pid: process.pid, start: processStartTime(process.pid) ?? '0', host: hostname() };
  return self;
}

/** Labels of an owner's resources. */
export function ownerLabels(): Record<string, string> {
  const me = ownerIdentity();
  return { [LABEL.ownerPid]: String(me.pid), [LABEL.ownerStart]: me.start, [LABEL.ownerHost]: me.host };
}

/**
 * True only when the labels name an owner on this host that no longer runs. Unknown, foreign or
 * malformed labels are "not dead": we never remove what we cannot prove is abandoned.
 */
export function ownerIsDead(labels: Readonly<Record<string, string>> | undefined): boolean {
  if (labels === undefined) return false;
  const pid = Number(labels[LABEL.ownerPid]);
  const start = labels[LABEL.ownerStart];
  if (labels[LABEL.ownerHost] !== ownerIdentity().host || !Number.isInteger(pid) || pid <= 0 || start === undefined) {
    return false;
  }
  const current = processStartTime(pid);
  return current === undefined || current !== start;
}

export { processStartTime };
