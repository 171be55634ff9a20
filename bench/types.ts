/** Shapes shared by the bench harness, its reports and the JSON files runs are compared with. */

/** Summary of one latency (or other) sample set. Percentiles use linear interpolation. */
export interface SampleStats {
  readonly n: number;
  readonly min: number;
  readonly max: number;
  readonly mean: number;
  readonly stddev: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
}

export type Unit = 'ms' | 'sessions/s' | 'bytes' | 'sessions' | 'percent' | 'count';

/**
 * One figure of a run. Latencies carry `stats`; rates, memory and counts carry `value`.
 * `(target, scenario, metric)` identifies it across runs, which is what `--compare` matches on.
 */
export interface Measurement {
  /** Bench target (`quickjs`, `container:python`…) or `baseline`. */
  readonly target: string;
  readonly scenario: string;
  readonly metric: string;
  readonly unit: Unit;
  readonly stats?: SampleStats | undefined;
  readonly value?: number | undefined;
  /** Context a reader needs: counts, pool options, success rates, what was skipped. */
  readonly detail?: Readonly<Record<string, number | string | boolean>> | undefined;
}

/** A target that could not run, with the reason printed to the user. */
export interface Skipped {
  readonly target: string;
  readonly scenario?: string | undefined;
  readonly reason: string;
}

export interface MachineInfo {
  readonly cpuModel: string;
  readonly cores: number;
  readonly memoryBytes: number;
  readonly kernel: string;
  readonly os: string;
  readonly host: string;
  readonly node: string;
  readonly v8: string;
  /** 1/5/15-minute load averages when the run started: a busy host skews every figure. */
  readonly loadAverage: readonly number[];
  readonly date: string;
}

/** One target check of issue 6 §3, as met or missed by this run. */
export interface TargetCheck {
  readonly target: string;
  readonly goal: string;
  readonly measured: string;
  readonly met: boolean;
  /** For a miss: how far off, e.g. "3.2× the target". */
  readonly gap?: string | undefined;
}

export interface Ratio {
  readonly target: string;
  readonly text: string;
  readonly value: number;
}

export interface BenchReport {
  readonly schema: 'sandpool-bench/1';
  readonly machine: MachineInfo;
  readonly options: Readonly<Record<string, unknown>>;
  readonly durationMs: number;
  readonly measurements: readonly Measurement[];
  readonly skipped: readonly Skipped[];
  readonly ratios: readonly Ratio[];
  readonly checks: readonly TargetCheck[];
}
