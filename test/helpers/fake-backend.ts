/**
 * An in-memory backend with controllable timing and failures, for testing the pool's own logic
 * (state machine, races, timers, limits) deterministically. Real engines are tested by the
 * conformance suite; this one only exercises the contract from the pool's side.
 *
 * Execute understands a tiny command language: `sleep:MS`, `fail`, `lose` (session lost),
 * `throw` (backend rejects: the session died), anything else echoes the code as the result.
 */
import type {
  Backend,
  BackendSession,
  CreateOptions,
  ExecuteRequest,
  ExecutionOutcome,
  SessionExit,
  SessionSpec,
} from '../../src/backend.js';
import { BackendError } from '../../src/errors.js';

export class FakeBackend implements Backend {
  readonly name = 'fake';
  readonly capabilities = {
    containerTypes: ['NodeLTS', 'PythonLTS', 'Shell'] as const,
    languages: ['javascript', 'python', 'shell'] as const,
    isolation: 'isolate' as const,
    inProcess: true,
    files: false,
    network: false,
    snapshots: false,
    httpForwarding: false,
  };
  createDelayMs = 0;
  /** Number of upcoming creates that fail. */
  failCreates = 0;
  readonly live = new Map<string, { spec: SessionSpec; onExit: (exit: SessionExit) => void }>();
  readonly specs: SessionSpec[] = [];
  creates = 0;
  destroys = 0;
  closed = false;
  readonly executed: string[] = [];

  async create(spec: SessionSpec, options: CreateOptions): Promise<BackendSession> {
    this.creates += 1;
    this.specs.push(spec);
    if (this.createDelayMs > 0) {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(resolve, this.createDelayMs);
        options.signal?.addEventListener('abort', () => {
          clearTimeout(timer);
          reject(new BackendError('create aborted'));
        });
      });
    }
    if (this.failCreates > 0) {
      this.failCreates -= 1;
      throw new BackendError('engine is down');
    }
    this.live.set(spec.sessionId, { spec, onExit: options.onExit });
    return { id: spec.sessionId, etag: `etag-${spec.sessionId}` };
  }

  async execute(session: BackendSession, request: ExecuteRequest): Promise<ExecutionOutcome> {
    if (!this.live.has(session.id)) throw new BackendError('session is gone');
    this.executed.push(request.code);
    const [command, arg] = request.code.split(':');
    if (command === 'sleep') await new Promise((r) => setTimeout(r, Number(arg)));
    if (command === 'throw') {
      this.live.delete(session.id);
      throw new BackendError('the sandbox process died');
    }
    const ok = command !== 'fail';
    return {
      status: ok ? 'Succeeded' : 'Failed',
      result: ok ? request.code : '',
      stdout: '',
      stderr: ok ? '' : 'failed on purpose',
      sessionState: command === 'lose' ? 'lost' : 'kept',
      executionTimeInMilliseconds: 0,
    };
  }

  /** Variables bound per session (recorded; `execute` does not use them). */
  readonly environments = new Map<string, Readonly<Record<string, string>>>();

  async setEnvironment(session: BackendSession, env: Readonly<Record<string, string>>): Promise<void> {
    if (!this.live.has(session.id)) throw new BackendError('session is gone');
    this.environments.set(session.id, { ...this.environments.get(session.id), ...env });
  }

  async destroy(session: BackendSession): Promise<void> {
    if (this.live.delete(session.id)) this.destroys += 1;
    this.environments.delete(session.id);
  }

  /** Simulate the session's process exiting by itself. */
  kill(sessionId: string, exit: SessionExit = { reason: 'exited', message: 'process exited', exitCode: 0 }): void {
    const entry = this.live.get(sessionId);
    this.live.delete(sessionId);
    entry?.onExit(exit);
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
