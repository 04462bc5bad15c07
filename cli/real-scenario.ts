// A scenario file for a real backend (`latsim real`, `latsim qemu`), with the
// command line's --duration and --memory put over it (real guests run
// shorter and smaller than simulated ones).
import type { Scenario } from '../sim/scenario/scenario.ts';
import { parseDuration, parseSize } from '../sim/scenario/units.ts';
import { adaptScenario } from '../real/scenario.ts';
import { UsageError } from './errors.ts';
import { loadScenarioFile } from './scenario-file.ts';

/** The scenario file with the command line's overrides. */
export function realScenarioOf(file: string, o: { duration?: string; memory?: string }): Scenario {
  const s = loadScenarioFile(file);
  let durationNs: number | undefined;
  let memoryBytes: number | undefined;
  if (o.duration !== undefined) {
    const d = parseDuration(o.duration);
    if (d === null || d <= 0) throw new UsageError(`--duration: expected a duration such as 5s, got ${JSON.stringify(o.duration)}`);
    durationNs = d;
  }
  if (o.memory !== undefined) {
    const m = parseSize(o.memory);
    if (m === null || m <= 0) throw new UsageError(`--memory: expected a size such as 64MiB, got ${JSON.stringify(o.memory)}`);
    memoryBytes = m;
  }
  return adaptScenario(s, { ...(durationNs === undefined ? {} : { durationNs }), ...(memoryBytes === undefined ? {} : { memoryBytes }) });
}
