/** Percentiles over the most recent samples (a fixed ring), cheap enough for the allocation path. */
export class LatencyWindow {
  readonly #samples: Float64Array;
  #next = 0;
  #count = 0;
  #total = 0;

  constructor(size = 1024) {
    this.#samples = new Float64Array(size);
  }

  add(value: number): void {
    this.#samples[this.#next] = value;
    this.#next = (this.#next + 1) % this.#samples.length;
    this.#count = Math.min(this.#count + 1, this.#samples.length);
    this.#total += 1;
  }

  summary(): LatencySummary {
    if (this.#count === 0) return { count: this.#total, p50: 0, p90: 0, p99: 0, max: 0 };
    const sorted = this.#samples.slice(0, this.#count).sort();
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
    return { count: this.#total, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted[sorted.length - 1]! };
  }
}

/** Milliseconds; `count` is every sample ever recorded, the percentiles cover the last 1024. */
export interface LatencySummary {
  readonly count: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
}

/** Arrivals per second over a sliding window of one-second buckets. */
export class ArrivalRate {
  readonly #buckets: Float64Array;
  readonly #stamps: Float64Array;

  constructor(readonly windowSeconds = 10) {
    this.#buckets = new Float64Array(windowSeconds);
    this.#stamps = new Float64Array(windowSeconds);
  }

  record(now = Date.now()): void {
    const second = Math.floor(now / 1000);
    const i = second % this.windowSeconds;
    if (this.#stamps[i] !== second) {
      this.#stamps[i] = second;
      this.#buckets[i] = 0;
    }
    this.#buckets[i]! += 1;
  }

  perSecond(now = Date.now()): number {
    const second = Math.floor(now / 1000);
    let sum = 0;
    for (let i = 0; i < this.windowSeconds; i += 1) {
      if (second - this.#stamps[i]! < this.windowSeconds) sum += this.#buckets[i]!;
    }
    return sum / this.windowSeconds;
  }
}
