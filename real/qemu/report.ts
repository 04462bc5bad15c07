// Text renderings for `latsim qemu`: the probe, one QEMU run (the migration's
// query-migrate figures, the iteration table, the switchover's phases, what
// the guest and QMP saw, the disk), a summary of repeated runs (median
// [min..max]), and a comparison with the simulation.
import { formatBytes } from '../../sim/instrument/format.ts';
import type { QemuBudgetResult } from './budgets.ts';
import type { CompareReport, CompareRow } from './compare.ts';
import type { QemuCapabilities } from './capabilities.ts';
import type { QemuProbe } from './probe.ts';
import type { QemuRunResult } from './result.ts';
import { spreadText, type RunSummary } from './summary.ts';

/** A plain table: the first `left` columns left-aligned, the rest right-aligned. */
export function table(headers: readonly string[], rows: readonly (readonly (string | number)[])[], left = 1): string {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells
    .map((r) => r.map((c, i) => (i < left ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd())
    .join('\n');
}

const indent = (s: string, n = 2) => s.split('\n').map((l) => `${' '.repeat(n)}${l}`).join('\n');
const sec = (ns: number) => `${(ns / 1e9).toFixed(3)} s`;

export function probeText(p: QemuProbe, caps: QemuCapabilities | null): string {
  const out = [`QEMU: ${p.binary}, version ${p.version || '(does not run)'}${p.package ? ` (${p.package})` : ''}`];
  out.push(`accelerator: ${p.kvm ? 'kvm (/dev/kvm usable)' : `none usable: ${p.kvm_reason}`}${caps ? `; QMP query-kvm: enabled ${caps.kvm.enabled}, present ${caps.kvm.present}` : ''}`);
  out.push(`guest payload: ${p.guest_built ? p.guest_path : 'not built (node real/qemu/guest/build.mjs)'}`);
  out.push(`trace events: ${p.missing_trace_events.length === 0 ? 'all present' : `missing ${p.missing_trace_events.join(', ')}`}`);
  if (caps) {
    out.push(`migration capabilities (${caps.migration_capabilities.length}): ${caps.migration_capabilities.join(', ')}`);
    out.push(`migration parameters (${caps.migration_parameters.length}): ${caps.migration_parameters.join(', ')}`);
    out.push(`QMP query-version: ${caps.qmp_version}`);
  }
  out.push(p.available ? 'available: yes' : `available: no: ${p.reason}`);
  return out.join('\n');
}

export function budgetLines(budgets: readonly QemuBudgetResult[]): string[] {
  if (budgets.length === 0) return [];
  const v = (b: QemuBudgetResult, x: number) => (x < 0 ? '-' : b.unit === 'ns' ? `${Math.round(x / 1e6)} ms` : String(x));
  return ['', 'budgets:', indent(table(['budget', 'limit', 'value', 'runs', 'result'], budgets.map((b) => [
    b.name, v(b, b.limit), b.measured ? v(b, b.value) : '-', b.values.map((x) => v(b, x)).join(' '),
    b.measured ? (b.pass ? 'pass' : 'FAIL') : 'not measured on QEMU',
  ])))];
}

export function runText(r: QemuRunResult, budgets: readonly QemuBudgetResult[] = []): string {
  const out: string[] = [];
  out.push(`latsim qemu: ${r.scenario} (${r.file}), seed ${r.seed}, QEMU ${r.qemu.version} (${r.qemu.binary})`);
  out.push(`guest ${formatBytes(r.qemu.memory_bytes)}, booted in ${r.qemu.boot_ms} ms; run took ${r.wall_ms} ms wall`);
  if (r.error) out.push(`${r.outcome.toUpperCase()}${r.failure ? ` (${r.failure})` : ''}: ${r.error}`);
  const g = r.guest;
  out.push('', 'guest:');
  out.push(`  page writes/s: target ${g.target_rate}, achieved ${g.achieved_rate} on the source, ${g.destination_achieved_rate} on the destination; ${g.lost_ticks} lost ticks`);
  out.push(`  longest heartbeat gap: ${g.source_gap_max_ms} ms on the source${g.switchover_stall_ms >= 0 ? `, ${g.switchover_stall_ms} ms across the switchover` : ''}`);
  if (g.disk) out.push(`  disk (as the guest saw it): ${g.disk.writes} writes, ${g.disk.reads} reads, ${g.disk.flushes} flushes, ${g.disk.errors} errors, slowest flush ${Math.round(g.disk.flush_max_us / 1000)} ms`);
  if (g.plan.unsupported.length > 0) out.push(`  not run on QEMU: ${g.plan.unsupported.join('; ')}`);
  for (const b of r.block) {
    out.push(`  ${b.name} (NBD server): ${b.reads} reads, ${b.writes} writes, ${b.flushes} flushes, ${b.errors} errors, ` +
      `slowest flush ${Math.round(b.flush_max_ns / 1e6)} ms${b.faults_fired.length ? `; faults fired: ${b.faults_fired.join(', ')}` : ''}`);
  }
  const m = r.migration;
  if (m) {
    out.push('', `migration: ${m.status}${m.final_status !== m.status ? ` (then ${m.final_status})` : ''}${m.fail_reason ? `: ${m.fail_reason}` : ''}` +
      `${m.status === 'completed' ? `, memory ${m.verified ? 'verified' : r.verify ? 'DIFFERS' : 'not checked'}` : ''}`);
    out.push(`  total-time ${m['total-time']} ms, setup-time ${m['setup-time']} ms, downtime ${m.downtime} ms, expected-downtime ${m['expected-downtime']} ms`);
    out.push(`  ram: transferred ${formatBytes(m.ram.transferred)} (${m.ram.transferred} B), ${m.ram.normal} normal and ${m.ram.duplicate} zero pages, ` +
      `dirty-sync-count ${m.ram['dirty-sync-count']}, ${m.ram.mbps} Mbit/s, dirty-pages-rate ${m.ram['dirty-pages-rate']}/s`);
    if (m.throttle.length > 0) out.push(`  cpu throttle: ${m.throttle.map((t) => `${t.pct}% at ${sec(t.t_ns)}`).join(', ')}`);
    if (m.iterations.length > 0) {
      out.push('', '  dirty syncs (migration_bitmap_sync, from the trace):');
      out.push(indent(table(['n', 'at', 'new dirty', 'dirty pages', 'remaining', 'transferred', 'completion'], m.iterations.map((it) => [
        it.n, sec(it.at_ns), it.new_dirty, it.dirty_pages < 0 ? '-' : it.dirty_pages,
        it.remaining_bytes < 0 ? '-' : formatBytes(it.remaining_bytes), formatBytes(it.transferred_bytes), it.in_completion ? 'yes' : '',
      ])), 4));
    }
    if (m.downtime_phases) {
      const p = m.downtime_phases;
      out.push('', `  switchover: stop ${p.stop} ms, drain ${p.drain} ms, flush ${p.flush} ms, final RAM and device state ${p.final_ram_and_device_state} ms`);
    }
    if (m.unsupported.length > 0) out.push(`  not run on QEMU 7.2: ${m.unsupported.join('; ')}`);
  }
  out.push('', `QMP: ${r.qmp.polls} query-migrate polls, longest wait ${r.qmp.poll_latency_max_ms} ms` +
    `${r.qmp.poll_latency_max_at_ns >= 0 ? ` (sent at ${sec(r.qmp.poll_latency_max_at_ns)})` : ''}, longest time between answers ${r.qmp.answer_gap_max_ms} ms, ${r.qmp.late_polls} late`);
  if (r.verify) {
    out.push(`memory check: ${r.verify.equal ? 'equal' : `${r.verify.differing_pages} pages differ`}, ${r.verify.zero_pages} zero pages, ${r.verify.check_ms} ms (not downtime)`);
  }
  out.push(...budgetLines(budgets));
  return out.join('\n');
}

/** Repeated runs: each figure's median [min..max]. */
export function summaryText(s: RunSummary, runs: readonly QemuRunResult[], budgets: readonly QemuBudgetResult[]): string {
  const r0 = runs[0]!;
  const out = [`latsim qemu: ${r0.scenario} (${r0.file}), ${s.runs} runs on QEMU ${r0.qemu.version}: median [min..max]`];
  out.push(`status: ${s.status || 'no migration'} (${s.statuses.join(', ')}); outcomes ${s.outcomes.join(', ')}; memory verified in ${s.verified} of ${s.runs}`);
  for (const r of runs) if (r.error) out.push(`  run error: ${r.error}`);
  out.push('', table(['figure', 'median [min..max]'], Object.entries(s.metrics).filter(([, v]) => v !== null).map(([k, v]) => [k, spreadText(v)])));
  out.push(...budgetLines(budgets));
  return out.join('\n');
}

function cell(v: number | string | null, unit: string): string {
  if (v === null) return '-';
  if (typeof v === 'string') return v;
  if (unit === 'MiB') return v.toFixed(1);
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

export function gapText(g: number | null): string {
  return g === null ? '' : `${g >= 0 ? '+' : ''}${(g * 100).toFixed(1)}%`;
}

/** QEMU's median [min..max] of a row. */
export function qemuCell(r: CompareRow): string {
  const q = cell(r.qemu, r.unit);
  if (typeof r.qemu === 'string') {
    const other = r.values.filter((v) => v !== r.qemu);
    return other.length ? `${q} (also ${[...new Set(other)].join(', ')})` : q;
  }
  if (r.min === null || r.max === null || r.values.length < 2 || r.min === r.max) return q;
  return `${q} [${cell(r.min, r.unit)}..${cell(r.max, r.unit)}]`;
}

export function compareText(c: CompareReport): string {
  const out: string[] = [];
  const mb = (bw: number) => `${(bw / 1e6).toFixed(1)} MB/s`;
  out.push(`latsim qemu compare: ${c.scenario} (${c.file}), seed ${c.seed}; QEMU ${c.qemu.version} (${c.qemu.binary}), ${c.repeat} run${c.repeat === 1 ? '' : 's'}: median [min..max]`);
  const l = c.link;
  if (l.loopback) out.push(`loopback TCP (Node to Node): ${mb(l.loopback.bandwidth)}`);
  if (l.qemu_stream) {
    out.push(`QEMU's own stream, unthrottled (${formatBytes(l.qemu_stream.memory_bytes)} populated guest): ${mb(l.qemu_stream.bandwidth)} (${l.qemu_stream.mbps} Mbit/s)` +
      `${l.destination_prealloc ? ', destination RAM preallocated (-mem-prealloc)' : ''}`);
  }
  out.push(`simulated link: migration.link.bandwidth overridden: ${mb(l.scenario_bandwidth)} in the file -> ${mb(l.simulated_bandwidth)} ` +
    `(${l.source === 'measured' ? 'measured QEMU stream' : 'given with --link'})`);
  if (!l.destination_prealloc) out.push('QEMU destinations not preallocated: their first touch of each page slows the first pass here');
  const pr = c.profile;
  const same = pr.binary.split('.').slice(0, 2).join('.') === pr.simulated;
  out.push(`simulated QEMU: the ${pr.simulated} profile (the scenario's qemu.version)${same ? '' : `, compared with QEMU ${pr.binary}: set qemu.version to the nearest profile`}; ` +
    `host costs: zero page ${pr.host.zero_page_scan_ns} ns, page ${pr.host.page_send_ns} ns, dirty log ${Math.round(pr.host.dirty_sync_ns_per_gib / 1e3)} us/GiB, ` +
    `destination first touch ${pr.host.dest_first_touch_ns} ns, downtime floor ${Math.round(pr.host.downtime_floor_ns / 1e5) / 10} ms`);
  out.push('');
  out.push(table(['metric', 'unit', 'simulation', 'QEMU', 'gap', 'goal', 'within'], c.rows.map((r) => [
    r.metric, r.unit, cell(r.sim, r.unit), qemuCell(r), gapText(r.gap), r.goal, r.within === null ? '' : r.within ? 'yes' : 'NO',
  ]), 2));
  for (const r of c.runs) {
    if (r.error) out.push(`QEMU run error: ${r.error}`);
    const m = r.migration;
    if (m?.status === 'completed' && !m.verified) out.push('QEMU run: destination memory NOT verified');
  }
  out.push('', c.outside.length === 0 ? 'every goal met' : `outside the fidelity goals: ${c.outside.join(', ')}`);
  return out.join('\n');
}
