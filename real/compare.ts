// The same scenario on both backends, side by side: for a migration,
// dirty-sync-count, pages transferred (normal + zero), pre-copy iterations,
// bytes transferred, downtime and total time; for any run, the guest's
// page-write and exit rates, the main loop's longest block, the longest vCPU
// stall and the ping round trip. Each row has the relative gap (real - sim) / sim.
// real/README.md says why the columns differ.
// Leaves out: statistics over several real runs (one run each).
import type { RunResult } from '../sim/results.ts';

export interface CompareRow {
  readonly metric: string;
  readonly unit: string;
  readonly sim: number | null;
  readonly real: number | null;
  /** (real - sim) / sim, null when either is missing or sim is 0. */
  readonly gap: number | null;
}

/** Syncs up to the first completion attempt (the iterative pre-copy rounds; the final sync is not one). */
export function precopyIterations(r: RunResult): number | null {
  const m = r.migration;
  if (!m) return null;
  const first = m.attempts[0]?.at_ns ?? Infinity;
  return m.iterations.filter((s) => s.at_ns <= first).length;
}

export function compareResults(sim: RunResult, real: RunResult): CompareRow[] {
  const rows: CompareRow[] = [];
  const row = (metric: string, unit: string, get: (r: RunResult) => number | null) => {
    const s = get(sim);
    const q = get(real);
    const gap = s !== null && q !== null && s !== 0 ? (q - s) / s : null;
    rows.push({ metric, unit, sim: s, real: q, gap });
  };
  if (sim.migration || real.migration) {
    const mig = (f: (m: NonNullable<RunResult['migration']>) => number) => (r: RunResult) => (r.migration ? f(r.migration) : null);
    row('status completed', 'bool', mig((m) => (m.status === 'completed' ? 1 : 0)));
    row('dirty-sync-count', 'count', mig((m) => m.ram['dirty-sync-count']));
    row('pages transferred', 'pages', mig((m) => m.ram.normal + m.ram.duplicate));
    row('  normal pages', 'pages', mig((m) => m.ram.normal));
    row('  zero pages', 'pages', mig((m) => m.ram.duplicate));
    row('iterations', 'count', precopyIterations);
    row('transferred', 'MiB', mig((m) => Math.round((m.ram.transferred / 2 ** 20) * 10) / 10));
    row('downtime', 'ms', mig((m) => (m.status === 'completed' ? m.downtime : null) ?? 0));
    row('total-time', 'ms', mig((m) => m['total-time']));
    row('completion attempts', 'count', mig((m) => m.completion_attempts));
  }
  const perSecond = (n: number, r: RunResult) => (r.sim_time_ns > 0 ? Math.round((n * 1e9) / r.sim_time_ns) : null);
  row('guest page writes', '/s', (r) => perSecond(r.guest.dirty_writes, r));
  row('vCPU exits', '/s', (r) => perSecond(r.guest.vcpus.reduce((n, v) => n + v.exits, 0), r));
  row('main loop blocked max', 'ms', (r) => Math.round(r.main_loop.blocked_max_ns / 1e5) / 10);
  row('vCPU stall max', 'ms', (r) => Math.round(r.guest.vcpu_stall_max_ns / 1e5) / 10);
  row('ping rtt p99', 'ms', (r) => (r.guest.ping.sent > 0 ? Math.round(r.guest.ping.rtt_p99_ns / 1e5) / 10 : null));
  row('run time', 'ms', (r) => Math.round(r.sim_time_ns / 1e6));
  return rows;
}

/** The rows as a text table. */
export function compareTable(rows: readonly CompareRow[]): string {
  const fmt = (v: number | null) => (v === null ? '-' : Number.isInteger(v) ? String(v) : v.toFixed(1));
  const gap = (g: number | null) => (g === null ? '' : `${g >= 0 ? '+' : ''}${(g * 100).toFixed(1)}%`);
  const cells = [['metric', 'unit', 'sim', 'real', 'gap'], ...rows.map((r) => [r.metric, r.unit, fmt(r.sim), fmt(r.real), gap(r.gap)])];
  const widths = cells[0]!.map((_, i) => Math.max(...cells.map((c) => c[i]!.length)));
  return cells.map((c) => c.map((x, i) => (i < 2 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!))).join('  ').trimEnd()).join('\n');
}
