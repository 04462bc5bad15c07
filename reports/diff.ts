// The difference between two runs of latsim: the first divergent event (from
// the Perfetto traces when both sides have one, else from the time-ordered
// records a result keeps: slow handlers, migration transitions, dirty-bitmap
// syncs, completion attempts, drain iterations), per-handler latency deltas
// matched by thread and name, BQL, main-loop, migration (downtime and its
// phases), guest and budget deltas, and a one-line verdict. Only what changed
// is listed: the diff of two identical runs has no deltas at all.
// Leaves out: reading files (cli/commands/diff.ts does) and the critical-path
// attribution, which is compared only through the metrics it explains.
import type { RunResult } from '../sim/results.ts';
import { Histogram } from '../sim/instrument/histogram.ts';
import { formatBytes, formatNs } from '../sim/instrument/format.ts';

/** A result as `latsim run --json` prints it (extra fields are ignored). */
export type ResultJson = Omit<RunResult, 'series'>;

/** A Chrome trace-event file as `latsim run --trace` writes it. */
export interface TraceJson {
  traceEvents: Record<string, unknown>[];
  metadata?: Record<string, unknown>;
}

/** One side of a diff: a result, a trace, or both (a --report directory). */
export interface RunInput {
  readonly file: string;
  readonly result: ResultJson | null;
  readonly trace: TraceJson | null;
}

export interface Delta {
  a: number;
  b: number;
  delta: number;
}

export interface Change<T> {
  a: T;
  b: T;
}

interface HandlerStats {
  count: number;
  p50_ns: number;
  p99_ns: number;
  max_ns: number;
}

export interface HandlerDelta {
  thread: string;
  name: string;
  kind: string;
  change: 'changed' | 'added' | 'removed';
  a: HandlerStats | null;
  b: HandlerStats | null;
  delta: HandlerStats;
}

/** One event of a run, as shown around the first divergence. */
export interface EventView {
  index: number;
  t_ns: number;
  text: string;
}

export interface Divergence {
  /** trace: the Perfetto event streams; result: the records a result keeps. */
  source: 'trace' | 'result';
  index: number;
  t_ns: number;
  before: EventView[];
  a: EventView | null;
  b: EventView | null;
  trace_sha256: Change<string> | null;
  note: string;
}

export interface BudgetChange {
  name: string;
  unit: 'ns' | 'count';
  a: { value: number; pass: boolean } | null;
  b: { value: number; pass: boolean } | null;
}

export interface RunDiff {
  identical: boolean;
  a: { file: string; scenario: string; seed: number | null; trace_sha256: string | null };
  b: { file: string; scenario: string; seed: number | null; trace_sha256: string | null };
  outcome: Change<string> | null;
  first_divergence: Divergence | null;
  handlers: HandlerDelta[];
  /** null when a side has no such data (a trace has no main-loop or guest table). */
  bql: Record<string, unknown> | null;
  main_loop: Record<string, Delta> | null;
  migration: Record<string, unknown> | null;
  guest: Record<string, Delta> | null;
  budgets: BudgetChange[];
  verdict: string;
}

const CONTEXT_EVENTS = 5;

/** Compares two runs. */
export function diffRuns(a: RunInput, b: RunInput): RunDiff {
  const ra = a.result;
  const rb = b.result;
  const shaA = ra?.trace_sha256 ?? traceSha(a.trace);
  const shaB = rb?.trace_sha256 ?? traceSha(b.trace);

  let divergence: Divergence | null = null;
  if (a.trace && b.trace) divergence = traceDivergence(a.trace, b.trace, shaA, shaB);
  else if (ra && rb) divergence = resultDivergence(ra, rb);

  const handlers = ra && rb ? handlerDeltas(ra.handlers, rb.handlers)
    : handlerDeltas(traceHandlers(a.trace!), traceHandlers(b.trace!));
  const bql = ra && rb ? bqlDelta(ra, rb) : traceBqlDelta(a.trace!, b.trace!);
  const mainLoop = ra && rb ? mainLoopDelta(ra, rb) : null;
  const migration = ra && rb ? migrationDelta(ra, rb) : traceMigrationDelta(a.trace!, b.trace!);
  const guest = ra && rb ? guestDelta(ra, rb) : null;
  const budgets = ra && rb ? budgetChanges(ra, rb) : [];
  const outcome = ra && rb && ra.outcome !== rb.outcome ? { a: ra.outcome, b: rb.outcome } : null;

  const empty = (o: Record<string, unknown> | null) => o === null || Object.keys(o).length === 0;
  const sameSha = shaA !== null && shaA === shaB;
  const noDeltas = handlers.length === 0 && empty(bql) && empty(mainLoop) && empty(migration) && empty(guest) &&
    budgets.length === 0 && outcome === null;
  const identical = noDeltas && divergence === null && (sameSha || (shaA === null && shaB === null));
  const d: RunDiff = {
    identical,
    a: side(a, shaA),
    b: side(b, shaB),
    outcome,
    first_divergence: divergence,
    handlers,
    bql,
    main_loop: mainLoop,
    migration,
    guest,
    budgets,
    verdict: '',
  };
  d.verdict = identical ? 'identical' : verdictOf(d, ra, rb);
  return d;
}

function side(s: RunInput, sha: string | null): RunDiff['a'] {
  const meta = s.trace?.metadata ?? {};
  return {
    file: s.file,
    scenario: s.result?.scenario ?? String(meta['latsim-scenario'] ?? ''),
    seed: s.result?.seed ?? (typeof meta['latsim-seed'] === 'number' ? meta['latsim-seed'] : null),
    trace_sha256: sha,
  };
}

function traceSha(t: TraceJson | null): string | null {
  const v = t?.metadata?.['latsim-trace-sha256'];
  return typeof v === 'string' ? v : null;
}

function delta(a: number, b: number): Delta {
  return { a, b, delta: b - a };
}

/** Sets out[key] to the delta of a and b when they differ. */
function put(out: Record<string, unknown>, key: string, a: number, b: number): void {
  if (a !== b) out[key] = delta(a, b);
}

// ---- first divergence -------------------------------------------------------

function firstDifference(ea: EventView[], eb: EventView[]): number {
  const n = Math.min(ea.length, eb.length);
  for (let i = 0; i < n; i++) if (ea[i]!.text !== eb[i]!.text || ea[i]!.t_ns !== eb[i]!.t_ns) return i;
  return ea.length === eb.length ? -1 : n;
}

function divergenceAt(source: Divergence['source'], ea: EventView[], eb: EventView[], i: number, sha: Change<string> | null, note: string): Divergence {
  const ev = ea[i] ?? null;
  const evb = eb[i] ?? null;
  return {
    source,
    index: i,
    t_ns: Math.min(ev?.t_ns ?? Infinity, evb?.t_ns ?? Infinity),
    before: ea.slice(Math.max(0, i - CONTEXT_EVENTS), i),
    a: ev,
    b: evb,
    trace_sha256: sha,
    note,
  };
}

/** The Perfetto event streams, metadata left out, threads by name rather than tid. */
export function traceEventViews(t: TraceJson): EventView[] {
  const threads = new Map<unknown, string>();
  for (const e of t.traceEvents) {
    if (e.ph === 'M' && e.name === 'thread_name') threads.set(e.tid, String((e.args as { name?: unknown } | undefined)?.name));
  }
  const out: EventView[] = [];
  for (const e of t.traceEvents) {
    if (e.ph === 'M') continue;
    const tNs = Math.round(Number(e.ts ?? 0) * 1000);
    const thread = e.tid === undefined ? '' : ` ${threads.get(e.tid) ?? `tid ${String(e.tid)}`}`;
    const dur = e.dur === undefined ? '' : ` ${formatNs(Math.round(Number(e.dur) * 1000))}`;
    const cat = e.cat === undefined ? '' : ` [${String(e.cat)}]`;
    const args = e.args === undefined ? '' : ` ${formatArgs(e.args as Record<string, unknown>)}`;
    const id = e.id === undefined ? '' : ` #${String(e.id)}`;
    out.push({ index: out.length, t_ns: tNs, text: `${String(e.ph)}${thread} ${String(e.name)}${cat}${dur}${id}${args}` });
  }
  return out;
}

function formatArgs(args: Record<string, unknown>): string {
  return Object.keys(args).map((k) => `${k}=${typeof args[k] === 'object' ? JSON.stringify(args[k]) : String(args[k])}`).join(' ');
}

function traceDivergence(a: TraceJson, b: TraceJson, shaA: string | null, shaB: string | null): Divergence | null {
  const ea = traceEventViews(a);
  const eb = traceEventViews(b);
  const i = firstDifference(ea, eb);
  const sha = shaA !== null && shaB !== null && shaA !== shaB ? { a: shaA, b: shaB } : null;
  if (i < 0) {
    if (!sha) return null;
    return { source: 'trace', index: -1, t_ns: 0, before: [], a: null, b: null, trace_sha256: sha, note: 'the trace events agree but the fingerprints differ (records the Perfetto export leaves out)' };
  }
  const note = i >= ea.length ? 'A ends here; B goes on' : i >= eb.length ? 'B ends here; A goes on' : 'first event that differs';
  return divergenceAt('trace', ea, eb, i, sha, note);
}

/** The time-ordered records a result keeps, as events. */
export function resultEventViews(r: ResultJson): EventView[] {
  const ev: { t_ns: number; order: number; text: string }[] = [];
  const add = (t_ns: number, text: string) => ev.push({ t_ns, order: ev.length, text });
  for (const s of r.slow) add(s.at_ns, `slow ${s.kind}: ${s.name} ${formatNs(s.duration_ns)} on ${s.thread} (${s.waited_on})`);
  for (const d of r.drain) add(d.at_ns, `bdrv_${d.phase}_all aio_poll ${d.n}: ${formatNs(d.elapsed_ns)} rfd ${d.rfd} wfd ${d.wfd}, ${d.in_flight} in flight`);
  const m = r.migration;
  if (m) {
    for (const t of m.transitions) add(t.t_ns, `migrate_set_state ${t.from} -> ${t.to}`);
    for (const s of m.iterations) {
      add(s.at_ns, `migration_bitmap_sync ${s.n}: ${s.new_dirty} new dirty, ${s.dirty_pages} dirty pages, remaining ${formatBytes(s.remaining_bytes)}`);
    }
    for (const at of m.attempts) add(at.at_ns, `completion attempt ${at.n}: ${at.outcome}${at.reason ? ` (${at.reason})` : ''} after ${formatNs(at.downtime_ns)}`);
  }
  add(r.sim_time_ns, `run_end ${r.outcome}${r.error ? `: ${r.error}` : ''}`);
  ev.sort((x, y) => x.t_ns - y.t_ns || x.order - y.order);
  return ev.map((e, index) => ({ index, t_ns: e.t_ns, text: e.text }));
}

function resultDivergence(a: ResultJson, b: ResultJson): Divergence | null {
  if (a.trace_sha256 === b.trace_sha256) return null;
  const sha = { a: a.trace_sha256, b: b.trace_sha256 };
  const ea = resultEventViews(a);
  const eb = resultEventViews(b);
  const i = firstDifference(ea, eb);
  if (i < 0) {
    return {
      source: 'result', index: -1, t_ns: 0, before: [], a: null, b: null, trace_sha256: sha,
      note: 'traces differ, but the records kept in the results agree; diff the --trace files for the first divergent event',
    };
  }
  return divergenceAt('result', ea, eb, i, sha, 'traces differ; first differing record kept in the results (diff the --trace files for every event)');
}

// ---- handlers ---------------------------------------------------------------

type HandlerRow = { name: string; kind: string; thread: string } & HandlerStats;

function handlerDeltas(a: readonly HandlerRow[], b: readonly HandlerRow[]): HandlerDelta[] {
  const key = (h: HandlerRow) => `${h.thread}\u0000${h.name}`;
  const mb = new Map(b.map((h) => [key(h), h]));
  const ma = new Map(a.map((h) => [key(h), h]));
  const stats = (h: HandlerRow): HandlerStats => ({ count: h.count, p50_ns: h.p50_ns, p99_ns: h.p99_ns, max_ns: h.max_ns });
  const zero: HandlerStats = { count: 0, p50_ns: 0, p99_ns: 0, max_ns: 0 };
  const sub = (x: HandlerStats, y: HandlerStats): HandlerStats => ({
    count: x.count - y.count, p50_ns: x.p50_ns - y.p50_ns, p99_ns: x.p99_ns - y.p99_ns, max_ns: x.max_ns - y.max_ns,
  });
  const out: HandlerDelta[] = [];
  for (const h of a) {
    const o = mb.get(key(h));
    if (!o) {
      out.push({ thread: h.thread, name: h.name, kind: h.kind, change: 'removed', a: stats(h), b: null, delta: sub(zero, stats(h)) });
      continue;
    }
    const dd = sub(stats(o), stats(h));
    if (dd.count !== 0 || dd.p50_ns !== 0 || dd.p99_ns !== 0 || dd.max_ns !== 0) {
      out.push({ thread: h.thread, name: h.name, kind: h.kind, change: 'changed', a: stats(h), b: stats(o), delta: dd });
    }
  }
  for (const h of b) {
    if (!ma.has(key(h))) out.push({ thread: h.thread, name: h.name, kind: h.kind, change: 'added', a: null, b: stats(h), delta: stats(h) });
  }
  return out.sort((x, y) => Math.abs(y.delta.max_ns) - Math.abs(x.delta.max_ns) || cmp(x.thread, y.thread) || cmp(x.name, y.name));
}

/** Slices that are not handlers: BQL holds, and the zero-length kick markers. */
const NON_HANDLER_CATS = new Set(['bql', 'kick']);

/** Per-handler latency recomputed from a trace's complete slices. */
function traceHandlers(t: TraceJson): HandlerRow[] {
  const threads = threadNames(t);
  const groups = new Map<string, { name: string; kind: string; thread: string; hist: Histogram }>();
  for (const e of t.traceEvents) {
    if (e.ph !== 'X' || NON_HANDLER_CATS.has(String(e.cat))) continue;
    const thread = threads.get(e.tid) ?? `tid ${String(e.tid)}`;
    const k = `${thread}\u0000${String(e.name)}`;
    let g = groups.get(k);
    if (!g) {
      g = { name: String(e.name), kind: String(e.cat), thread, hist: new Histogram() };
      groups.set(k, g);
    }
    g.hist.record(Math.round(Number(e.dur) * 1000));
  }
  return [...groups.values()].map((g) => ({
    name: g.name, kind: g.kind, thread: g.thread, count: g.hist.count,
    p50_ns: g.hist.quantile(0.5), p99_ns: g.hist.quantile(0.99), max_ns: g.hist.maxNs,
  }));
}

function threadNames(t: TraceJson): Map<unknown, string> {
  const m = new Map<unknown, string>();
  for (const e of t.traceEvents) {
    if (e.ph === 'M' && e.name === 'thread_name') m.set(e.tid, String((e.args as { name?: unknown } | undefined)?.name));
  }
  return m;
}

// ---- BQL, main loop, migration, guest, budgets --------------------------------

function bqlDelta(a: ResultJson, b: ResultJson): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  put(out, 'wait_max_ns', a.bql.wait_max_ns, b.bql.wait_max_ns);
  put(out, 'hold_max_ns', a.bql.hold_max_ns, b.bql.hold_max_ns);
  const key = (s: { thread: string; site: string }) => `${s.thread}\u0000${s.site}`;
  const mb = new Map(b.bql.table.map((s) => [key(s), s]));
  const ma = new Map(a.bql.table.map((s) => [key(s), s]));
  const fields = ['waits', 'wait_max_ns', 'wait_total_ns', 'holds', 'hold_max_ns', 'hold_total_ns'] as const;
  const rows: Record<string, unknown>[] = [];
  const zero = { waits: 0, wait_max_ns: 0, wait_total_ns: 0, holds: 0, hold_max_ns: 0, hold_total_ns: 0 };
  for (const s of a.bql.table) {
    const o = mb.get(key(s));
    const row: Record<string, unknown> = {};
    for (const f of fields) put(row, f, s[f], (o ?? zero)[f]);
    if (Object.keys(row).length > 0) rows.push({ thread: s.thread, site: s.site, change: o ? 'changed' : 'removed', ...row });
  }
  for (const s of b.bql.table) {
    if (ma.has(key(s))) continue;
    const row: Record<string, unknown> = {};
    for (const f of fields) put(row, f, 0, s[f]);
    rows.push({ thread: s.thread, site: s.site, change: 'added', ...row });
  }
  if (rows.length > 0) out.table = rows;
  return out;
}

function traceBqlDelta(a: TraceJson, b: TraceJson): Record<string, unknown> {
  const holdMax = (t: TraceJson) => {
    let max = 0;
    for (const e of t.traceEvents) if (e.ph === 'X' && e.cat === 'bql') max = Math.max(max, Math.round(Number(e.dur) * 1000));
    return max;
  };
  const out: Record<string, unknown> = {};
  put(out, 'hold_max_ns', holdMax(a), holdMax(b));
  return out;
}

function mainLoopDelta(a: ResultJson, b: ResultJson): Record<string, Delta> {
  const out: Record<string, Delta> = {};
  put(out, 'blocked_max_ns', a.main_loop.blocked_max_ns, b.main_loop.blocked_max_ns);
  put(out, 'blocked_p99_ns', a.main_loop.blocked_p99_ns, b.main_loop.blocked_p99_ns);
  put(out, 'iterations', a.main_loop.iterations, b.main_loop.iterations);
  return out;
}

const PHASES = ['stop', 'drain', 'flush', 'final_ram', 'device_state', 'resume'] as const;

function migrationDelta(a: ResultJson, b: ResultJson): Record<string, unknown> {
  const ma = a.migration;
  const mb = b.migration;
  const out: Record<string, unknown> = {};
  if (!ma || !mb) {
    if (ma || mb) out.present = { a: Boolean(ma), b: Boolean(mb) };
    return out;
  }
  const ms = 1e6;
  if (ma.status !== mb.status) out.status = { a: ma.status, b: mb.status };
  put(out, 'downtime_ns', ma.downtime * ms, mb.downtime * ms);
  const pa = ma.downtime_phases;
  const pb = mb.downtime_phases;
  if (pa || pb) {
    const phases: Record<string, Delta> = {};
    for (const p of PHASES) put(phases, p, (pa?.[p] ?? 0) * ms, (pb?.[p] ?? 0) * ms);
    if (Object.keys(phases).length > 0) out.downtime_phases_ns = phases;
  }
  put(out, 'total_time_ns', ma['total-time'] * ms, mb['total-time'] * ms);
  put(out, 'expected_downtime_ns', ma['expected-downtime'] * ms, mb['expected-downtime'] * ms);
  put(out, 'completion_attempts', ma.completion_attempts, mb.completion_attempts);
  put(out, 'rollbacks', ma.rollbacks, mb.rollbacks);
  put(out, 'dirty_sync_count', ma.ram['dirty-sync-count'], mb.ram['dirty-sync-count']);
  put(out, 'transferred_bytes', ma.ram.transferred, mb.ram.transferred);
  put(out, 'cpu_throttle_percentage', ma.cpu_throttle_percentage, mb.cpu_throttle_percentage);
  if (ma.verified !== mb.verified) out.verified = { a: ma.verified, b: mb.verified };
  if (ma.fail_reason !== mb.fail_reason) out.fail_reason = { a: ma.fail_reason, b: mb.fail_reason };
  return out;
}

/** From a trace, only the final MigrationStatus is known. */
function traceMigrationDelta(a: TraceJson, b: TraceJson): Record<string, unknown> {
  const last = (t: TraceJson) => {
    let s: string | null = null;
    for (const e of t.traceEvents) {
      if (e.ph === 'i' && e.name === 'migrate_set_state') s = String((e.args as { new_state?: unknown } | undefined)?.new_state);
    }
    return s;
  };
  const sa = last(a);
  const sb = last(b);
  return sa === sb ? {} : { status: { a: sa ?? 'none', b: sb ?? 'none' } };
}

function guestDelta(a: ResultJson, b: ResultJson): Record<string, Delta> {
  const out: Record<string, Delta> = {};
  const ga = a.guest;
  const gb = b.guest;
  put(out, 'ping_sent', ga.ping.sent, gb.ping.sent);
  put(out, 'ping_answered', ga.ping.answered, gb.ping.answered);
  put(out, 'ping_lost', ga.ping.lost, gb.ping.lost);
  put(out, 'ping_rtt_p50_ns', ga.ping.rtt_p50_ns, gb.ping.rtt_p50_ns);
  put(out, 'ping_rtt_p99_ns', ga.ping.rtt_p99_ns, gb.ping.rtt_p99_ns);
  put(out, 'ping_rtt_max_ns', ga.ping.rtt_max_ns, gb.ping.rtt_max_ns);
  put(out, 'userspace_progress', ga.userspace.progress, gb.userspace.progress);
  put(out, 'userspace_gap_max_ns', ga.userspace.gap_max_ns, gb.userspace.gap_max_ns);
  put(out, 'vcpu_stall_max_ns', ga.vcpu_stall_max_ns, gb.vcpu_stall_max_ns);
  return out;
}

function budgetChanges(a: ResultJson, b: ResultJson): BudgetChange[] {
  const mb = new Map(b.expect.map((e) => [e.name, e]));
  const ma = new Map(a.expect.map((e) => [e.name, e]));
  const out: BudgetChange[] = [];
  for (const e of a.expect) {
    const o = mb.get(e.name);
    if (!o || o.value !== e.value || o.pass !== e.pass) {
      out.push({ name: e.name, unit: e.unit, a: { value: e.value, pass: e.pass }, b: o ? { value: o.value, pass: o.pass } : null });
    }
  }
  for (const e of b.expect) if (!ma.has(e.name)) out.push({ name: e.name, unit: e.unit, a: null, b: { value: e.value, pass: e.pass } });
  return out;
}

// ---- verdict ----------------------------------------------------------------

interface Signal {
  /** +1: B is worse; -1: B is better. */
  dir: 1 | -1;
  /** Rank: categorical changes first, then by size. */
  weight: number;
  text: string;
}

/** A change of a duration that matters: at least 1 ms and 1% of the larger side. */
function significantNs(a: number, b: number): boolean {
  const d = Math.abs(b - a);
  return d >= 1e6 && d >= 0.01 * Math.max(Math.abs(a), Math.abs(b));
}

function significantCount(a: number, b: number): boolean {
  const d = Math.abs(b - a);
  return d >= 1 && d >= 0.01 * Math.max(Math.abs(a), Math.abs(b));
}

const signedNs = (ns: number) => `${ns >= 0 ? '+' : '-'}${formatNs(Math.abs(ns))}`;
const signed = (n: number) => `${n >= 0 ? '+' : ''}${n}`;

function verdictOf(d: RunDiff, ra: ResultJson | null, rb: ResultJson | null): string {
  const signals: Signal[] = [];
  const CATEGORICAL = 1e18;
  if (ra && rb) {
    if (d.outcome) {
      const worse = d.outcome.a === 'ok';
      signals.push({ dir: worse ? 1 : -1, weight: CATEGORICAL * 4, text: worse ? `${d.outcome.b}: ${rb.error ?? ''}`.trim() : `no longer ${d.outcome.a}` });
    }
    const newlyFailed = d.budgets.filter((x) => x.b && !x.b.pass && (x.a?.pass ?? true)).map((x) => x.name);
    const newlyPassed = d.budgets.filter((x) => x.a && !x.a.pass && (x.b?.pass ?? true)).map((x) => x.name);
    if (newlyFailed.length > 0) signals.push({ dir: 1, weight: CATEGORICAL * 3, text: `budget${newlyFailed.length > 1 ? 's' : ''} ${newlyFailed.join(', ')} fail${newlyFailed.length > 1 ? '' : 's'}` });
    if (newlyPassed.length > 0) signals.push({ dir: -1, weight: CATEGORICAL * 3, text: `budget${newlyPassed.length > 1 ? 's' : ''} ${newlyPassed.join(', ')} now hold${newlyPassed.length > 1 ? '' : 's'}` });
    const ma = ra.migration;
    const mb = rb.migration;
    if (ma && mb && ma.status !== mb.status) {
      const worse = ma.status === 'completed';
      signals.push({ dir: worse ? 1 : -1, weight: CATEGORICAL * 2, text: `migration ${mb.status} (was ${ma.status})` });
    }
    // Equal changes rank causes over consequences: downtime, then the main loop, then the rest.
    const ns = (label: string, a: number, b: number, higherIsWorse = true, suffix = '', rank = 1) => {
      if (!significantNs(a, b)) return;
      const worse = (b > a) === higherIsWorse;
      signals.push({ dir: worse ? 1 : -1, weight: Math.abs(b - a) * rank, text: `${label} ${signedNs(b - a)}${suffix}` });
    };
    const count = (label: string, a: number, b: number, higherIsWorse: boolean, nsPerUnit: number) => {
      if (!significantCount(a, b)) return;
      const worse = (b > a) === higherIsWorse;
      signals.push({ dir: worse ? 1 : -1, weight: Math.abs(b - a) * nsPerUnit, text: `${label} ${signed(b - a)}` });
    };
    if (ma && mb && ma.status === 'completed' && mb.status === 'completed') {
      let phase = '';
      let phaseDelta = 0;
      for (const p of PHASES) {
        const x = ((mb.downtime_phases?.[p] ?? 0) - (ma.downtime_phases?.[p] ?? 0)) * 1e6;
        if (Math.abs(x) > Math.abs(phaseDelta)) {
          phaseDelta = x;
          phase = p;
        }
      }
      ns('downtime', ma.downtime * 1e6, mb.downtime * 1e6, true, phase && Math.sign(phaseDelta) === Math.sign(mb.downtime - ma.downtime) ? ` (${phase})` : '', 1.5);
      ns('migration time', ma['total-time'] * 1e6, mb['total-time'] * 1e6);
    }
    ns('main loop blocked', ra.main_loop.blocked_max_ns, rb.main_loop.blocked_max_ns, true, '', 1.2);
    ns('BQL wait', ra.bql.wait_max_ns, rb.bql.wait_max_ns);
    ns('BQL hold', ra.bql.hold_max_ns, rb.bql.hold_max_ns);
    ns('vCPU stall', ra.guest.vcpu_stall_max_ns, rb.guest.vcpu_stall_max_ns);
    ns('userspace gap', ra.guest.userspace.gap_max_ns, rb.guest.userspace.gap_max_ns);
    ns('ping rtt p99', ra.guest.ping.rtt_p99_ns, rb.guest.ping.rtt_p99_ns);
    count('pings lost', ra.guest.ping.lost, rb.guest.ping.lost, true, 1e8);
    count('userspace progress', ra.guest.userspace.progress, rb.guest.userspace.progress, false, 1e6);
  }
  const top = d.handlers.find((h) => h.change === 'changed' && significantNs(h.a!.max_ns, h.b!.max_ns));
  if (top) {
    signals.push({ dir: top.delta.max_ns > 0 ? 1 : -1, weight: Math.abs(top.delta.max_ns) / 2, text: `handler ${top.name} max ${signedNs(top.delta.max_ns)}` });
  }
  if (!ra || !rb) {
    const st = d.migration?.status as Change<string> | undefined;
    if (st) signals.push({ dir: st.a === 'completed' ? 1 : -1, weight: CATEGORICAL, text: `migration ${st.b} (was ${st.a})` });
    const hold = d.bql?.hold_max_ns as Delta | undefined;
    if (hold && significantNs(hold.a, hold.b)) signals.push({ dir: hold.delta > 0 ? 1 : -1, weight: Math.abs(hold.delta), text: `BQL hold ${signedNs(hold.delta)}` });
  }
  signals.sort((x, y) => y.weight - x.weight);
  const worse = signals.filter((s) => s.dir > 0).slice(0, 3).map((s) => s.text);
  const better = signals.filter((s) => s.dir < 0).slice(0, 3).map((s) => s.text);
  if (worse.length === 0 && better.length === 0) {
    return 'B differs, but no metric moved by 1 ms and 1% or more';
  }
  if (better.length === 0) return `B is worse: ${worse.join(', ')}`;
  if (worse.length === 0) return `B is better: ${better.join(', ')}`;
  return signals[0]!.dir > 0
    ? `B is mostly worse: ${worse.join(', ')}; better: ${better.join(', ')}`
    : `B is mostly better: ${better.join(', ')}; worse: ${worse.join(', ')}`;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// ---- text -------------------------------------------------------------------

const sec = (ns: number) => `${(ns / 1e9).toFixed(6)} s`;

function fmtDelta(dd: Delta, unit: 'ns' | 'count' | 'bytes'): string {
  const f = unit === 'ns' ? formatNs : unit === 'bytes' ? formatBytes : String;
  const sgn = unit === 'ns' ? signedNs(dd.delta) : unit === 'bytes' ? `${dd.delta >= 0 ? '+' : '-'}${formatBytes(Math.abs(dd.delta))}` : signed(dd.delta);
  return `${f(dd.a)} -> ${f(dd.b)} (${sgn})`;
}

function fields(o: Record<string, unknown>, names: Record<string, string>, unitOf?: 'ns'): string[] {
  const out: string[] = [];
  for (const [k, label] of Object.entries(names)) {
    const v = o[k];
    if (v === undefined) continue;
    if (typeof v === 'object' && v !== null && 'delta' in v) {
      const unit = unitOf ?? (k.endsWith('_ns') ? 'ns' : k.endsWith('_bytes') ? 'bytes' : 'count');
      out.push(`${label} ${fmtDelta(v as Delta, unit)}`);
    } else if (typeof v === 'object' && v !== null && 'a' in v) {
      const c = v as Change<unknown>;
      out.push(`${label} ${String(c.a)} -> ${String(c.b)}`);
    }
  }
  return out;
}

/** The diff for people. */
export function diffText(d: RunDiff): string {
  const out: string[] = [];
  const who = (s: RunDiff['a']) => `${s.file} (${s.scenario || '?'}, seed ${s.seed ?? '?'}, trace ${s.trace_sha256 ? s.trace_sha256.slice(0, 12) : '?'})`;
  out.push(`A: ${who(d.a)}`, `B: ${who(d.b)}`);
  if (d.identical) {
    out.push('', 'identical');
    return out.join('\n');
  }
  if (d.outcome) out.push('', `outcome: ${d.outcome.a} -> ${d.outcome.b}`);
  const fd = d.first_divergence;
  if (fd) {
    out.push('');
    if (fd.index < 0) {
      out.push(`first divergence: ${fd.note}`);
    } else {
      out.push(`first divergence (${fd.source === 'trace' ? 'trace event' : 'result record'} ${fd.index}, at ${sec(fd.t_ns)}): ${fd.note}`);
      for (const e of fd.before) out.push(`    ${sec(e.t_ns)}  ${e.text}`);
      out.push(`  A ${fd.a ? `${sec(fd.a.t_ns)}  ${fd.a.text}` : '(no more events)'}`);
      out.push(`  B ${fd.b ? `${sec(fd.b.t_ns)}  ${fd.b.text}` : '(no more events)'}`);
    }
  }
  if (d.handlers.length > 0) {
    out.push('', 'handlers (B - A: count, p50, p99, max):');
    for (const h of d.handlers.slice(0, 30)) {
      const s = h.a && h.b ? `${signed(h.delta.count)}, ${signedNs(h.delta.p50_ns)}, ${signedNs(h.delta.p99_ns)}, ${signedNs(h.delta.max_ns)} (max ${formatNs(h.a.max_ns)} -> ${formatNs(h.b.max_ns)})`
        : `${h.change}: ${(h.a ?? h.b)!.count} runs, p50 ${formatNs((h.a ?? h.b)!.p50_ns)}, p99 ${formatNs((h.a ?? h.b)!.p99_ns)}, max ${formatNs((h.a ?? h.b)!.max_ns)}`;
      out.push(`  ${h.thread} ${h.name} [${h.kind}]: ${s}`);
    }
    if (d.handlers.length > 30) out.push(`  ... ${d.handlers.length - 30} more (see --json)`);
  }
  if (d.main_loop && Object.keys(d.main_loop).length > 0) {
    out.push('', `main loop: ${fields(d.main_loop, { blocked_max_ns: 'blocked max', blocked_p99_ns: 'blocked p99', iterations: 'iterations' }).join('; ')}`);
  }
  if (d.bql && Object.keys(d.bql).length > 0) {
    const top = fields(d.bql, { wait_max_ns: 'wait max', hold_max_ns: 'hold max' });
    out.push('', `BQL: ${top.length > 0 ? top.join('; ') : 'per-site changes'}`);
    for (const row of ((d.bql.table ?? []) as Record<string, unknown>[]).slice(0, 20)) {
      const f = fields(row, { waits: 'waits', wait_max_ns: 'wait max', wait_total_ns: 'wait total', holds: 'holds', hold_max_ns: 'hold max', hold_total_ns: 'hold total' });
      out.push(`  ${String(row.thread)} ${String(row.site)}${row.change === 'changed' ? '' : ` (${String(row.change)})`}: ${f.join('; ')}`);
    }
  }
  if (d.migration && Object.keys(d.migration).length > 0) {
    const m = d.migration;
    const f = fields(m, {
      present: 'migration present', status: 'status', downtime_ns: 'downtime', total_time_ns: 'total-time',
      expected_downtime_ns: 'expected-downtime', completion_attempts: 'completion attempts', rollbacks: 'rollbacks',
      dirty_sync_count: 'dirty syncs', transferred_bytes: 'transferred', cpu_throttle_percentage: 'cpu throttle %',
      verified: 'destination verified', fail_reason: 'fail reason',
    });
    out.push('', 'migration:');
    for (const x of f) out.push(`  ${x}`);
    if (m.downtime_phases_ns) {
      const ph = fields(m.downtime_phases_ns as Record<string, unknown>, Object.fromEntries(PHASES.map((p) => [p, p.replace('_', ' ')])), 'ns');
      out.push(`  downtime phases: ${ph.join('; ')}`);
    }
  }
  if (d.guest && Object.keys(d.guest).length > 0) {
    const f = fields(d.guest, {
      ping_sent: 'pings sent', ping_answered: 'pings answered', ping_lost: 'pings lost', ping_rtt_p50_ns: 'ping rtt p50',
      ping_rtt_p99_ns: 'ping rtt p99', ping_rtt_max_ns: 'ping rtt max', userspace_progress: 'userspace progress',
      userspace_gap_max_ns: 'userspace gap max', vcpu_stall_max_ns: 'vCPU stall max',
    });
    out.push('', 'guest:');
    for (const x of f) out.push(`  ${x}`);
  }
  if (d.budgets.length > 0) {
    out.push('', 'budgets:');
    for (const x of d.budgets) {
      const value = (v: number) => (x.unit === 'ns' ? (v < 0 ? 'never' : formatNs(v)) : String(v));
      const s = (v: BudgetChange['a']) => (v ? `${v.pass ? 'ok' : 'FAIL'} ${value(v.value)}` : 'absent');
      out.push(`  ${x.name}: ${s(x.a)} -> ${s(x.b)}`);
    }
  }
  out.push('', `verdict: ${d.verdict}`);
  return out.join('\n');
}
