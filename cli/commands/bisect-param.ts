// `latsim bisect-param <scenario> --param PATH --range LO..HI`: binary search
// over one numeric parameter of a scenario (a duration, size, bandwidth,
// rate, percentage or plain number, in LO's unit) for the value at which a
// budget starts to fail. Both ends are run first: pass at LO and fail at HI
// gives the smallest failing value; fail at LO and pass at HI the largest
// failing value. The search stops when the bracket is no wider than the
// precision; one more run on each side of the bracket checks that the
// outcome is monotonic there and warns if not. Each run goes through the
// scenario's own validation (the value replaces the field in the document).
// SIGINT or SIGTERM stops the search after the run in progress: the runs
// made and the bracket so far are printed, marked partial, exit 130.
// Leaves out: searching more than one parameter (latsim sweep runs grids).
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { Command } from 'commander';
import { parseScenario, readScenarioText, ScenarioError, type ScenarioOverride } from '../scenario-file.ts';
import { UsageError } from '../errors.ts';
import { parseSeed } from '../args.ts';
import { catchInterrupts, interruptionText, type Interruption, type Interrupts } from '../interrupt.ts';
import { EXIT } from '../exit-codes.ts';
import { parsePath } from '../campaign.ts';
import { formatBytes, formatNs } from '../../sim/instrument/format.ts';
import { parseBandwidth, parseDuration, parsePercent, parseRate, parseSize } from '../../sim/scenario/units.ts';
import { simulate } from '../../sim/run.ts';
import type { RunResult } from '../../sim/results.ts';

/** Runs at most, so a precision far below the range cannot run forever. */
const STEPS_MAX = 64;

type Kind = 'duration' | 'size' | 'bandwidth' | 'rate' | 'percent' | 'number';

interface Quantity {
  readonly kind: Kind;
  /** Whether values are whole (ns, bytes, integers). */
  readonly integral: boolean;
  /** The value as scenario text. */
  text(v: number): string;
  /** The value for people. */
  human(v: number): string;
}

const QUANTITIES: Record<Kind, Quantity & { parse(s: string): number | null }> = {
  duration: { kind: 'duration', integral: true, parse: parseDuration, text: (v) => `${v}ns`, human: formatNs },
  size: { kind: 'size', integral: true, parse: parseSize, text: (v) => `${v}B`, human: formatBytes },
  bandwidth: { kind: 'bandwidth', integral: false, parse: parseBandwidth, text: (v) => `${v}B/s`, human: (v) => `${formatBytes(v)}/s` },
  rate: { kind: 'rate', integral: false, parse: parseRate, text: (v) => `${v}/s`, human: (v) => `${+v.toPrecision(6)}/s` },
  percent: { kind: 'percent', integral: false, parse: parsePercent, text: (v) => `${+(v * 100).toPrecision(12)}%`, human: (v) => `${+(v * 100).toPrecision(6)}%` },
  number: {
    kind: 'number', integral: false,
    parse: (s) => (/^\s*-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*$/.test(s) ? Number(s) : null),
    text: (v) => String(v), human: (v) => String(+v.toPrecision(12)),
  },
};

/** The kind of a value as written: the first unit family that parses it. */
function kindOf(text: string): Kind | null {
  for (const k of ['duration', 'size', 'bandwidth', 'rate', 'percent', 'number'] as const) {
    if (QUANTITIES[k].parse(text) !== null) return k;
  }
  return null;
}

export interface Range {
  readonly q: Quantity;
  readonly lo: number;
  readonly hi: number;
}

/** `1ms..60s` -> the kind and both ends in the model's unit. */
export function parseRange(text: string): Range {
  const m = /^\s*(.+?)\s*\.\.\s*(.+?)\s*$/.exec(text);
  if (!m) throw new UsageError(`--range ${JSON.stringify(text)}: expected LO..HI, e.g. 1ms..60s`);
  const kind = kindOf(m[1]!);
  if (!kind) throw new UsageError(`--range: ${JSON.stringify(m[1])} is not a duration, size, bandwidth, rate, percentage or number`);
  const q = QUANTITIES[kind];
  const lo = q.parse(m[1]!);
  const hi = q.parse(m[2]!);
  if (hi === null) throw new UsageError(`--range: ${JSON.stringify(m[2])} is not a ${kind} like ${JSON.stringify(m[1])}`);
  if (!(hi > lo!)) throw new UsageError(`--range ${text}: HI must be above LO`);
  const integral = q.integral || (kind === 'number' && Number.isInteger(lo) && Number.isInteger(hi));
  return { q: { ...q, integral }, lo: lo!, hi };
}

export interface Step {
  readonly value: number;
  readonly text: string;
  readonly human: string;
  readonly fail: boolean;
  readonly outcome: string;
  /** Budgets that failed (all of them, not only the one searched for). */
  readonly failed: readonly string[];
  readonly metrics: Metrics;
}

export interface Metrics {
  readonly outcome: string;
  readonly migration_status: string | null;
  readonly downtime_ms: number | null;
  readonly downtime_phases_ms: Record<string, number> | null;
  readonly main_loop_blocked_max_ns: number;
  readonly bql_wait_max_ns: number;
  readonly vcpu_stall_max_ns: number;
  readonly ping_lost: number;
  readonly userspace_progress: number;
  readonly userspace_gap_max_ns: number;
  readonly budgets: readonly { name: string; value: number; limit: number; unit: string; pass: boolean }[];
  readonly trace_sha256: string;
}

export interface ParamBisection {
  readonly scenario: string;
  readonly param: string;
  readonly kind: Kind;
  readonly range: { lo: string; hi: string };
  readonly precision: string;
  readonly budget: string | null;
  readonly seed: number;
  /** rising: passes below, fails from the threshold up; falling: fails up to the threshold, passes above. */
  readonly direction: 'rising' | 'falling' | null;
  /** The smallest (rising) or largest (falling) failing value found, within the precision. */
  readonly threshold: { value: number; text: string; human: string } | null;
  readonly passing: Step | null;
  readonly failing: Step | null;
  /** Null when an interrupt came before the check. */
  readonly monotonic: boolean | null;
  readonly warnings: readonly string[];
  readonly steps: readonly Step[];
  readonly verdict: string;
  /** True when an interrupt stopped the search: passing and failing are the bracket so far. */
  readonly partial: boolean;
  readonly interrupted: Interruption | null;
}

export interface BisectParamOptions {
  param: string;
  range: string;
  precision?: string;
  seed?: string;
  budget?: string;
  /** A line per run as it ends (stderr). */
  log?: (line: string) => void;
}

function metricsOf(r: RunResult): Metrics {
  const m = r.migration;
  return {
    outcome: r.outcome,
    migration_status: m?.status ?? null,
    downtime_ms: m && m.status === 'completed' ? m.downtime : null,
    downtime_phases_ms: m?.downtime_phases ? { ...m.downtime_phases } : null,
    main_loop_blocked_max_ns: r.main_loop.blocked_max_ns,
    bql_wait_max_ns: r.bql.wait_max_ns,
    vcpu_stall_max_ns: r.guest.vcpu_stall_max_ns,
    ping_lost: r.guest.ping.lost,
    userspace_progress: r.guest.userspace.progress,
    userspace_gap_max_ns: r.guest.userspace.gap_max_ns,
    budgets: r.expect.map((e) => ({ name: e.name, value: e.value, limit: e.limit, unit: e.unit, pass: e.pass })),
    trace_sha256: r.trace_sha256,
  };
}

/** Thrown by a run after an interrupt, to unwind the search. */
const STOP = Symbol('interrupted');

/** Runs the search; an interrupt (seen between two runs) ends it with the bracket so far. */
export async function bisectParam(file: string, opts: BisectParamOptions, interrupts?: Pick<Interrupts, 'signal' | 'received'>): Promise<ParamBisection> {
  const text = readScenarioText(file);
  let path: (string | number)[];
  try {
    path = parsePath(opts.param);
  } catch {
    throw new UsageError(`--param ${JSON.stringify(opts.param)}: expected a field path like migration.flush_timeout or devices.blk[0].flush`);
  }
  const range = parseRange(opts.range);
  const { q } = range;
  let precision: number;
  if (opts.precision !== undefined) {
    const p = QUANTITIES[q.kind].parse(opts.precision);
    if (p === null || !(p > 0)) throw new UsageError(`--precision: expected a positive ${q.kind} like the range's, got ${JSON.stringify(opts.precision)}`);
    precision = p;
  } else {
    precision = (range.hi - range.lo) / 1000;
  }
  if (q.integral) precision = Math.max(1, Math.round(precision));
  const base = parseScenario(text, file);
  const seed = opts.seed === undefined ? base.seed : parseSeed('--seed', opts.seed);
  if (opts.budget !== undefined) {
    const names = [...base.expect.map((b) => b.name), ...(base.expect_slow.length > 0 ? ['slow_handlers'] : []),
      ...(base.expect_migration_status !== null ? [`migration_status=${base.expect_migration_status}`] : [])];
    const ok = names.includes(opts.budget) || (opts.budget === 'migration_status' && base.expect_migration_status !== null);
    if (!ok) throw new UsageError(`--budget ${opts.budget}: ${file} has no such budget${names.length > 0 ? `; it has ${names.join(', ')}` : ' (no expect section)'}`);
  }
  const budgetName = opts.budget === 'migration_status' ? `migration_status=${base.expect_migration_status}` : opts.budget ?? null;

  const cache = new Map<number, Step>();
  const steps: Step[] = [];
  const run = async (v: number): Promise<Step> => {
    const value = q.integral ? Math.round(v) : v;
    const hit = cache.get(value);
    if (hit) return hit;
    // Let a signal handler run between two runs.
    await yieldToEventLoop();
    if (interrupts?.signal.aborted) throw STOP;
    if (steps.length >= STEPS_MAX) throw new UsageError(`bisect-param: more than ${STEPS_MAX} runs; give a coarser --precision`);
    // Plain numbers go in as numbers (an integer field rejects "25"); units as their text.
    const override: ScenarioOverride = { path, value: q.kind === 'number' ? value : q.text(value), source: `--param ${opts.param}=${q.human(value)}` };
    const scenario = parseScenario(text, file, [override]);
    const r = simulate(scenario, { seed }).result;
    const failed = r.expect.filter((e) => !e.pass).map((e) => e.name);
    const fail = r.outcome !== 'ok' || (budgetName === null ? !r.pass : failed.includes(budgetName));
    const step: Step = { value, text: q.text(value), human: q.human(value), fail, outcome: r.outcome, failed, metrics: metricsOf(r) };
    cache.set(value, step);
    steps.push(step);
    opts.log?.(`${step.human}: ${stepVerdict(step)}`);
    return step;
  };

  const result = (found: Pick<ParamBisection, 'direction' | 'threshold' | 'passing' | 'failing' | 'monotonic' | 'warnings' | 'verdict'>,
    interrupted: Interruption | null = null): ParamBisection => ({
    scenario: file, param: opts.param, kind: q.kind,
    range: { lo: q.human(range.lo), hi: q.human(range.hi) }, precision: q.human(precision),
    budget: budgetName, seed, steps, ...found, partial: interrupted !== null, interrupted,
  });

  const what = budgetName ?? 'a budget';
  // The bracket so far: pass holds at p, fail at f.
  let bracket: { p: Step; f: Step; rising: boolean } | null = null;
  try {
    const lo = await run(range.lo);
    const hi = await run(range.hi);
    if (lo.fail === hi.fail) {
      return result({
        direction: null, threshold: null, passing: lo.fail ? null : lo, failing: lo.fail ? lo : null, monotonic: true, warnings: [],
        verdict: `no threshold in ${q.human(range.lo)}..${q.human(range.hi)}: ${lo.fail ? `${what} fails` : `${budgetName ?? 'every budget'} holds`} at both ends`,
      });
    }
    const rising = !lo.fail;
    bracket = { p: rising ? lo : hi, f: rising ? hi : lo, rising };
    while (Math.abs(bracket.f.value - bracket.p.value) > precision) {
      const mid = await run((bracket.p.value + bracket.f.value) / 2);
      if (mid.value === bracket.p.value || mid.value === bracket.f.value) break;
      bracket = mid.fail ? { ...bracket, f: mid } : { ...bracket, p: mid };
    }
    const { p, f } = bracket;
    // Monotonicity: one more run inside each outer part of the range.
    const warnings: string[] = [];
    const outerPass = await run((p.value + (rising ? range.lo : range.hi)) / 2);
    const outerFail = await run((f.value + (rising ? range.hi : range.lo)) / 2);
    if (outerPass.fail) warnings.push(`not monotonic: ${what} fails at ${outerPass.human}, on the passing side of the threshold`);
    if (!outerFail.fail) warnings.push(`not monotonic: ${what} holds at ${outerFail.human}, on the failing side of the threshold`);
    const threshold = { value: f.value, text: f.text, human: f.human };
    const verdict = rising
      ? `${what} fails from ${opts.param} = ${f.human} upward (smallest failing value; holds at ${p.human}), to within ${q.human(precision)}`
      : `${what} fails up to ${opts.param} = ${f.human} (largest failing value; holds at ${p.human}), to within ${q.human(precision)}`;
    return result({ direction: rising ? 'rising' : 'falling', threshold, passing: p, failing: f, monotonic: warnings.length === 0, warnings, verdict });
  } catch (e) {
    if (e !== STOP) throw e;
    const interrupted: Interruption = { signal: interrupts!.received()!, done: steps.length, total: null };
    const b = bracket as { p: Step; f: Step; rising: boolean } | null;
    return result({
      direction: b ? (b.rising ? 'rising' : 'falling') : null, threshold: null, passing: b?.p ?? null, failing: b?.f ?? null, monotonic: null, warnings: [],
      verdict: `${interruptionText(interrupted, 'runs')}: ${b ? `${what} holds at ${b.p.human} and fails at ${b.f.human}; the threshold is between` : 'no bracket yet'}`,
    }, interrupted);
  }
}

/** `ok`, or `FAIL (max_downtime) [liveness]`. */
function stepVerdict(s: Step): string {
  return `${s.fail ? 'FAIL' : 'ok'}${s.failed.length > 0 ? ` (${s.failed.join(', ')})` : ''}${s.outcome !== 'ok' ? ` [${s.outcome}]` : ''}`;
}

function metricsLine(s: Step): string {
  const m = s.metrics;
  const parts = [m.outcome !== 'ok' ? m.outcome : ''];
  if (m.migration_status !== null) parts.push(`migration ${m.migration_status}`);
  if (m.downtime_ms !== null) {
    const ph = m.downtime_phases_ms ? Object.entries(m.downtime_phases_ms).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v} ms`).join(', ') : '';
    parts.push(`downtime ${m.downtime_ms} ms${ph ? ` (${ph})` : ''}`);
  }
  parts.push(`main loop blocked ${formatNs(m.main_loop_blocked_max_ns)}`, `BQL wait ${formatNs(m.bql_wait_max_ns)}`, `vCPU stall ${formatNs(m.vcpu_stall_max_ns)}`);
  if (m.ping_lost > 0) parts.push(`${m.ping_lost} pings lost`);
  parts.push(`userspace ${m.userspace_progress} quanta, gap ${formatNs(m.userspace_gap_max_ns)}`);
  return parts.filter(Boolean).join('; ');
}

function budgetsLine(s: Step): string {
  return s.metrics.budgets.map((b) => {
    const v = (x: number) => (b.unit === 'ns' ? (x < 0 ? 'never' : formatNs(x)) : String(x));
    return `${b.pass ? 'ok' : 'FAIL'} ${b.name} ${v(b.value)} (limit ${v(b.limit)})`;
  }).join(', ');
}

export function bisectParamText(b: ParamBisection): string {
  const out: string[] = [];
  out.push(`bisect-param ${b.param} over ${b.range.lo}..${b.range.hi} (precision ${b.precision}), ${b.budget ?? 'all budgets'}, seed ${b.seed}:`);
  for (const s of b.steps) out.push(`  ${s.human.padStart(12)}: ${stepVerdict(s).padEnd(4)}`.trimEnd());
  out.push('', b.verdict);
  for (const w of b.warnings) out.push(`warning: ${w}`);
  for (const [label, s] of [['holds', b.passing], ['fails', b.failing]] as const) {
    if (!s) continue;
    out.push(`  ${label} at ${s.human}: ${metricsLine(s)}`);
    if (s.metrics.budgets.length > 0) out.push(`    budgets: ${budgetsLine(s)}`);
  }
  if (b.interrupted) out.push(`bisect-param: ${interruptionText(b.interrupted, 'runs')}; the search did not end`);
  return out.join('\n');
}

const HELP = `
PATH is a field of the scenario as in latsim sweep --set: migration.flush_timeout,
devices.blk[0].flush, guest.workloads[0].dirty.rate. LO, HI and --precision are
in the parameter's units (1ms..60s, 64MiB..4GiB, 100/s..50000/s, 8..64).
Without --budget, a run fails when any budget fails or it ends in a liveness
or invariant failure. Each run is logged on stderr as it ends. Exit code: 0 a
threshold was found, 1 both ends pass or both fail, 2 bad input, 130
interrupted (SIGINT, SIGTERM: the runs made and the bracket so far are printed,
marked partial).

Examples:
  latsim bisect-param scenarios/flush.yaml --param devices.blk[0].flush --range 1ms..60s --precision 10ms --budget max_downtime
  latsim bisect-param scenarios/flush-timeout-min-interval.yaml --param migration.min_interval --range 0s..10s --budget min_userspace_progress
`;

export function registerBisectParam(command: Command): void {
  command
    .argument('<scenario>', 'scenario file (YAML)')
    .requiredOption('--param <path>', 'the parameter: a field path like devices.blk[0].flush')
    .requiredOption('--range <lo..hi>', 'the values to search, in the parameter\'s units, e.g. 1ms..60s')
    .option('--precision <x>', 'stop when the bracket is this narrow (default: a thousandth of the range)')
    .option('--seed <n>', 'override the scenario seed')
    .option('--budget <name>', 'the budget to watch, e.g. max_downtime (default: all budgets and the run\'s outcome)')
    .option('--json', 'print the search as one JSON object')
    .addHelpText('after', HELP)
    .action(async (file: string, opts: BisectParamOptions & { json?: boolean }) => {
      let b: ParamBisection;
      const interrupts = catchInterrupts();
      try {
        b = await bisectParam(file, { ...opts, log: (l) => process.stderr.write(`bisect-param: ${l}\n`) }, interrupts);
      } catch (e) {
        // A value the scenario rejects (e.g. below a field's minimum) is the range's fault: say so.
        if (e instanceof ScenarioError && e.detail.includes('--param')) throw new UsageError(`${e.message}; narrow --range`);
        throw e;
      } finally {
        interrupts.dispose();
      }
      process.stdout.write(opts.json ? `${JSON.stringify(b, null, 2)}\n` : `${bisectParamText(b)}\n`);
      if (opts.json && b.interrupted) process.stderr.write(`latsim bisect-param: ${interruptionText(b.interrupted, 'runs')}\n`);
      process.exitCode = b.interrupted ? EXIT.interrupted : b.threshold ? 0 : 1;
    });
}
