/**
 * The E2B sandboxes this server created: a sandbox is a session of a pool, allocated to an
 * identifier equal to its `sandboxID`, plus what E2B adds around it: the template it was asked
 * for, its metadata, its end time (E2B's timeout is a deadline, not an idle time) and the access
 * token that authenticates in-sandbox requests. Only sandboxes created through the E2B API are
 * visible through it. The registry owns one unref'd timer per sandbox and clears them all on close.
 */

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

import type { Session } from '../../session.js';
import type { SessionPool } from '../../session-pool.js';
import type { Logger } from '../logging.js';
import type { ServerStream } from './connect-rpc.js';

/** A command started through `process.Process/Start`, while it runs. */
export interface RunningProcess {
  readonly pid: number;
  readonly cmd: string;
  readonly args: readonly string[];
  readonly cwd: string | undefined;
  readonly tag: string | undefined;
  /** Kills the command (SendSignal, or the sandbox ending). */
  readonly abort: AbortController;
  /** The event streams attached to it (Start's, then any Connect), each with its keepalive timer. */
  readonly streams: Map<ServerStream, NodeJS.Timeout>;
  /** Settles once the command ended and every stream was ended. */
  readonly done: Promise<void>;
}

export interface E2bSandbox {
  readonly sandboxId: string;
  readonly templateId: string;
  readonly poolName: string;
  /** The session object: a later session under the same identifier is not this sandbox. */
  readonly session: Session;
  /** Never logged, never in an error; only in create, connect and get answers. */
  readonly accessToken: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly startedAt: Date;
  endAt: Date;
  /** The last timeout asked for (create, setTimeout, connect): a resume counts it again. */
  timeoutSeconds: number;
  /** What the deadline does: end the sandbox, or pause it (E2B's `autoPause`). */
  readonly onTimeout: 'kill' | 'pause';
  /** Whether traffic to a paused sandbox resumes it (else only `connect` does, as in E2B). */
  readonly autoResume: boolean;
  /** Principal that created it, for audit records of its in-sandbox requests. */
  readonly createdBy: string;
  executions: number;
  nextPid: number;
  readonly processes: Map<number, RunningProcess>;
}

/** E2B sandbox ids are 20 lowercase letters and digits; ours too (about 103 random bits). */
export function newSandboxId(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = randomBytes(40);
  let id = '';
  for (const byte of bytes) {
    // Rejection sampling keeps every character equally likely (252 = 7 × 36).
    if (byte < 252) id += alphabet[byte % 36];
    if (id.length === 20) return id;
  }
  return newSandboxId();
}

export const SANDBOX_ID = /^[a-z0-9]{20}$/;

export function newAccessToken(): string {
  return randomBytes(32).toString('base64url');
}

const digest = (value: string): Buffer => createHash('sha256').update(value).digest();

/** Constant-time comparison whatever the lengths. */
export function sameToken(given: string, expected: string): boolean {
  return timingSafeEqual(digest(given), digest(expected));
}

export interface LiveSandbox {
  readonly sandbox: E2bSandbox;
  readonly session: Session;
  readonly pool: SessionPool;
}

export class SandboxRegistry {
  readonly #sandboxes = new Map<string, E2bSandbox>();
  readonly #timers = new Map<string, NodeJS.Timeout>();
  readonly #pool: (name: string) => SessionPool | undefined;
  readonly #log: Logger;

  constructor(pool: (name: string) => SessionPool | undefined, log: Logger) {
    this.#pool = pool;
    this.#log = log;
  }

  /** Track a new sandbox; its session is kept from the pool's reaping until its deadline. */
  async add(live: LiveSandbox): Promise<void> {
    this.#sandboxes.set(live.sandbox.sandboxId, live.sandbox);
    await this.setEndAt(live, live.sandbox.endAt);
  }

  /** The sandbox and its live session, or undefined (and forgotten) when the session has ended. */
  find(sandboxId: string): LiveSandbox | undefined {
    const sandbox = this.#sandboxes.get(sandboxId);
    if (sandbox === undefined) return undefined;
    const pool = this.#pool(sandbox.poolName);
    const session = pool?.get(sandboxId);
    if (pool === undefined || session === undefined || session !== sandbox.session) {
      this.forget(sandboxId);
      return undefined;
    }
    return { sandbox, session, pool };
  }

  /** Every live sandbox, oldest first. */
  list(): LiveSandbox[] {
    const live: LiveSandbox[] = [];
    for (const id of [...this.#sandboxes.keys()]) {
      const found = this.find(id);
      if (found !== undefined) live.push(found);
    }
    return live.sort((a, b) => a.sandbox.startedAt.getTime() - b.sandbox.startedAt.getTime());
  }

  /**
   * Move the deadline (E2B's setTimeout may shorten it as well as extend it). The pool's cooldown
   * and maxAlive are pushed past it (`extend` never brings them forward); the registry's own timer
   * ends the sandbox at the deadline.
   */
  async setEndAt(live: LiveSandbox, endAt: Date): Promise<void> {
    const seconds = Math.ceil((endAt.getTime() - Date.now()) / 1000);
    if (seconds > 0) await live.session.extend(seconds);
    live.sandbox.endAt = endAt;
    this.#arm(live.sandbox);
  }

  /** Milliseconds until the soonest running sandbox of `poolName` reaches its timeout, if any runs. */
  soonestEndIn(poolName: string): number | undefined {
    let soonest: number | undefined;
    for (const [id, sandbox] of this.#sandboxes) {
      if (sandbox.poolName !== poolName || !this.#timers.has(id)) continue;
      soonest = Math.min(soonest ?? Number.POSITIVE_INFINITY, sandbox.endAt.getTime());
    }
    return soonest === undefined ? undefined : Math.max(0, soonest - Date.now());
  }

  /** A paused sandbox has no deadline until it is resumed. */
  suspend(sandbox: E2bSandbox): void {
    clearTimeout(this.#timers.get(sandbox.sandboxId));
    this.#timers.delete(sandbox.sandboxId);
  }

  /** Drop the record; running commands are aborted. The session itself is the caller's to end. */
  forget(sandboxId: string): void {
    const sandbox = this.#sandboxes.get(sandboxId);
    clearTimeout(this.#timers.get(sandboxId));
    this.#timers.delete(sandboxId);
    this.#sandboxes.delete(sandboxId);
    if (sandbox !== undefined) for (const process of sandbox.processes.values()) process.abort.abort();
  }

  /** End a sandbox now: forget it and release its session. Resolves false when it was not live. */
  async kill(sandboxId: string): Promise<boolean> {
    const found = this.find(sandboxId);
    this.forget(sandboxId);
    if (found === undefined) return false;
    await found.pool.release(sandboxId);
    return true;
  }

  get size(): number {
    return this.#sandboxes.size;
  }

  /** Clear every timer. Sessions end with their pools. */
  close(): void {
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
    for (const id of [...this.#sandboxes.keys()]) this.forget(id);
  }

  #arm(sandbox: E2bSandbox): void {
    const id = sandbox.sandboxId;
    clearTimeout(this.#timers.get(id));
    // setTimeout's ceiling is 2^31-1 ms (24.8 days); timeouts are capped well below it.
    const delay = Math.min(Math.max(0, sandbox.endAt.getTime() - Date.now()), 2 ** 31 - 1);
    const timer = setTimeout(() => {
      this.#timers.delete(id);
      const sessionId = sandbox.session.id;
      const action = sandbox.onTimeout === 'pause' ? sandbox.session.pause().then(() => true) : this.kill(id);
      action.then(
        (ended) => {
          if (ended) {
            const msg = sandbox.onTimeout === 'pause' ? 'e2b sandbox paused at its timeout' : 'e2b sandbox reached its timeout';
            this.#log({ level: 'info', msg, pool: sandbox.poolName, sessionId });
          }
        },
        (error: unknown) =>
          this.#log({
            level: 'warn',
            msg: `e2b sandbox timeout: ${sandbox.onTimeout === 'pause' ? 'pausing' : 'stopping'} the session failed`,
            pool: sandbox.poolName,
            sessionId,
            error: (error as Error)?.message ?? String(error),
          }),
      );
    }, delay);
    timer.unref();
    this.#timers.set(id, timer);
  }
}
