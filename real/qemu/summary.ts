// Repeated QEMU runs of one scenario, summarised: each figure's median and
// range (min..max) over the runs, and the most common migration status.
// Real runs vary (a busy host preempts the vCPU and the migration thread), so
// `latsim qemu run --repeat N` and `latsim qemu compare --repeat N` report
// medians; the runs themselves stay in the JSON.
import type { QemuRunResult } from './result.ts';

export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly values: readonly number[];
}

/** The median (the mean of the two middle values for an even count); NaN for none. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const v = [...values].sort((a, b) => a - b);
  const mid = v.length >> 1;
  return v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

export function spread(values: readonly number[]): Spread | null {
  if (values.length === 0) return null;
  return { median: median(values), min: Math.min(...values), max: Math.max(...values), values: [...values] };
}

/** The most common value (the first seen among equals). */
export function mode<T>(values: readonly T[]): T | undefined {
  let best: T | undefined;
  let bestCount = 0;
  for (const v of values) {
    const n = values.filter((x) => x === v).length;
    if (n > bestCount) {
      best = v;
      bestCount = n;
    }
  }
  return best;
}

/** The figures summarised, by their JSON path in a run's result. */
export const SUMMARY_METRICS: readonly [string, (r: QemuRunResult) => number | null][] = [
  ['migration.total-time', (r) => r.migration?.['total-time'] ?? null],
  ['migration.setup-time', (r) => r.migration?.['setup-time'] ?? null],
  ['migration.downtime', (r) => r.migration?.downtime ?? null],
  ['migration.expected-downtime', (r) => r.migration?.['expected-downtime'] ?? null],
  ['migration.ram.transferred', (r) => r.migration?.ram.transferred ?? null],
  ['migration.ram.duplicate', (r) => r.migration?.ram.duplicate ?? null],
  ['migration.ram.normal', (r) => r.migration?.ram.normal ?? null],
  ['migration.ram.dirty-sync-count', (r) => r.migration?.ram['dirty-sync-count'] ?? null],
  ['migration.ram.mbps', (r) => r.migration?.ram.mbps ?? null],
  ['migration.cpu_throttle_percentage', (r) => r.migration?.cpu_throttle_percentage ?? null],
  ['migration.downtime_phases.drain', (r) => r.migration?.downtime_phases?.drain ?? null],
  ['migration.downtime_phases.flush', (r) => r.migration?.downtime_phases?.flush ?? null],
  ['guest.achieved_rate', (r) => r.guest.achieved_rate],
  ['guest.switchover_stall_ms', (r) => (r.guest.switchover_stall_ms >= 0 ? r.guest.switchover_stall_ms : null)],
  ['guest.vcpu_stall_max_ms', (r) => r.guest.vcpu_stall_max_ms],
  ['qmp.poll_latency_max_ms', (r) => r.qmp.poll_latency_max_ms],
  ['qemu.boot_ms', (r) => r.qemu.boot_ms],
  ['wall_ms', (r) => r.wall_ms],
];

export interface RunSummary {
  readonly runs: number;
  /** The most common migration status at the end of the run ('' without a migration). */
  readonly status: string;
  readonly statuses: readonly string[];
  readonly outcomes: readonly string[];
  /** Runs whose memory check passed (of those that completed). */
  readonly verified: number;
  readonly metrics: Readonly<Record<string, Spread | null>>;
}

export function summarize(runs: readonly QemuRunResult[]): RunSummary {
  const metrics: Record<string, Spread | null> = {};
  for (const [name, get] of SUMMARY_METRICS) {
    metrics[name] = spread(runs.map(get).filter((v): v is number => v !== null));
  }
  const statuses = runs.map((r) => r.migration?.status ?? '');
  return {
    runs: runs.length,
    status: mode(statuses) ?? '',
    statuses,
    outcomes: runs.map((r) => r.outcome),
    verified: runs.filter((r) => r.migration?.verified).length,
    metrics,
  };
}

/** "1653 [1590..1720]", or the one value of a single run. */
export function spreadText(s: Spread | null, fmt: (v: number) => string = (v) => String(Math.round(v))): string {
  if (!s) return '-';
  if (s.values.length === 1 || s.min === s.max) return fmt(s.median);
  return `${fmt(s.median)} [${fmt(s.min)}..${fmt(s.max)}]`;
}
