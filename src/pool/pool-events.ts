/**
 * How a pool emits its typed events: a throwing listener cannot break the pool's bookkeeping (it is
 * reported once, asynchronously), and the fields every payload carries are built in one place.
 */

import type { EventEmitter } from 'eventemitter3';

import type { SessionPoolEvents } from '../events.js';
import type { Slot } from './slot.js';

export class PoolEvents {
  constructor(
    private readonly emitter: EventEmitter<SessionPoolEvents>,
    private readonly poolName: () => string,
    private readonly backendName: string,
  ) {}

  emit<K extends keyof SessionPoolEvents>(event: K, payload: Parameters<SessionPoolEvents[K]>[0]): void {
    try {
      (this.emitter.emit as (e: K, p: unknown) => boolean)(event, payload);
    } catch (error) {
      queueMicrotask(() => {
        throw error;
      });
    }
  }

  /** Whether anyone listens to `event`: the warm path builds payloads only for someone listening. */
  listening(event: keyof SessionPoolEvents): boolean {
    return this.emitter.listenerCount(event) > 0;
  }

  /** The fields every event carries. */
  base(): { pool: string; backend: string; at: number } {
    return { pool: this.poolName(), backend: this.backendName, at: Date.now() };
  }

  /** The fields of an event about one session. */
  of(slot: Slot): { pool: string; backend: string; at: number; sessionId: string } {
    return { ...this.base(), sessionId: slot.id };
  }
}
