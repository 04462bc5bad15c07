// The fault schedule of a scenario: which fault is active on which device at
// a given time. Devices and backends ask it; it only reads the schedule.
import type { FaultSpec } from './scenario/scenario.ts';

export class FaultSchedule {
  /** Faults that became active at least once, by name. */
  readonly fired = new Set<string>();

  constructor(private readonly faults: readonly FaultSpec[]) {}

  /** The first fault of a kind active on device at nowNs, if any. */
  active(device: string, kind: FaultSpec['kind'], nowNs: number): FaultSpec | null {
    for (const f of this.faults) {
      if (f.device === device && f.kind === kind && nowNs >= f.at_ns && nowNs < f.at_ns + f.for_ns) {
        this.fired.add(f.name);
        return f;
      }
    }
    return null;
  }

  forDevice(device: string): readonly FaultSpec[] {
    return this.faults.filter((f) => f.device === device);
  }
}
