// A scenario on the simulation and on real QEMU, side by side: the outcome
// (migration status), dirty-sync-count, ram.transferred, zero (duplicate) and
// normal pages, total-time, setup-time, downtime, expected-downtime and the
// auto-converge throttle steps with their times, each with QEMU's median and
// range over the runs, the gap (QEMU - sim) / sim, and whether it is within
// the scenario's `fidelity` tolerance. Rows without a goal (the guest's
// achieved rate, the switchover stall, QMP's longest wait against the main
// loop's longest block) explain the others.
//
// The simulated link is QEMU's: the simulation's migration.link.bandwidth is
// replaced by the measured throughput of QEMU's own stream on this host
// (stream.ts), since QEMU's migration thread moves far less than raw
// loopback TCP. The comparison says so. So is its destination: preallocated
// (-mem-prealloc) in the simulation when QEMU's destinations are.
// Leaves out: more than one simulated seed (the simulation is deterministic;
// QEMU's spread is the runs').
import type { RunResult } from '../../sim/results.ts';
import type { Scenario } from '../../sim/scenario/scenario.ts';
import { withinTolerance, type FidelityMetric, type Tolerance } from '../../sim/scenario/fidelity.ts';
import { simulate } from '../../sim/run.ts';
import { measureLoopback, type LoopbackResult } from './loopback.ts';
import type { QemuRunResult } from './result.ts';
import { runOnQemu, type QemuRunOptions } from './run.ts';
import { measureQemuStream, type StreamMeasure } from './stream.ts';
import { mode, spread, type Spread } from './summary.ts';

export interface LinkInfo {
  /** Raw loopback TCP, Node to Node (for reference). */
  readonly loopback: LoopbackResult | null;
  /** QEMU's stream, unthrottled (null when given with --link). */
  readonly qemu_stream: StreamMeasure | null;
  /** Where the simulated bandwidth came from. */
  readonly source: 'measured' | 'given';
  /** The scenario file's migration.link.bandwidth (bytes/s). */
  readonly scenario_bandwidth: number;
  /** What the simulation ran with (bytes/s). */
  readonly simulated_bandwidth: number;
  /** The QEMU destinations ran with -mem-prealloc. */
  readonly destination_prealloc: boolean;
}

export interface CompareRow {
  readonly metric: string;
  /** The fidelity metric this row is judged by, or null (no goal). */
  readonly key: FidelityMetric | 'outcome' | null;
  readonly unit: string;
  readonly sim: number | string | null;
  /** QEMU's median (for the status: the most common). */
  readonly qemu: number | string | null;
  readonly min: number | null;
  readonly max: number | null;
  readonly values: readonly (number | string)[];
  /** (qemu - sim) / sim; null when either is missing or sim is 0. */
  readonly gap: number | null;
  /** qemu - sim. */
  readonly diff: number | null;
  readonly tolerance: Tolerance | null;
  /** The goal in words ("+-1", "10%", "25% or 5 ms"). */
  readonly goal: string;
  /** Within the tolerance (null: no goal, or not comparable). */
  readonly within: boolean | null;
}

export interface CompareReport {
  readonly scenario: string;
  readonly file: string;
  readonly seed: number;
  readonly repeat: number;
  readonly qemu: { readonly version: string; readonly package: string; readonly binary: string };
  readonly link: LinkInfo;
  /** The QEMU version profile the simulation followed (the scenario's qemu.version) and its host costs. */
  readonly profile: { readonly simulated: string; readonly binary: string; readonly host: Scenario['qemu']['host'] };
  readonly rows: readonly CompareRow[];
  /** Throttle steps: the simulation's, and each QEMU run's (ms from time zero). */
  readonly throttle: { readonly sim: readonly ThrottleStep[]; readonly qemu: readonly (readonly ThrottleStep[])[] };
  /** Rows with a goal that QEMU's median misses. */
  readonly outside: readonly string[];
  readonly sim: RunResult;
  readonly runs: readonly QemuRunResult[];
}

export interface ThrottleStep {
  readonly at_ms: number;
  readonly pct: number;
}

/**
 * The scenario the simulation runs: the file's, on QEMU's measured link, and
 * with the destination QEMU's RAM preallocated or not as the QEMU runs have
 * it (-mem-prealloc; the file's migration.destination_prealloc when not given).
 */
export function simulatedScenario(s: Scenario, bandwidth: number, prealloc?: boolean): Scenario {
  if (!s.migration) return s;
  const destination_prealloc = prealloc ?? s.migration.destination_prealloc;
  return { ...s, migration: { ...s.migration, link: { ...s.migration.link, bandwidth }, destination_prealloc } };
}

/** Steps of cpu-throttle-percentage in the simulation's snapshots. */
export function simThrottleSteps(r: RunResult): ThrottleStep[] {
  const out: ThrottleStep[] = [];
  let last = 0;
  for (const q of r.migration?.snapshots ?? []) {
    if (q['cpu-throttle-percentage'] !== last) {
      last = q['cpu-throttle-percentage'];
      out.push({ at_ms: Math.round(q.t_ns / 1e6), pct: last });
    }
  }
  return out;
}

/** QEMU's throttle steps; its drop to 0 when the migration ends (cpu_throttle_stop) is not a step. */
export function qemuThrottleSteps(r: QemuRunResult): ThrottleStep[] {
  return (r.migration?.throttle ?? []).filter((t) => t.pct > 0).map((t) => ({ at_ms: Math.round(t.t_ns / 1e6), pct: t.pct }));
}

function goalText(t: Tolerance | null, unit: string): string {
  if (!t) return '';
  const parts: string[] = [];
  if (t.relative !== null) parts.push(`${Math.round(t.relative * 1000) / 10}%`);
  if (t.absolute !== null) {
    const a = unit === 'ms' ? `${t.absolute / 1e6} ms` : unit === 'MiB' ? `${Math.round((t.absolute / 2 ** 20) * 10) / 10} MiB` : `+-${t.absolute}`;
    parts.push(a);
  }
  return parts.join(' or ');
}

/** The rows of one comparison. */
export function compareRows(s: Scenario, sim: RunResult, runs: readonly QemuRunResult[]): CompareRow[] {
  const rows: CompareRow[] = [];
  const tol = s.fidelity.tolerances;
  const sm = sim.migration;
  const num = (
    metric: string, key: FidelityMetric | null, unit: string,
    simV: number | null, get: (r: QemuRunResult) => number | null,
    /** The tolerance's absolute unit per row unit (ns per ms, bytes per MiB). */
    scale = 1,
  ) => {
    const values = runs.map(get).filter((v): v is number => v !== null);
    const sp: Spread | null = spread(values);
    const q = sp ? sp.median : null;
    const t = key ? tol[key] : null;
    const scaled = t ? { relative: t.relative, absolute: t.absolute === null ? null : t.absolute / scale } : null;
    const gap = simV !== null && q !== null && simV !== 0 ? (q - simV) / simV : null;
    rows.push({
      metric, key, unit, sim: simV, qemu: q, min: sp?.min ?? null, max: sp?.max ?? null, values,
      gap, diff: simV !== null && q !== null ? q - simV : null, tolerance: t,
      goal: goalText(t, unit), within: simV !== null && q !== null ? withinTolerance(scaled, simV, q) : null,
    });
  };
  if (sm || runs.some((r) => r.migration)) {
    const statuses = runs.map((r) => r.migration?.status ?? 'none');
    const q = mode(statuses) ?? null;
    const simStatus = sm?.status ?? 'none';
    rows.push({
      metric: 'status', key: 'outcome', unit: '', sim: simStatus, qemu: q, min: null, max: null, values: statuses,
      gap: null, diff: null, tolerance: null, goal: s.fidelity.outcome === 'must-match' ? 'must match' : '',
      within: s.fidelity.outcome === 'must-match' ? statuses.every((x) => x === simStatus) : null,
    });
    const mig = <T>(f: (m: NonNullable<QemuRunResult['migration']>) => T) => (r: QemuRunResult) => (r.migration ? f(r.migration) : null);
    const MiB = 2 ** 20;
    const mib = (b: number) => Math.round((b / MiB) * 100) / 100;
    num('dirty-sync-count', 'dirty_sync_count', 'count', sm ? sm.ram['dirty-sync-count'] : null, mig((m) => m.ram['dirty-sync-count']));
    num('ram.transferred', 'ram_transferred', 'MiB', sm ? mib(sm.ram.transferred) : null, mig((m) => mib(m.ram.transferred)), MiB);
    num('ram.duplicate (zero pages)', 'duplicate', 'pages', sm ? sm.ram.duplicate : null, mig((m) => m.ram.duplicate));
    num('ram.normal', 'normal', 'pages', sm ? sm.ram.normal : null, mig((m) => m.ram.normal));
    num('total-time', 'total_time', 'ms', sm ? sm['total-time'] : null, mig((m) => m['total-time']), 1e6);
    num('setup-time', 'setup_time', 'ms', sm ? sm['setup-time'] : null, mig((m) => m['setup-time']), 1e6);
    num('downtime', 'downtime', 'ms', sm ? sm.downtime : null, mig((m) => m.downtime), 1e6);
    num('expected-downtime', 'expected_downtime', 'ms', sm ? sm['expected-downtime'] : null, mig((m) => m['expected-downtime']), 1e6);
    // The switchover's drain and flush (vm_stop's bdrv_drain_all and bdrv_flush_all), with a disk.
    const sp = sm?.downtime_phases ?? null;
    const qp = (r: QemuRunResult) => r.migration?.downtime_phases ?? null;
    if (s.devices.blk.length > 0) {
      num('  downtime: drain', null, 'ms', sp ? sp.drain : null, (r) => qp(r)?.drain ?? null);
      num('  downtime: flush', null, 'ms', sp ? sp.flush : null, (r) => qp(r)?.flush ?? null);
    }
    const simSteps = simThrottleSteps(sim);
    const qSteps = runs.map(qemuThrottleSteps);
    if (simSteps.length > 0 || qSteps.some((x) => x.length > 0)) {
      num('throttle steps', null, 'count', simSteps.length, (r) => qemuThrottleSteps(r).length);
      const n = Math.max(simSteps.length, ...qSteps.map((x) => x.length));
      for (let i = 0; i < n; i++) {
        const simPct = simSteps[i]?.pct;
        const qPct = mode(qSteps.map((x) => x[i]?.pct).filter((v) => v !== undefined));
        const pct = (v: number | undefined) => (v === undefined ? 'none' : `${v}%`);
        num(`throttle step ${i + 1} (sim ${pct(simPct)}, QEMU ${pct(qPct)}) at`, null, 'ms', simSteps[i]?.at_ms ?? null, (r) => qemuThrottleSteps(r)[i]?.at_ms ?? null);
      }
      num('cpu-throttle-percentage (highest)', null, '%', Math.max(0, ...simSteps.map((x) => x.pct)), (r) => Math.max(0, ...qemuThrottleSteps(r).map((x) => x.pct)));
    }
  }
  modernRows(sim, runs, num);
  // The simulated guest writes at its target rate whenever it runs unthrottled;
  // QEMU's is what the payload achieved on the source before switchover.
  const target = s.guest.workloads.reduce((a, w) => a + (w.dirty ? w.dirty.rate * w.vcpus.length : 0), 0);
  num('guest page writes/s (sim: target)', null, '/s', Math.round(target), (r) => r.guest.achieved_rate);
  if (sm) {
    num('guest stall (longest)', null, 'ms', Math.round(sim.guest.vcpu_stall_max_ns / 1e6), (r) => r.guest.vcpu_stall_max_ms);
    num('main loop blocked / QMP unanswered', null, 'ms', Math.round(sim.main_loop.blocked_max_ns / 1e6), (r) => (r.qmp.polls > 0 ? r.qmp.poll_latency_max_ms : null));
  }
  return rows;
}

type NumRow = (metric: string, key: FidelityMetric | null, unit: string, simV: number | null, get: (r: QemuRunResult) => number | null) => void;

/** Rows for multifd, postcopy, the dirty ring and xbzrle, when the scenario uses them (no goals: they explain). */
function modernRows(sim: RunResult, runs: readonly QemuRunResult[], num: NumRow): void {
  const sm = sim.migration;
  const q = <T>(f: (m: NonNullable<QemuRunResult['migration']>) => T | null | undefined) => (r: QemuRunResult) => (r.migration ? f(r.migration) ?? null : null);
  const ms = (ns: number | undefined) => (ns === undefined || ns < 0 ? null : Math.round(ns / 1e5) / 10);
  const MiB = 2 ** 20;
  if (sm?.multifd || runs.some((r) => r.migration?.multifd)) {
    const simT = sm?.multifd?.transferred ?? [];
    const n = Math.max(simT.length, ...runs.map((r) => r.migration?.multifd?.transferred.length ?? 0));
    for (let i = 0; i < n; i++) {
      num(`multifd channel ${i} transferred`, null, 'MiB', simT[i] === undefined ? null : Math.round((simT[i]! / MiB) * 10) / 10,
        q((m) => (m.multifd?.transferred[i] === undefined ? null : Math.round((m.multifd.transferred[i]! / MiB) * 10) / 10)));
    }
  }
  if (sm?.postcopy || runs.some((r) => r.migration?.postcopy)) {
    num('postcopy faults', null, 'count', sm?.postcopy?.faults ?? null, q((m) => m.postcopy?.faults));
    num('postcopy fault latency p50', null, 'ms', ms(sm?.postcopy?.fault_latency_p50_ns), q((m) => ms(m.postcopy?.fault_latency_p50_ns)));
    num('postcopy fault latency p99', null, 'ms', ms(sm?.postcopy?.fault_latency_p99_ns), q((m) => ms(m.postcopy?.fault_latency_p99_ns)));
    num('postcopy fault latency max', null, 'ms', ms(sm?.postcopy?.fault_latency_max_ns), q((m) => ms(m.postcopy?.fault_latency_max_ns)));
    num('postcopy vCPU blocked (blocktime)', null, 'ms', ms(sm?.postcopy?.stall_ns), q((m) => ms(m.postcopy?.stall_ns)));
  }
  if (sm?.dirty_tracking === 'ring' || runs.some((r) => r.migration?.dirty_tracking === 'ring')) {
    num('dirty ring full exits', null, 'count', sm?.ring_full_exits ?? null, q((m) => m.ring_full_exits));
  }
  if (sm?.xbzrle || runs.some((r) => r.migration?.xbzrle)) {
    num('xbzrle pages', null, 'pages', sm?.xbzrle?.pages ?? null, q((m) => m.xbzrle?.pages));
    num('xbzrle cache misses', null, 'pages', sm?.xbzrle?.cache_miss ?? null, q((m) => m.xbzrle?.cache_miss));
  }
}

export interface CompareOptions extends QemuRunOptions {
  /** QEMU runs (default 1). */
  readonly repeat?: number;
  /** Use this link bandwidth (bytes/s) instead of measuring QEMU's stream. */
  readonly linkBandwidth?: number;
  /** Measure raw loopback too (default true; skipped with linkBandwidth). */
  readonly loopback?: boolean;
}

/** compare's QEMU runs preallocate the destination's RAM unless told otherwise (run.ts says why). */
export const COMPARE_PREALLOC_DEFAULT = true;

/** Measures the link (unless given), simulates on it, runs QEMU `repeat` times, and compares. */
export async function compareOnQemu(s: Scenario, opts: CompareOptions = {}): Promise<CompareReport> {
  const log = opts.log ?? (() => {});
  const repeat = opts.repeat ?? 1;
  const prealloc = opts.preallocDestination ?? COMPARE_PREALLOC_DEFAULT;
  // The destination is watched only until its guest runs (1 s, not run.ts's 2.5 s).
  const runOpts: QemuRunOptions = { afterMs: 1000, ...opts, preallocDestination: prealloc };
  // A postcopy destination's RAM must fault for its pages (userfaultfd): not preallocated.
  const caseOpts: QemuRunOptions = s.migration?.postcopy ? { ...runOpts, preallocDestination: false } : runOpts;
  let loopback: LoopbackResult | null = null;
  let stream: StreamMeasure | null = null;
  let bandwidth: number;
  if (opts.linkBandwidth !== undefined) {
    bandwidth = opts.linkBandwidth;
  } else {
    if (opts.loopback ?? true) {
      loopback = await measureLoopback(256 * 2 ** 20);
      log(`qemu compare: loopback TCP ${loopback.mbps} Mbit/s (Node to Node)`);
    }
    stream = await measureQemuStream(runOpts);
    bandwidth = stream.bandwidth;
    log(`qemu compare: QEMU's unthrottled stream ${stream.mbps} Mbit/s (${Math.round(stream.bandwidth / 1e5) / 10} MB/s)`);
  }
  const simScenario = simulatedScenario(s, bandwidth, caseOpts.preallocDestination);
  const t0 = performance.now();
  const sim = simulate(simScenario).result;
  sim.wall_ms = Math.round(performance.now() - t0);
  log(`qemu compare: simulated in ${sim.wall_ms} ms: ${sim.migration?.status ?? 'no migration'}`);
  const runs: QemuRunResult[] = [];
  for (let i = 0; i < repeat; i++) {
    const r = await runOnQemu(s, caseOpts);
    log(`qemu compare: QEMU run ${i + 1}/${repeat}: ${r.outcome}${r.error ? ` (${r.error})` : ''}, ${r.migration?.status ?? 'no migration'}, ${r.wall_ms} ms`);
    runs.push(r);
  }
  const rows = compareRows(s, sim, runs);
  const first = runs[0]!;
  return {
    scenario: s.name,
    file: s.file,
    seed: s.seed,
    repeat,
    qemu: { version: first.qemu.version, package: first.qemu.package, binary: first.qemu.binary },
    link: {
      loopback,
      qemu_stream: stream,
      source: opts.linkBandwidth !== undefined ? 'given' : 'measured',
      scenario_bandwidth: s.migration?.link.bandwidth ?? 0,
      simulated_bandwidth: bandwidth,
      destination_prealloc: prealloc,
    },
    profile: { simulated: s.qemu.profile.version, binary: first.qemu.version, host: s.qemu.host },
    rows,
    throttle: { sim: simThrottleSteps(sim), qemu: runs.map(qemuThrottleSteps) },
    outside: rows.filter((r) => r.within === false).map((r) => r.metric),
    sim,
    runs,
  };
}
