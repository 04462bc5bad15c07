// The HTML report: one self-contained page (no network; echarts is inlined
// from node_modules when the report is written) with the budgets, plots drawn
// by echarts and the text summary. For one run: remaining dirty memory per
// iteration and over time, handler latencies, stalls that blocked the main
// loop over time, drain/flush poll iterations, BQL wait and hold per thread
// and call site, ping RTT, guest userspace progress and downtime phases per
// completion attempt, and a table of the multifd channels (per-channel bytes,
// packets and throughput, the sync waits). For several runs (a sweep): the same measures side by side, then
// the first runs in detail. Each plot is a div with a data-chart attribute
// holding one canvas; the page sets window.__latsimChartsReady once all are
// drawn. Leaves out: anything that needs a server, and the trace itself
// (trace.json opens in ui.perfetto.dev).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { RunResult } from '../sim/results.ts';
import type { TraceRecord } from '../sim/instrument/trace.ts';
import { formatBytes, formatNs } from '../sim/instrument/format.ts';
import { textReport } from './text.ts';

export interface HtmlOptions {
  /** Page title (default: "latsim: <scenario>"). */
  readonly title?: string;
  /** One label per result, e.g. a sweep's grid values and seed. */
  readonly labels?: readonly string[];
  /** Trace records per result, when the run kept them: the stall timeline then adds main-loop handler runs and BQL waits over 1 ms. */
  readonly traces?: readonly (readonly TraceRecord[] | null | undefined)[];
  /** Runs shown in detail after the side-by-side plots of a sweep (default 6). */
  readonly maxDetailRuns?: number;
}

/** One plot: its div id, its kind (the data-chart attribute), and its echarts option. */
export interface ChartSpec {
  readonly id: string;
  readonly kind: string;
  readonly option: Record<string, unknown>;
  /** Height in px. */
  readonly height: number;
  /** Spans both columns of the layout. */
  readonly wide: boolean;
}

/** Points per plotted line at most; longer series are thinned, keeping peaks and gaps. */
const POINTS_MAX = 4000;
/** Lines in one side-by-side plot at most. */
const OVERLAY_MAX = 24;
/** Stalls shown in the timeline at most (the longest). */
const TIMELINE_MAX = 5000;
/** Main-loop handler runs and BQL waits at least this long go into the timeline when the trace was kept. */
const TIMELINE_MIN_NS = 1_000_000;

const PHASES = ['stop', 'drain', 'flush', 'final_ram', 'device_state', 'resume'] as const;

const s3 = (ns: number): number => Math.round(ns / 1e6) / 1e3;
const ms3 = (ns: number): number => Math.round(ns / 1e3) / 1e3;
/**
 * Microseconds for a log axis. echarts starts log-axis bars at 1, so values
 * are in us, at least 1; zero has no bar (null). The page formats them as
 * durations ('@us' below).
 */
const logUs = (ns: number): number | null => (ns > 0 ? Math.max(1, Math.round(ns / 1e3)) : null);
/** A log axis of durations in us, labelled "10 ms", "1 s". */
const logUsAxis = (extra: Record<string, unknown> = {}) => ({ type: 'log', logBase: 10, min: 1, axisLabel: { formatter: '@us' }, ...extra });
const mib = (bytes: number): number => Math.round((bytes / 2 ** 20) * 1000) / 1000;

let echartsSource: string | null = null;

/** echarts' minified browser build, read once from node_modules. */
function echartsScript(): string {
  if (echartsSource === null) {
    const file = createRequire(import.meta.url).resolve('echarts/dist/echarts.min');
    echartsSource = readFileSync(file, 'utf8').replace(/<\/(script)/gi, '<\\/$1');
  }
  return echartsSource;
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Keeps at most max points: in each bucket of consecutive points, the one with the largest value. */
export function thinPeaks<T>(points: readonly T[], max: number, value: (p: T) => number): T[] {
  if (points.length <= max) return [...points];
  const k = Math.ceil(points.length / max);
  const out: T[] = [];
  for (let i = 0; i < points.length; i += k) {
    let best = points[i]!;
    for (let j = i + 1; j < Math.min(points.length, i + k); j++) if (value(points[j]!) > value(best)) best = points[j]!;
    out.push(best);
  }
  return out;
}

/** Keeps about max points of a time series, and both ends of every gap longer than a bucket. */
export function thinSteps<T>(points: readonly T[], max: number, t: (p: T) => number): T[] {
  if (points.length <= max) return [...points];
  const k = Math.ceil(points.length / max);
  const span = (t(points[points.length - 1]!) - t(points[0]!)) / max;
  const keep = new Set<number>([0, points.length - 1]);
  for (let i = 1; i < points.length; i++) {
    if (i % k === 0) keep.add(i);
    if (t(points[i]!) - t(points[i - 1]!) > span) {
      keep.add(i - 1);
      keep.add(i);
    }
  }
  return [...keep].sort((a, b) => a - b).map((i) => points[i]!);
}

// ---------------------------------------------------------------------------
// Option builders. Options are plain JSON: no functions cross into the page.

function base(title: string, subtitle: string): Record<string, unknown> {
  return {
    animation: false,
    title: { text: title, subtext: subtitle, left: 8, top: 4, textStyle: { fontSize: 14 }, subtextStyle: { fontSize: 12 } },
    grid: { left: 16, right: 36, top: 96, bottom: 40, containLabel: true },
  };
}

const timeAxis = (name = 'simulated time (s)') => ({ type: 'value', name, nameLocation: 'middle', nameGap: 26, scale: true });
const valueAxis = (name: string, extra: Record<string, unknown> = {}) => ({ type: 'value', name, nameTextStyle: { align: 'left' }, ...extra });
const zoom = [{ type: 'inside', xAxisIndex: 0 }];
const legend = (top = 46) => ({ type: 'scroll', top, left: 8, right: 16 });

function chart(id: string, kind: string, option: Record<string, unknown>, height = 320, wide = false): ChartSpec {
  // Without a legend row the plot starts right below the title.
  const grid = option.grid as Record<string, unknown> | undefined;
  if (!option.legend && grid && grid.top === 96) option = { ...option, grid: { ...grid, top: 76 } };
  return { id, kind, option, height, wide };
}

function remainingPerIteration(id: string, r: RunResult): ChartSpec | null {
  const m = r.migration;
  if (!m || m.iterations.length === 0) return null;
  const its = thinPeaks(m.iterations, POINTS_MAX, (i) => i.remaining_bytes);
  return chart(id, 'remaining-per-iteration', {
    ...base('Remaining dirty memory per iteration',
      `${m.iterations.length} dirty-bitmap syncs; ${formatBytes(m.ram.transferred)} transferred; status ${m.status}`),
    tooltip: { trigger: 'axis' },
    xAxis: { type: 'value', name: 'migration_bitmap_sync #', nameLocation: 'middle', nameGap: 26, minInterval: 1, scale: true },
    yAxis: valueAxis('remaining (MiB)'),
    dataZoom: zoom,
    series: [{ name: 'remaining (MiB)', type: 'bar', barMaxWidth: 12, large: true, data: its.map((i) => [i.n, mib(i.remaining_bytes)]) }],
  });
}

function remainingOverTime(id: string, r: RunResult): ChartSpec | null {
  const m = r.migration;
  if (!m || m.snapshots.length === 0) return null;
  const snaps = thinPeaks(m.snapshots, POINTS_MAX, (s) => s.ram.remaining);
  const marks = m.attempts.map((a) => ({ xAxis: s3(a.at_ns), name: `#${a.n} ${a.outcome}` }));
  return chart(id, 'remaining-over-time', {
    ...base('Remaining dirty memory over time', `query-migrate snapshots; dashed lines: completion attempts (${m.attempts.length})`),
    tooltip: { trigger: 'axis' },
    xAxis: timeAxis(),
    yAxis: valueAxis('remaining (MiB)'),
    dataZoom: zoom,
    series: [{
      name: 'remaining (MiB)', type: 'line', showSymbol: false, areaStyle: { opacity: 0.15 },
      data: snaps.map((s) => [s3(s.t_ns), mib(s.ram.remaining)]),
      markLine: { symbol: 'none', silent: true, label: { formatter: '{b}', position: 'insideEndTop', fontSize: 10 }, lineStyle: { type: 'dashed' }, data: marks },
    }],
  });
}

function handlerLatency(id: string, r: RunResult): ChartSpec | null {
  if (r.handlers.length === 0) return null;
  const hs = [...r.handlers].sort((a, b) => b.max_ns - a.max_ns || b.p99_ns - a.p99_ns).slice(0, 25).reverse();
  const names = hs.map((h) => `${h.name} (${h.thread})`);
  return chart(id, 'handlers', {
    ...base('Handler latency by name', `p99 and max of each named handler; ${r.slow.length} runs over the threshold`),
    tooltip: { trigger: 'axis', axisPointer: { type: 'shadow' }, valueFormatter: '@us' },
    legend: legend(),
    xAxis: logUsAxis({ name: 'log scale', nameLocation: 'middle', nameGap: 26 }),
    yAxis: { type: 'category', data: names, axisLabel: { fontSize: 11, width: 320, overflow: 'truncate' } },
    series: [
      { name: 'p99', type: 'bar', data: hs.map((h) => logUs(h.p99_ns)) },
      { name: 'max', type: 'bar', data: hs.map((h) => logUs(h.max_ns)) },
    ],
  }, Math.max(300, 110 + hs.length * 30));
}

/** Each thread's longest blocked stretch: the main loop, vCPUs, migration, IOThreads, vhost workers. */
function threadBlocked(id: string, r: RunResult): ChartSpec | null {
  const ts = r.threads ?? [];
  if (ts.length === 0) return null;
  const rows = [...ts].reverse();
  return chart(id, 'threads', {
    ...base('Blocked time per thread', 'the longest time each thread could not run its handlers (a vCPU: its longest stall)'),
    tooltip: { trigger: 'axis', axisPointer: { type: 'shadow' }, valueFormatter: '@us' },
    xAxis: logUsAxis({ name: 'log scale', nameLocation: 'middle', nameGap: 26 }),
    yAxis: { type: 'category', data: rows.map((t) => `${t.name} (${t.kind}, ${t.handlers.length} handlers)`), axisLabel: { fontSize: 11, width: 320, overflow: 'truncate' } },
    series: [{ name: 'blocked max', type: 'bar', data: rows.map((t) => logUs(t.blocked_max_ns)) }],
  }, Math.max(220, 110 + rows.length * 30));
}

/**
 * What blocked the main loop, over time: every handler run over the threshold
 * (any thread: a migration-thread drain holding the BQL blocks the main loop
 * as surely as a slow fd handler), and, when the trace was kept, every
 * main-loop handler run over 1 ms and every BQL wait over 1 ms.
 */
function stallTimeline(id: string, r: RunResult, trace: readonly TraceRecord[] | null | undefined): ChartSpec {
  type Stall = { series: string; at_ns: number; duration_ns: number };
  let stalls: Stall[] = r.slow.map((s) => ({ series: `${s.thread}: ${s.name}`, at_ns: s.at_ns, duration_ns: s.duration_ns }));
  let source = 'handlers over the threshold';
  if (trace && trace.length > 0) {
    const slow = new Set(r.slow.map((s) => `${s.thread}\u0000${s.name}\u0000${s.at_ns}`));
    for (const t of trace) {
      if (t.ph === 'X' && t.thread === 'main-loop' && t.cat !== 'bql' && t.dur >= TIMELINE_MIN_NS && !slow.has(`${t.thread}\u0000${t.name}\u0000${t.ts}`)) {
        stalls.push({ series: `${t.thread}: ${t.name}`, at_ns: t.ts, duration_ns: t.dur });
      } else if (t.ph === 'i' && t.name === 'qemu_mutex_locked' && typeof t.args?.waited_ns === 'number' && t.args.waited_ns >= TIMELINE_MIN_NS) {
        stalls.push({ series: `${t.thread}: BQL wait (${String(t.args.site)})`, at_ns: t.ts - t.args.waited_ns, duration_ns: t.args.waited_ns });
      }
    }
    source = `slow handlers, BQL waits over ${formatNs(TIMELINE_MIN_NS)}`;
  }
  if (stalls.length > TIMELINE_MAX) stalls = [...stalls].sort((a, b) => b.duration_ns - a.duration_ns || a.at_ns - b.at_ns).slice(0, TIMELINE_MAX);
  const bySeries = new Map<string, [number, number][]>();
  for (const h of stalls) {
    const list = bySeries.get(h.series) ?? [];
    list.push([s3(h.at_ns), ms3(h.duration_ns)]);
    bySeries.set(h.series, list);
  }
  const ml = r.main_loop;
  const sub = `blocked at most ${formatNs(ml.blocked_max_ns)} (from ${(ml.blocked_max_at_ns / 1e9).toFixed(3)} s), ` +
    `p99 ${formatNs(ml.blocked_p99_ns)}; ${stalls.length} stalls: ${source}`;
  const top = Math.max(1, ...stalls.map((x) => ms3(x.duration_ns)), ms3(ml.blocked_max_ns));
  return chart(id, 'main-loop', {
    ...base('Main loop blocked: stalls over time', sub),
    tooltip: { trigger: 'item' },
    legend: legend(),
    xAxis: { ...timeAxis(), min: 0, max: s3(r.sim_time_ns) },
    yAxis: valueAxis('duration (ms)', { min: 0, max: Math.ceil(top * 1.1) }),
    dataZoom: zoom,
    series: [
      ...[...bySeries].map(([name, data]) => ({ name, type: 'scatter', symbolSize: 7, data })),
      {
        name: 'main loop blocked max', type: 'line', data: [],
        markLine: { symbol: 'none', silent: true, label: { formatter: 'main loop blocked max {c} ms', position: 'insideEndTop', fontSize: 10 },
          lineStyle: { type: 'dashed' }, data: [{ yAxis: ms3(ml.blocked_max_ns) }] },
      },
    ],
  });
}

function drainIterations(id: string, r: RunResult): ChartSpec | null {
  if (r.drain.length === 0) return null;
  const phases = ['drain', 'flush'] as const;
  return chart(id, 'drain', {
    ...base('bdrv_drain_all / bdrv_flush_all: nested aio_poll under the BQL', `${r.drain.length} aio_poll iterations; each point is one wait`),
    tooltip: { trigger: 'item' },
    legend: legend(),
    xAxis: timeAxis(),
    yAxis: valueAxis('aio_poll wait (ms)'),
    dataZoom: zoom,
    series: phases.map((phase) => ({
      name: `bdrv_${phase}_all`, type: 'scatter', symbolSize: 5,
      data: thinPeaks(r.drain.filter((d) => d.phase === phase), POINTS_MAX, (d) => d.waited_ns).map((d) => [s3(d.at_ns), ms3(d.waited_ns)]),
    })),
  });
}

function bqlWait(id: string, r: RunResult): ChartSpec | null {
  if (r.bql.table.length === 0) return null;
  const rows = [...r.bql.table].sort((a, b) => b.wait_max_ns - a.wait_max_ns || b.hold_max_ns - a.hold_max_ns).slice(0, 30).reverse();
  return chart(id, 'bql', {
    ...base('BQL wait and hold by thread and call site', `wait max ${formatNs(r.bql.wait_max_ns)}, hold max ${formatNs(r.bql.hold_max_ns)}`),
    tooltip: { trigger: 'axis', axisPointer: { type: 'shadow' }, valueFormatter: '@us' },
    legend: legend(),
    xAxis: logUsAxis({ name: 'log scale', nameLocation: 'middle', nameGap: 26 }),
    yAxis: { type: 'category', data: rows.map((b) => `${b.thread}: ${b.site}`), axisLabel: { fontSize: 11, width: 320, overflow: 'truncate' } },
    series: [
      { name: 'wait max', type: 'bar', data: rows.map((b) => logUs(b.wait_max_ns)) },
      { name: 'hold max', type: 'bar', data: rows.map((b) => logUs(b.hold_max_ns)) },
    ],
  }, Math.max(300, 110 + rows.length * 36));
}

function pingRtt(id: string, r: RunResult): ChartSpec | null {
  if (r.series.ping.length === 0) return null;
  const p = r.guest.ping;
  return chart(id, 'ping', {
    ...base('Ping round-trip time', `${p.sent} sent, ${p.lost} lost; p50 ${formatNs(p.rtt_p50_ns)}, p99 ${formatNs(p.rtt_p99_ns)}, max ${formatNs(p.rtt_max_ns)}`),
    tooltip: { trigger: 'axis' },
    xAxis: timeAxis(),
    yAxis: valueAxis('RTT (ms)'),
    dataZoom: zoom,
    series: [{
      name: 'RTT (ms)', type: 'line', symbolSize: 3,
      data: thinPeaks(r.series.ping, POINTS_MAX, (x) => x.rtt_ns).map((x) => [s3(x.t_ns), ms3(x.rtt_ns)]),
      markLine: { symbol: 'none', silent: true, label: { formatter: 'p99 {c} ms', position: 'insideEndTop', fontSize: 10 }, lineStyle: { type: 'dashed' }, data: [{ yAxis: ms3(p.rtt_p99_ns) }] },
    }],
  });
}

function userspaceProgress(id: string, r: RunResult): ChartSpec | null {
  const u = r.guest.userspace;
  const samples = r.series.userspace;
  if (samples.length === 0 && u.gap_max_ns === 0) return null;
  const gapFrom = s3(u.gap_max_at_ns);
  const gapTo = s3(u.gap_max_at_ns + u.gap_max_ns);
  return chart(id, 'userspace', {
    ...base('Guest userspace progress', `${u.progress} quanta; longest gap ${formatNs(u.gap_max_ns)} (shaded, from ${gapFrom.toFixed(3)} s)`),
    tooltip: { trigger: 'axis' },
    xAxis: { ...timeAxis(), min: 0, max: s3(r.sim_time_ns) },
    yAxis: valueAxis('progress (quanta)'),
    dataZoom: zoom,
    series: [{
      name: 'progress', type: 'line', step: 'end', showSymbol: false,
      data: [[0, 0], ...thinSteps(samples, POINTS_MAX, (x) => x.t_ns).map((x) => [s3(x.t_ns), x.progress])],
      markArea: { silent: true, itemStyle: { color: 'rgba(220, 60, 60, 0.12)' }, data: [[{ xAxis: gapFrom }, { xAxis: gapTo }]] },
    }],
  });
}

function downtimePhases(id: string, r: RunResult): ChartSpec | null {
  const m = r.migration;
  if (!m || m.attempts.length === 0) return null;
  return chart(id, 'downtime', {
    ...base('Downtime phases per completion attempt', `downtime ${m.downtime} ms; ${m.completion_attempts} attempts, ${m.rollbacks} rollbacks; policy ${m.policy.join('+')}`),
    tooltip: { trigger: 'axis', axisPointer: { type: 'shadow' } },
    legend: legend(),
    xAxis: { type: 'category', data: m.attempts.map((a) => `#${a.n}\n${a.outcome}`), axisLabel: { interval: 0, lineHeight: 14 } },
    yAxis: valueAxis('ms'),
    series: PHASES.map((ph) => ({
      name: ph.replace('_', ' '), type: 'bar', stack: 'phases',
      data: m.attempts.map((a) => ms3(a.phases[`${ph}_ns`])),
    })),
  });
}

/** The plots of one run, those that have data. */
export function runCharts(r: RunResult, prefix: string, trace?: readonly TraceRecord[] | null): ChartSpec[] {
  const specs = [
    remainingPerIteration(`${prefix}-remaining-iterations`, r),
    remainingOverTime(`${prefix}-remaining-time`, r),
    downtimePhases(`${prefix}-downtime`, r),
    stallTimeline(`${prefix}-main-loop`, r, trace),
    handlerLatency(`${prefix}-handlers`, r),
    threadBlocked(`${prefix}-threads`, r),
    bqlWait(`${prefix}-bql`, r),
    pingRtt(`${prefix}-ping`, r),
    userspaceProgress(`${prefix}-userspace`, r),
    drainIterations(`${prefix}-drain`, r),
  ];
  return specs.filter((s): s is ChartSpec => s !== null);
}

// ---------------------------------------------------------------------------
// Side by side (several runs).


/**
 * Axis labels for runs: one label part (", "-separated) per line; when every
 * label names the same keys (`k=v, k=v, seed n`), only the values, and the
 * keys go into the axis name.
 */
export function runAxisLabels(labels: readonly string[]): { lines: string[][]; keys: string | null } {
  const parts = labels.map((l) => l.split(', '));
  const keyOf = (p: string) => (p.includes('=') ? p.slice(0, p.indexOf('=')) : p.startsWith('seed ') ? 'seed' : null);
  const keys = parts[0]?.map(keyOf) ?? [];
  const same = keys.every((k) => k !== null) && parts.every((ps) => ps.length === keys.length && ps.every((p, i) => keyOf(p) === keys[i]));
  if (!same || labels.length === 0) return { lines: parts, keys: null };
  return { lines: parts.map((ps) => ps.map((p) => (p.includes('=') ? p.slice(p.indexOf('=') + 1) : p))), keys: keys.join(' / ') };
}

function runAxis(labels: readonly string[]): Record<string, unknown> {
  const { lines, keys } = runAxisLabels(labels);
  return {
    type: 'category',
    data: lines.map((l) => l.join('\n')),
    ...(keys ? { name: keys, nameLocation: 'middle', nameGap: 14 * Math.max(...lines.map((l) => l.length)) + 14 } : {}),
    axisLabel: { interval: 0, fontSize: 11, lineHeight: 14, rotate: labels.length > 8 ? 30 : 0 },
  };
}

/** Extra height for a run axis: its label lines and name. */
function runAxisHeight(labels: readonly string[]): number {
  return 14 * Math.max(...labels.map((l) => l.split(', ').length)) + 20 + (labels.length > 8 ? 60 : 0);
}

function compareMetrics(results: readonly RunResult[], labels: readonly string[]): ChartSpec {
  const metrics: [string, (r: RunResult) => number | null][] = [
    ['downtime', (r) => (r.migration?.status === 'completed' ? logUs(r.migration.downtime * 1e6) : null)],
    ['main-loop block max', (r) => logUs(r.main_loop.blocked_max_ns)],
    ['ping RTT p99', (r) => (r.guest.ping.sent > 0 ? logUs(r.guest.ping.rtt_p99_ns) : null)],
    ['userspace gap max', (r) => logUs(r.guest.userspace.gap_max_ns)],
  ];
  const series = metrics.map(([name, f]) => ({ name, type: 'bar', data: results.map(f) }));
  return chart('compare-metrics', 'compare-metrics', {
    ...base('Runs side by side', 'downtime (completed migrations), longest main-loop block, ping RTT p99, longest userspace gap; log scale'),
    tooltip: { trigger: 'axis', axisPointer: { type: 'shadow' }, valueFormatter: '@us' },
    legend: legend(),
    grid: { left: 16, right: 36, top: 96, bottom: 30, containLabel: true },
    xAxis: runAxis(labels),
    yAxis: logUsAxis({ name: 'log scale', nameTextStyle: { align: 'left' } }),
    series,
  }, 360 + runAxisHeight(labels), true);
}

function compareCounts(results: readonly RunResult[], labels: readonly string[]): ChartSpec {
  const metric = (name: string, f: (r: RunResult) => number | null) => ({ name, type: 'bar', data: results.map(f) });
  return chart('compare-counts', 'compare-counts', {
    ...base('Counts side by side', 'completion attempts, rollbacks and lost pings per run'),
    tooltip: { trigger: 'axis', axisPointer: { type: 'shadow' } },
    legend: legend(),
    grid: { left: 16, right: 36, top: 96, bottom: 30, containLabel: true },
    xAxis: runAxis(labels),
    yAxis: { type: 'value', minInterval: 1 },
    series: [
      metric('completion attempts', (r) => r.migration?.completion_attempts ?? null),
      metric('rollbacks', (r) => r.migration?.rollbacks ?? null),
      metric('pings lost', (r) => r.guest.ping.lost),
    ],
  }, 300 + runAxisHeight(labels), true);
}

function compareDowntime(results: readonly RunResult[], labels: readonly string[]): ChartSpec | null {
  if (!results.some((r) => r.migration && r.migration.attempts.length > 0)) return null;
  const total = (r: RunResult, ph: (typeof PHASES)[number]) => ms3((r.migration?.attempts ?? []).reduce((s, a) => s + a.phases[`${ph}_ns`], 0));
  return chart('compare-downtime', 'compare-downtime', {
    ...base('Downtime phases side by side', 'summed over every completion attempt of each run (stopped time the guest felt)'),
    tooltip: { trigger: 'axis', axisPointer: { type: 'shadow' } },
    legend: legend(),
    xAxis: runAxis(labels),
    yAxis: valueAxis('ms'),
    series: PHASES.map((ph) => ({ name: ph.replace('_', ' '), type: 'bar', stack: 'phases', data: results.map((r) => total(r, ph)) })),
  }, 340 + runAxisHeight(labels), true);
}

function overlay(kind: string, title: string, yName: string, results: readonly RunResult[], labels: readonly string[],
  points: (r: RunResult) => [number, number][], step = false): ChartSpec | null {
  const shown = results.slice(0, OVERLAY_MAX);
  const { lines } = runAxisLabels(labels);
  const series = shown.map((r, i) => ({ name: lines[i]!.join(' · '), type: 'line', showSymbol: false, ...(step ? { step: 'end' } : {}), data: points(r) }))
    .filter((s) => s.data.length > 0);
  if (series.length === 0) return null;
  const { keys } = runAxisLabels(labels);
  const runs = results.length > shown.length ? `first ${shown.length} of ${results.length} runs` : `${results.length} runs`;
  const note = keys ? `${runs}; lines named by ${keys.split(' / ').join(' · ')}` : runs;
  return chart(`compare-${kind}`, `compare-${kind}`, {
    ...base(title, note),
    tooltip: { trigger: 'axis' },
    legend: legend(),
    xAxis: timeAxis(),
    yAxis: valueAxis(yName),
    dataZoom: zoom,
    series,
  }, 360);
}

/** The side-by-side plots of several runs. */
export function compareCharts(results: readonly RunResult[], labels: readonly string[]): ChartSpec[] {
  const per = Math.max(200, Math.floor(POINTS_MAX / Math.max(1, Math.min(results.length, OVERLAY_MAX))));
  const specs = [
    compareMetrics(results, labels),
    compareCounts(results, labels),
    compareDowntime(results, labels),
    overlay('remaining', 'Remaining dirty memory over time', 'remaining (MiB)', results, labels,
      (r) => thinPeaks(r.migration?.snapshots ?? [], per, (s) => s.ram.remaining).map((s) => [s3(s.t_ns), mib(s.ram.remaining)])),
    overlay('ping', 'Ping RTT over time', 'RTT (ms)', results, labels,
      (r) => thinPeaks(r.series.ping, per, (x) => x.rtt_ns).map((x) => [s3(x.t_ns), ms3(x.rtt_ns)])),
    overlay('userspace', 'Guest userspace progress', 'progress (quanta)', results, labels,
      (r) => thinSteps(r.series.userspace, per, (x) => x.t_ns).map((x) => [s3(x.t_ns), x.progress]), true),
  ];
  return specs.filter((s): s is ChartSpec => s !== null);
}

// ---------------------------------------------------------------------------
// The page.

function budgetsTable(r: RunResult): string {
  if (r.expect.length === 0) return '<p class="muted">No budgets in this scenario.</p>';
  const fmt = (v: number, unit: string) => (unit === 'ns' ? (v < 0 ? 'never' : formatNs(v)) : String(v));
  const rows = r.expect.map((e) => `<tr class="${e.pass ? 'ok' : 'fail'}"><td>${e.pass ? 'ok' : 'FAIL'}</td><td>${esc(e.name)}</td>` +
    `<td class="num">${esc(fmt(e.value, e.unit))}</td><td class="num">${esc(fmt(e.limit, e.unit))}</td></tr>`).join('');
  return `<table class="budgets"><thead><tr><th></th><th>budget</th><th>value</th><th>limit</th></tr></thead><tbody>${rows}</tbody></table>`;
}

/** The multifd channels: what each carried, and how long the migration thread waited for them at its syncs. */
function multifdTable(r: RunResult): string {
  const m = r.migration;
  const mf = m?.multifd;
  if (!m || !mf) return '';
  const seconds = m['total-time'] / 1e3;
  const rate = (bytes: number) => (seconds > 0 ? `${formatBytes(Math.round(bytes / seconds))}/s` : '-');
  const main = m.ram.transferred - mf.transferred.reduce((a, b) => a + b, 0);
  const row = (name: string, packets: string, bytes: number) =>
    `<tr><td>${esc(name)}</td><td class="num">${packets}</td><td class="num">${esc(formatBytes(bytes))}</td><td class="num">${esc(rate(bytes))}</td></tr>`;
  const rows = [...mf.transferred.map((t, i) => row(`multifd_send_${i}`, String(mf.packets[i]), t)), row('main stream', '-', main)].join('');
  return `<h2>multifd channels</h2><p class="meta">${mf.channels} channels, zero-page-detection ${esc(mf.zero_page_detection)}; ` +
    `${mf.sync_waits} syncs (multifd_send_sync_main), the migration thread waited ${esc(formatNs(mf.sync_wait_total_ns))} in all, ` +
    `${esc(formatNs(mf.sync_wait_max_ns))} at most</p>` +
    `<table class="multifd"><thead><tr><th>stream</th><th>packets</th><th>transferred</th><th>throughput</th></tr></thead><tbody>${rows}</tbody></table>`;
}

/** The chains of causes of each stall and downtime, one list item per distinct chain. */
function attributionList(r: RunResult): string {
  if (r.attribution.length === 0) return '';
  const seen = new Map<string, { text: string; at: number; n: number }>();
  for (const a of r.attribution) {
    const key = `${a.subject}|${a.chain.slice(1).join('|')}`;
    const s = seen.get(key);
    if (s) s.n++;
    else seen.set(key, { text: a.text, at: a.at_ns, n: 1 });
  }
  const items = [...seen.values()].slice(0, 30).map((s) =>
    `<li><span class="muted">${esc(formatNs(s.at))}${s.n > 1 ? ` (and ${s.n - 1} more like it)` : ''}:</span> ${esc(s.text)}</li>`).join('');
  return `<h2>Where the stalls came from</h2><ol class="attribution">${items}</ol>`;
}

function runsTable(results: readonly RunResult[], labels: readonly string[]): string {
  const cell = (ns: number | null) => (ns === null ? '-' : formatNs(ns));
  const rows = results.map((r, i) => {
    const m = r.migration;
    const verdict = r.outcome !== 'ok' ? r.outcome.toUpperCase() : r.pass ? 'ok' : 'FAIL';
    return `<tr class="${r.pass ? 'ok' : 'fail'}"><td>${esc(labels[i]!)}</td><td>${verdict}</td>` +
      `<td class="num">${m && m.status === 'completed' ? formatNs(m.downtime * 1e6) : '-'}</td>` +
      `<td class="num">${cell(r.main_loop.blocked_max_ns)}</td><td class="num">${cell(r.bql.wait_max_ns)}</td>` +
      `<td class="num">${r.guest.ping.sent > 0 ? cell(r.guest.ping.rtt_p99_ns) : '-'}</td><td class="num">${r.guest.ping.lost}</td>` +
      `<td class="num">${r.guest.userspace.progress}</td><td class="num">${cell(r.guest.userspace.gap_max_ns)}</td>` +
      `<td>${m ? esc(m.status) : '-'}</td><td class="num">${m ? m.completion_attempts : '-'}</td><td class="num">${m ? m.rollbacks : '-'}</td></tr>`;
  }).join('');
  return '<table class="runs"><thead><tr><th>run</th><th>result</th><th>downtime</th><th>main loop max</th><th>BQL wait max</th>' +
    '<th>ping p99</th><th>lost</th><th>progress</th><th>gap max</th><th>migration</th><th>attempts</th><th>rollbacks</th></tr></thead>' +
    `<tbody>${rows}</tbody></table>`;
}

function chartDivs(specs: readonly ChartSpec[]): string {
  return `<div class="charts">${specs.map((s) =>
    `<div class="chart${s.wide ? ' wide' : ''}" id="${esc(s.id)}" data-chart="${esc(s.kind)}" style="height:${s.height}px"></div>`).join('')}</div>`;
}

function runHeader(r: RunResult): string {
  const verdict = r.outcome !== 'ok' ? r.outcome.toUpperCase() : r.pass ? 'all budgets held' : 'a budget failed';
  return `<p class="meta"><span class="badge ${r.pass ? 'ok' : 'fail'}">${esc(verdict)}</span> ` +
    `${esc(r.file)} · seed ${r.seed} · simulated ${esc(formatNs(r.sim_time_ns))} · ${r.events} events · ` +
    `trace <code>${esc(r.trace_sha256.slice(0, 16))}</code></p>` +
    (r.error ? `<p class="error">${esc(r.error)}</p>` : '');
}

const STYLE = `
:root { color-scheme: light; --fg: #1d2330; --muted: #5d6677; --line: #dde2ea; --ok: #1f7a3a; --fail: #b42318; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: #f6f7f9; }
main { max-width: 1320px; margin: 0 auto; padding: 20px 24px 48px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 32px 0 8px; padding-top: 8px; border-top: 1px solid var(--line); }
.meta { color: var(--muted); margin: 4px 0 12px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; color: #fff; font-weight: 600; font-size: 12px; }
.badge.ok { background: var(--ok); } .badge.fail { background: var(--fail); }
.error { color: var(--fail); font-weight: 600; }
.muted { color: var(--muted); }
.hint { color: var(--muted); font-size: 12px; margin: 0 0 8px; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 14px; }
.chart { background: #fff; border: 1px solid var(--line); border-radius: 6px; min-width: 0; }
.chart.wide { grid-column: 1 / -1; }
table { border-collapse: collapse; background: #fff; margin: 8px 0 16px; font-size: 13px; }
th, td { border: 1px solid var(--line); padding: 3px 8px; text-align: left; }
th { background: #eef1f5; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.fail td:first-child, tr.fail td:nth-child(2) { color: var(--fail); font-weight: 600; }
tr.ok td:first-child { color: var(--ok); }
table.runs tr.ok td:first-child { color: inherit; }
pre { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 12px; overflow-x: auto; font-size: 12px; line-height: 1.4; }
details > summary { cursor: pointer; color: var(--muted); margin: 8px 0; }
`;

const INIT = `
(function () {
  // Options are JSON; '@us' stands for this formatter of microseconds.
  function us(v) {
    if (typeof v !== 'number' || !isFinite(v)) return '-';
    var a = Math.abs(v);
    if (a >= 1e6) return +(v / 1e6).toPrecision(3) + ' s';
    if (a >= 1e3) return +(v / 1e3).toPrecision(3) + ' ms';
    return +v.toPrecision(3) + ' us';
  }
  function hook(o) {
    if (!o || typeof o !== 'object') return;
    for (var k in o) {
      if (o[k] === '@us') o[k] = us;
      else hook(o[k]);
    }
  }
  var specs = JSON.parse(document.getElementById('latsim-charts').textContent);
  hook(specs);
  var charts = [];
  specs.forEach(function (s) {
    var el = document.getElementById(s.id);
    var c = echarts.init(el, null, { renderer: 'canvas' });
    c.setOption(s.option);
    el.setAttribute('data-rendered', 'true');
    charts.push(c);
  });
  window.addEventListener('resize', function () { charts.forEach(function (c) { c.resize(); }); });
  window.__latsimChartsReady = true;
})();
`;

/** The report of one run, or of several side by side (a sweep), as one HTML page. */
export function htmlReport(results: readonly RunResult[], options: HtmlOptions = {}): string {
  const labels = results.map((r, i) => options.labels?.[i] ?? (results.length > 1 ? `${r.scenario} seed ${r.seed}` : r.scenario));
  const title = options.title ?? (results.length === 1 ? `latsim: ${results[0]!.scenario}` : `latsim: ${results.length} runs`);
  const specs: ChartSpec[] = [];
  const body: string[] = [`<h1>${esc(title)}</h1>`, '<p class="hint">Hover a plot for values; scroll or drag inside a time plot to zoom.</p>'];
  if (results.length === 0) {
    body.push('<p class="muted">No runs to show.</p>');
  } else if (results.length === 1) {
    const r = results[0]!;
    const charts = runCharts(r, 'run0', options.traces?.[0]);
    specs.push(...charts);
    body.push(runHeader(r), budgetsTable(r), multifdTable(r), attributionList(r), chartDivs(charts),
      '<h2>Text summary</h2>', `<pre class="summary">${esc(textReport(r))}</pre>`);
  } else {
    const passed = results.filter((r) => r.pass).length;
    body.push(`<p class="meta">${results.length} runs of ${esc(results[0]!.file)}: ${passed} passed, ${results.length - passed} failed</p>`);
    const compare = compareCharts(results, labels);
    specs.push(...compare);
    body.push(runsTable(results, labels), chartDivs(compare));
    const detail = Math.min(results.length, options.maxDetailRuns ?? 6);
    for (let i = 0; i < detail; i++) {
      const r = results[i]!;
      const charts = runCharts(r, `run${i}`, options.traces?.[i]);
      specs.push(...charts);
      body.push(`<h2>${esc(labels[i]!)}</h2>`, runHeader(r), budgetsTable(r), multifdTable(r), attributionList(r), chartDivs(charts),
        `<details><summary>text summary</summary><pre class="summary">${esc(textReport(r))}</pre></details>`);
    }
    if (detail < results.length) body.push(`<p class="muted">${results.length - detail} more runs are in the table and the side-by-side plots only.</p>`);
  }
  const data = JSON.stringify(specs.map((s) => ({ id: s.id, option: s.option }))).replace(/</g, '\\u003c');
  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${esc(title)}</title>`,
    `<style>${STYLE}</style>`,
    '</head><body><main>',
    ...body,
    '</main>',
    `<script type="application/json" id="latsim-charts">${data}</script>`,
    `<script>${echartsScript()}</script>`,
    `<script>${INIT}</script>`,
    '</body></html>',
    '',
  ].join('\n');
}
