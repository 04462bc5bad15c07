// A scenario's `expect` budgets judged on QEMU runs, and the exit code of
// `latsim qemu run`: the simulation's codes (0 every budget held, 1 a budget
// failed, 4 memory differed at switchover) plus 7 (the guest failed) and 8
// (the migration failed); 6 (QEMU or KVM unavailable) is the caller's.
// Budgets QEMU cannot observe (BQL waits and holds, an IOThread's blocked
// time, ping, guest userspace progress) are listed as not measured and never fail. The main loop's
// longest block is read as the longest wait for a query-migrate answer:
// QMP is served by the main loop, so a poll waits while the main loop is
// blocked (a lower bound, sampled every poll interval).
// With repeated runs each budget is judged on the median of its values.
import type { BudgetKey, Scenario } from '../../sim/scenario/scenario.ts';
import type { QemuRunResult } from './result.ts';
import { median } from './summary.ts';

export const QEMU_EXIT = { unavailable: 6, guestFailed: 7, migrationFailed: 8 } as const;

export interface QemuBudgetResult {
  name: string;
  limit: number;
  /** The value judged (the median over runs); -1 when not measured or not reached. */
  value: number;
  /** Every run's value. */
  values: number[];
  unit: 'ns' | 'count';
  pass: boolean;
  /** False for budgets QEMU runs cannot observe (they pass). */
  measured: boolean;
}

/** What a budget reads from a QEMU run (ns or a count); null: not observable on QEMU. */
export function qemuBudgetValue(key: BudgetKey, r: QemuRunResult): number | null {
  const m = r.migration;
  const completed = m !== null && m.status === 'completed';
  switch (key) {
    case 'downtime': return completed ? m.downtime * 1e6 : Infinity;
    case 'migration_time': return completed ? m['total-time'] * 1e6 : Infinity;
    case 'completion_attempts': return m ? m.completion_attempts : 0;
    case 'rollbacks': return m ? m.rollbacks : 0;
    case 'vcpu_stall': return r.guest.vcpu_stall_max_ms * 1e6;
    case 'main_loop_block': return r.qmp.polls > 0 ? r.qmp.poll_latency_max_ms * 1e6 : null;
    case 'iothread_block':
    case 'bql_wait':
    case 'bql_hold':
    case 'sync_bql_hold':
    case 'ping_rtt_p99':
    case 'ping_lost':
    case 'userspace_progress':
    case 'userspace_gap':
    case 'multifd_sync_wait':
    // latsim qemu runs pre-copy only: no postcopy figures.
    case 'postcopy_faults':
    case 'postcopy_fault_p99':
    case 'postcopy_fault_max':
    case 'postcopy_stall':
    case 'postcopy_recovered':
      return null;
  }
}

/** The scenario's budgets (and its expected migration status) on one or more QEMU runs of it. */
export function evaluateQemuBudgets(s: Scenario, runs: readonly QemuRunResult[]): QemuBudgetResult[] {
  const out: QemuBudgetResult[] = s.expect.map((b) => {
    const raw = runs.map((r) => qemuBudgetValue(b.key, r));
    if (raw.some((v) => v === null)) {
      return { name: b.name, limit: b.limit, value: -1, values: [], unit: b.unit, pass: true, measured: false };
    }
    const values = raw as number[];
    const v = median(values);
    const pass = b.bound === 'max' ? v <= b.limit : v >= b.limit;
    return { name: b.name, limit: b.limit, value: Number.isFinite(v) ? v : -1, values: values.map((x) => (Number.isFinite(x) ? x : -1)), unit: b.unit, pass, measured: true };
  });
  if (s.expect_migration_status !== null) {
    const hits = runs.map((r) => (r.migration?.status === s.expect_migration_status ? 1 : 0));
    const v = median(hits);
    out.push({ name: `migration_status=${s.expect_migration_status}`, limit: 1, value: v, values: hits, unit: 'count', pass: v >= 1, measured: true });
  }
  return out;
}

/** The exit code of one or more runs of the scenario: the worst of any run, then the budgets. */
export function qemuExitCode(s: Scenario, runs: readonly QemuRunResult[], budgets: readonly QemuBudgetResult[]): number {
  if (runs.some((r) => r.outcome === 'invariant')) return 4;
  if (runs.some((r) => r.failure === 'guest')) return QEMU_EXIT.guestFailed;
  const failedAsExpected = (r: QemuRunResult) => r.outcome !== 'error' && r.migration?.status === 'failed' && s.expect_migration_status === 'failed';
  if (runs.some((r) => r.failure === 'migration' && !failedAsExpected(r))) return QEMU_EXIT.migrationFailed;
  return budgets.every((b) => b.pass) ? 0 : 1;
}

