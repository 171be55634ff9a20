/**
 * An in-memory backend whose sessions hold variables and can be checkpointed to a directory, at the
 * `interpreter` level (restore loads into a Ready session) or the `machine` level (restore starts
 * a new session), for testing the pool's pause, resume, snapshot and fork logic deterministically.
 * Real engines are tested by the conformance suite.
 *
 * Execute understands: `set:NAME=VALUE`, `get:NAME` (the value, or "" when unset), `rand` (the
 * session's next random number: a per-session generator copied by checkpoints, reseeded by forks),
 * `sleep:MS`; anything else echoes the code. A variable named `sock` cannot be kept by an
 * interpreter-level checkpoint and is reported lost.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import type {
  Backend,
  BackendSession,
  Checkpoint,
  CheckpointOptions,
  CreateOptions,
  ExecuteRequest,
  ExecutionOutcome,
  Restored,
  RestoreOptions,
  SessionExit,
  SessionSpec,
} from '../../src/backend.js';
import { BackendError } from '../../src/errors.js';

interface FakeState {
  vars: Record<string, string>;
  seed: number;
}

function nextRandom(state: FakeState): number {
  // A small LCG: deterministic from the seed, so a copied state repeats the sequence.
  state.seed = (state.seed * 1103515245 + 12345) % 2 ** 31;
  return state.seed / 2 ** 31;
}

export class PausableFakeBackend implements Backend {
  readonly name = 'fake-pausable';
  readonly capabilities;
  readonly live = new Map<string, { state: FakeState; onExit: (exit: SessionExit) => void }>();
  creates = 0;
  destroys = 0;
  checkpoints = 0;
  restores = 0;
  /** Upcoming restores that fail. */
  failRestores = 0;
  /** Milliseconds each checkpoint takes. */
  checkpointDelayMs = 0;

  constructor(readonly level: 'interpreter' | 'machine' = 'interpreter') {
    this.capabilities = {
      containerTypes: ['NodeLTS', 'PythonLTS', 'Shell'] as const,
      languages: ['javascript', 'python', 'shell'] as const,
      isolation: 'isolate' as const,
      inProcess: true,
      files: false,
      network: false,
      snapshots: false,
      httpForwarding: false,
      pause: level,
      fork: true,
    };
  }

  async create(spec: SessionSpec, options: CreateOptions): Promise<BackendSession> {
    this.creates += 1;
    this.live.set(spec.sessionId, { state: { vars: {}, seed: Math.floor(Math.random() * 2 ** 31) }, onExit: options.onExit });
    return { id: spec.sessionId, etag: `etag-${spec.sessionId}` };
  }

  #state(session: BackendSession): FakeState {
    const entry = this.live.get(session.id);
    if (entry === undefined) throw new BackendError('session is gone');
    return entry.state;
  }

  async execute(session: BackendSession, request: ExecuteRequest): Promise<ExecutionOutcome> {
    const state = this.#state(session);
    const [command, arg = ''] = request.code.split(/:(.*)/s);
    let result: string | number = request.code;
    if (command === 'sleep') await new Promise((r) => setTimeout(r, Number(arg)));
    if (command === 'set') {
      const [name, value] = arg.split('=');
      state.vars[name!] = value ?? '';
      result = '';
    }
    if (command === 'get') result = state.vars[arg] ?? '';
    if (command === 'rand') result = nextRandom(state);
    return { status: 'Succeeded', result, stdout: '', stderr: '', sessionState: 'kept', executionTimeInMilliseconds: 0 };
  }

  async checkpoint(session: BackendSession, options: CheckpointOptions): Promise<Checkpoint> {
    const state = this.#state(session);
    this.checkpoints += 1;
    if (this.checkpointDelayMs > 0) await new Promise((r) => setTimeout(r, this.checkpointDelayMs));
    const keep =
      this.level === 'machine' ? state.vars : Object.fromEntries(Object.entries(state.vars).filter(([k]) => k !== 'sock'));
    const text = JSON.stringify({ vars: keep, seed: state.seed });
    writeFileSync(join(options.dir, 'state.json'), text, { mode: 0o600 });
    const lost =
      this.level === 'interpreter' && 'sock' in state.vars
        ? [{ language: 'python', name: 'sock', type: 'socket', reason: 'cannot pickle a socket' }]
        : [];
    return { level: this.level, bytes: text.length, lost, meta: { fake: true } };
  }

  async restore(spec: SessionSpec, options: RestoreOptions): Promise<Restored> {
    this.restores += 1;
    if (this.failRestores > 0) {
      this.failRestores -= 1;
      throw new BackendError('the fake restore failed on purpose');
    }
    let saved: FakeState;
    try {
      saved = JSON.parse(readFileSync(join(options.dir, 'state.json'), 'utf8')) as FakeState;
    } catch (error) {
      throw new BackendError(`the checkpoint is missing or corrupt: ${(error as Error).message}`);
    }
    const state: FakeState = { vars: { ...saved.vars }, seed: options.fork ? Math.floor(Math.random() * 2 ** 31) : saved.seed };
    if (this.level === 'interpreter') {
      if (options.into === undefined) throw new BackendError('interpreter restores need a Ready session');
      this.#state(options.into).vars = state.vars;
      this.#state(options.into).seed = state.seed;
      return { session: options.into, lost: [] };
    }
    if (options.into !== undefined) throw new BackendError('machine restores start their own session');
    this.live.set(spec.sessionId, { state, onExit: options.onExit });
    return { session: { id: spec.sessionId, etag: `etag-${spec.sessionId}` }, lost: [] };
  }

  async destroy(session: BackendSession): Promise<void> {
    if (this.live.delete(session.id)) this.destroys += 1;
  }

  async close(): Promise<void> {}
}
