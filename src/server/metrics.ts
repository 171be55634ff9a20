/**
 * Prometheus metrics (prom-client, one Registry per server so two servers in a process never
 * share series). Labels are pool, backend, operation, status, reason: never an identifier, which
 * is a caller secret and would also make cardinality unbounded.
 */

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

import type { SessionPool } from '../session-pool.js';

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export class ServerMetrics {
  readonly registry = new Registry();
  readonly #pools: () => Iterable<SessionPool>;
  readonly #detach = new Map<SessionPool, () => void>();
  readonly #allocation: Histogram<'pool' | 'cold'>;
  readonly #execution: Histogram<'pool' | 'status'>;
  readonly #coldMisses: Counter<'pool'>;
  readonly #destroyed: Counter<'pool' | 'reason'>;
  readonly #exhausted: Counter<'pool'>;
  readonly #requests: Counter<'operation' | 'status'>;
  readonly #requestDuration: Histogram<'operation'>;
  /** Recent samples per pool for the status page's charts (bounded ring). */
  readonly samples = new Map<string, { allocation: number[]; execution: number[] }>();

  constructor(pools: () => Iterable<SessionPool>, options: { defaultMetrics?: boolean } = {}) {
    this.#pools = pools;
    const registers = [this.registry];
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'sandpool_process_' });
    const sessionGauge = (name: string, help: string, pick: (s: ReturnType<SessionPool['stats']>) => number): void => {
      const poolsOf = this.#pools;
      new Gauge({
        name,
        help,
        labelNames: ['pool', 'backend'],
        registers,
        collect() {
          this.reset();
          for (const pool of poolsOf()) {
            const s = pool.stats();
            this.set({ pool: s.name, backend: s.backend }, pick(s));
          }
        },
      });
    };
    sessionGauge('sandpool_sessions_ready', 'Sessions started and waiting to be allocated.', (s) => s.ready);
    sessionGauge('sandpool_sessions_allocated', 'Sessions allocated to an identifier.', (s) => s.allocated);
    sessionGauge('sandpool_sessions_pending', 'Sessions being created.', (s) => s.pending);
    sessionGauge('sandpool_acquires_waiting', 'Acquires waiting for a session.', (s) => s.waiting);
    sessionGauge('sandpool_pool_max_concurrent_sessions', 'Configured maxConcurrentSessions.', (s) => s.maxConcurrentSessions);
    sessionGauge(
      'sandpool_refill_sessions_per_second',
      'Sessions created per second of refilling since the pool started (replacements only).',
      (s) => s.refill.sessionsPerSecond,
    );
    this.#allocation = new Histogram({
      name: 'sandpool_allocation_latency_seconds',
      help: 'Time from acquire to a session being handed over.',
      labelNames: ['pool', 'cold'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.#execution = new Histogram({
      name: 'sandpool_execution_duration_seconds',
      help: 'Execution wall time inside the session.',
      labelNames: ['pool', 'status'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.#coldMisses = new Counter({
      name: 'sandpool_cold_misses_total',
      help: 'Allocations that found no Ready session.',
      labelNames: ['pool'],
      registers,
    });
    this.#destroyed = new Counter({
      name: 'sandpool_sessions_destroyed_total',
      help: 'Sessions destroyed, by reason.',
      labelNames: ['pool', 'reason'],
      registers,
    });
    this.#exhausted = new Counter({
      name: 'sandpool_pool_exhausted_total',
      help: 'Acquires that hit maxConcurrentSessions.',
      labelNames: ['pool'],
      registers,
    });
    this.#requests = new Counter({
      name: 'sandpool_http_requests_total',
      help: 'HTTP requests by operation and status.',
      labelNames: ['operation', 'status'],
      registers,
    });
    this.#requestDuration = new Histogram({
      name: 'sandpool_http_request_duration_seconds',
      help: 'HTTP request duration by operation.',
      labelNames: ['operation'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
  }

  /** Start observing a pool's events. Idempotent. */
  attach(pool: SessionPool): void {
    if (this.#detach.has(pool)) return;
    const name = pool.name;
    const samples = { allocation: [] as number[], execution: [] as number[] };
    this.samples.set(name, samples);
    const push = (list: number[], ms: number): void => {
      list.push(ms);
      if (list.length > 500) list.shift();
    };
    const onAllocated = (e: { allocationLatencyMs: number; coldMiss: boolean }): void => {
      this.#allocation.observe({ pool: name, cold: String(e.coldMiss) }, e.allocationLatencyMs / 1000);
      if (e.coldMiss) this.#coldMisses.inc({ pool: name });
      push(samples.allocation, e.allocationLatencyMs);
    };
    const onFinished = (e: { durationMs: number; status: string }): void => {
      this.#execution.observe({ pool: name, status: e.status }, e.durationMs / 1000);
      push(samples.execution, e.durationMs);
    };
    const onDestroyed = (e: { reason: string }): void => this.#destroyed.inc({ pool: name, reason: e.reason });
    const onExhausted = (): void => this.#exhausted.inc({ pool: name });
    pool.on('sessionAllocated', onAllocated);
    pool.on('executionFinished', onFinished);
    pool.on('sessionDestroyed', onDestroyed);
    pool.on('poolExhausted', onExhausted);
    this.#detach.set(pool, () => {
      pool.off('sessionAllocated', onAllocated);
      pool.off('executionFinished', onFinished);
      pool.off('sessionDestroyed', onDestroyed);
      pool.off('poolExhausted', onExhausted);
    });
  }

  detach(pool: SessionPool): void {
    this.#detach.get(pool)?.();
    this.#detach.delete(pool);
    if (this.samples.get(pool.name) !== undefined && ![...this.#pools()].some((p) => p.name === pool.name)) {
      this.samples.delete(pool.name);
    }
  }

  observeRequest(operation: string, status: number, seconds: number): void {
    this.#requests.inc({ operation, status: String(status) });
    this.#requestDuration.observe({ operation }, seconds);
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  close(): void {
    for (const off of this.#detach.values()) off();
    this.#detach.clear();
    this.registry.clear();
  }
}
