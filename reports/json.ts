// The JSON result as printed by --json and written to reports: the result
// object without the plot series, which stay in the HTML report.
import type { RunResult } from '../sim/results.ts';

export function resultJson(r: RunResult): Omit<RunResult, 'series'> {
  const { series: _series, ...rest } = r;
  return rest;
}
