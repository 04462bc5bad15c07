// What real mode changes in a scenario before running it: a shorter duration
// (real runs take real time), a smaller guest memory (RAM is really allocated
// and really sent; the workloads' page ranges shrink in proportion), and, for a
// run without migration, the migration section and its budgets left out.
// The same adapted scenario is what `latsim real compare` simulates.
// Leaves out: anything that would change the scenario's meaning otherwise.
import type { Budget, Scenario, WorkloadSpec } from '../sim/scenario/scenario.ts';

export interface ScenarioOverrides {
  /** Run this long instead of the scenario's duration. */
  readonly durationNs?: number;
  /** Guest memory of this size instead of the scenario's. */
  readonly memoryBytes?: number;
}

const MIGRATION_BUDGETS: ReadonlySet<Budget['key']> = new Set(['downtime', 'migration_time', 'completion_attempts', 'rollbacks', 'multifd_sync_wait', 'sync_bql_hold']);

export function adaptScenario(s: Scenario, o: ScenarioOverrides): Scenario {
  let out: Scenario = s;
  if (o.durationNs !== undefined) {
    out = { ...out, duration_ns: o.durationNs, limits: { ...out.limits, max_time_ns: Math.max(out.limits.max_time_ns, o.durationNs) } };
  }
  if (o.memoryBytes !== undefined && o.memoryBytes !== s.vm.memory_bytes) {
    const pageSize = s.vm.page_size;
    const oldPages = Math.ceil(s.vm.memory_bytes / pageSize);
    const newPages = Math.ceil(o.memoryBytes / pageSize);
    const scale = (n: number) => Math.floor((n * newPages) / oldPages);
    const workloads: WorkloadSpec[] = s.guest.workloads.map((w) => {
      if (!w.dirty) return w;
      const pages = Math.max(1, Math.min(newPages, scale(w.dirty.pages)));
      const first = Math.min(newPages - pages, scale(w.dirty.first_page));
      return { ...w, dirty: { ...w.dirty, first_page: first, pages, hot_pages: Math.max(1, Math.min(pages, scale(w.dirty.hot_pages))) } };
    });
    out = { ...out, vm: { ...out.vm, memory_bytes: newPages * pageSize }, guest: { ...out.guest, workloads } };
  }
  return out;
}

/** The scenario without its migration and the budgets that only a migration can meet. */
export function withoutMigration(s: Scenario): Scenario {
  if (!s.migration) return s;
  return {
    ...s,
    migration: null,
    expect: s.expect.filter((b) => !MIGRATION_BUDGETS.has(b.key)),
    expect_migration_status: null,
  };
}
