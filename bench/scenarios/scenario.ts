import type { TargetContext } from '../pool-helpers.js';
import type { Measurement } from '../types.js';

/** One measurement of issue 6 §1, run against one target. `--filter` matches on `name`. */
export interface Scenario {
  readonly name: string;
  /** Issue 6 §1 letter and a line for the table legend. */
  readonly description: string;
  run(context: TargetContext): Promise<Measurement[]>;
}

/** Builds measurements of one target and scenario without repeating both names everywhere. */
export function measurementsOf(context: TargetContext, scenario: string) {
  return {
    latency(metric: string, stats: Measurement['stats'], detail?: Measurement['detail']): Measurement {
      return { target: context.target.name, scenario, metric, unit: 'ms', stats, detail };
    },
    value(metric: string, unit: Measurement['unit'], value: number, detail?: Measurement['detail']): Measurement {
      return { target: context.target.name, scenario, metric, unit, value, detail };
    },
  };
}
