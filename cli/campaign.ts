// Campaigns: many runs of one scenario, for `latsim sweep` and the commands
// that will grow from it (fuzz). A campaign is a grid of parameter values
// (`--set path=v1,v2`) times a list of seeds, numbered in one fixed order;
// `--shard i/n` keeps the points whose index mod n is i-1, so n shards
// partition the campaign exactly; a pool of worker threads (tinypool) runs the
// points, and results come back in point order whatever the number of
// workers; an abort (an interrupt) stops the workers and keeps the results
// that came back. Also the summary row of one run and the progress bar on a
// terminal. Seeds are parsed by cli/args.ts.
// Leaves out: merging shard files (the JSON output carries what a merge
// needs: the campaign, the shard and each row's index).
import { createHash } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { SingleBar } from 'cli-progress';
import { Tinypool } from 'tinypool';
import { parse as parseYaml } from 'yaml';
import { UsageError } from './errors.ts';
import type { Interruption } from './interrupt.ts';
import { parseScenario, type ScenarioOverride } from './scenario-file.ts';
import { exitCodeOf } from './exit-codes.ts';
import { simulate } from '../sim/run.ts';
import type { RunResult } from '../sim/results.ts';
import { ROW_METRICS, type CampaignDocument, type CampaignSpec, type GridAxis, type RunRow, type Shard } from '../reports/campaign.ts';

/** Points in one campaign at most: a limit, so a typo cannot ask for a billion runs. */
export const POINTS_MAX = 1_000_000;
/** Worker threads at most. */
export const WORKERS_MAX = 256;


/** One run of a campaign. */
export interface CampaignPoint {
  /** Position in the whole campaign (0-based), the same in every shard. */
  readonly index: number;
  /** The value of each axis, as written, in axis order. */
  readonly values: readonly string[];
  /** Null: the scenario's own seed. */
  readonly seed: number | null;
}


// ---------------------------------------------------------------------------
// Parsing the command line.

/** Parses `path=v1,v2,...`; commas inside [], {} or quotes do not split. */
export function parseSet(text: string): GridAxis {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new UsageError(`--set ${JSON.stringify(text)}: expected path=value[,value...]`);
  const path = text.slice(0, eq).trim();
  parsePath(path);
  const values = splitTopLevel(text.slice(eq + 1)).map((v) => v.trim());
  if (values.some((v) => v === '')) throw new UsageError(`--set ${path}: empty value in ${JSON.stringify(text.slice(eq + 1))}`);
  for (const v of values) parseValue(path, v);
  return { path, values };
}

/** `migration.flush_timeout` -> ['migration', 'flush_timeout']; `devices.blk[0].flush` -> ['devices', 'blk', 0, 'flush']. */
export function parsePath(path: string): (string | number)[] {
  const out: (string | number)[] = [];
  const bad = (): never => {
    throw new UsageError(`--set: ${JSON.stringify(path)} is not a path like migration.flush_timeout or devices.blk[0].flush`);
  };
  if (path === '') bad();
  for (const part of path.split('.')) {
    const m = /^([A-Za-z0-9_-]+)((?:\[\d+\])*)$/.exec(part);
    if (!m) bad();
    out.push(m![1]!);
    for (const idx of m![2]!.matchAll(/\[(\d+)\]/g)) {
      const i = Number(idx[1]);
      if (!Number.isSafeInteger(i) || i > 1_000_000) bad();
      out.push(i);
    }
  }
  return out;
}

/** A value as YAML: `2s` is a string, `3` a number, `[a, b]` a list. */
export function parseValue(path: string, text: string): unknown {
  try {
    return parseYaml(text, { maxAliasCount: 0 }) as unknown;
  } catch (e) {
    throw new UsageError(`--set ${path}=${text}: not a YAML value: ${(e as Error).message.split('\n')[0]!.replace(/:$/, '')}`);
  }
}

function splitTopLevel(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quote: string | null = null;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = null;
    } else if (c === '"' || c === '\'') {
      quote = c;
    } else if (c === '[' || c === '{') {
      depth++;
    } else if ((c === ']' || c === '}') && depth > 0) {
      depth--;
    } else if (c === ',' && depth === 0) {
      out.push(text.slice(start, i));
      start = i + 1;
    }
  }
  out.push(text.slice(start));
  return out;
}

/** `i/n` with 1 <= i <= n. */
export function parseShard(text: string): Shard {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(text);
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!m || !(count >= 1) || !(index >= 1) || index > count || count > POINTS_MAX) {
    throw new UsageError(`--shard ${JSON.stringify(text)}: expected i/n with 1 <= i <= n, e.g. 2/4`);
  }
  return { index, count };
}

/** `--workers N` or `auto` (one per core). */
export function parseWorkers(text: string): number {
  if (text.trim() === 'auto') return Math.min(WORKERS_MAX, availableParallelism());
  const n = /^[0-9]+$/.test(text) ? Number(text) : NaN;
  if (!(n >= 1 && n <= WORKERS_MAX)) {
    throw new UsageError(`--workers: expected an integer from 1 to ${WORKERS_MAX} or "auto", got ${JSON.stringify(text)}`);
  }
  return n;
}

// ---------------------------------------------------------------------------
// The grid.

export function campaignSpec(scenario: string, text: string, axes: readonly GridAxis[], seeds: readonly number[] | null): CampaignSpec {
  const paths = new Set<string>();
  for (const a of axes) {
    const key = JSON.stringify(parsePath(a.path));
    if (paths.has(key)) throw new UsageError(`--set ${a.path} is given twice; list every value in one --set`);
    paths.add(key);
  }
  const spec: CampaignSpec = {
    scenario,
    scenario_sha256: createHash('sha256').update(text).digest('hex'),
    axes: axes.map((a) => ({ path: a.path, values: [...a.values] })),
    seeds: seeds ? [...seeds] : null,
  };
  const n = pointCount(spec);
  if (n > POINTS_MAX) throw new UsageError(`the campaign has ${n} runs, more than ${POINTS_MAX}`);
  return spec;
}

/** Number of points: the product of the axis lengths times the seeds. */
export function pointCount(spec: CampaignSpec): number {
  return spec.axes.reduce((n, a) => n * a.values.length, 1) * (spec.seeds?.length ?? 1);
}

/** The grid's value combinations, first axis outermost (seeds left out). */
export function gridCombinations(spec: CampaignSpec): string[][] {
  let combos: string[][] = [[]];
  for (const a of spec.axes) combos = combos.flatMap((c) => a.values.map((v) => [...c, v]));
  return combos;
}

/** Every point, in campaign order: the first axis outermost, seeds innermost. */
export function expandGrid(spec: CampaignSpec): CampaignPoint[] {
  const seeds: (number | null)[] = spec.seeds ? [...spec.seeds] : [null];
  const points: CampaignPoint[] = [];
  for (const values of gridCombinations(spec)) {
    for (const seed of seeds) points.push({ index: points.length, values, seed });
  }
  return points;
}

/** The points of shard i of n: those whose index mod n is i-1. */
export function shardPoints<P extends { readonly index: number }>(points: readonly P[], shard: Shard | null): P[] {
  if (!shard) return [...points];
  return points.filter((p) => p.index % shard.count === shard.index - 1);
}

/** The scenario overrides for one combination of axis values. */
export function overridesOf(spec: CampaignSpec, values: readonly string[]): ScenarioOverride[] {
  return spec.axes.map((a, i) => ({
    path: parsePath(a.path),
    value: parseValue(a.path, values[i]!),
    source: `--set ${a.path}=${values[i]!}`,
  }));
}

/** A label for a point in reports: `migration.flush_timeout=2s, seed 3`. */
export function pointLabel(spec: CampaignSpec, point: CampaignPoint, seed: number): string {
  const parts = spec.axes.map((a, i) => `${a.path}=${point.values[i]!}`);
  if (spec.seeds || parts.length === 0) parts.push(`seed ${seed}`);
  return parts.join(', ');
}

// ---------------------------------------------------------------------------
// One run and its summary row.


const ms = (ns: number): number => Math.round(ns / 1e3) / 1e3;

/** The row of a finished run. */
export function rowOf(index: number, grid: Record<string, string>, r: RunResult, exitCode: number): RunRow {
  const m = r.migration;
  return {
    index,
    grid,
    seed: r.seed,
    pass: r.pass,
    exit_code: exitCode,
    outcome: r.outcome,
    downtime_ms: m && m.status === 'completed' ? m.downtime : null,
    main_loop_blocked_max_ms: ms(r.main_loop.blocked_max_ns),
    bql_wait_max_ms: ms(r.bql.wait_max_ns),
    ping_rtt_p99_ms: r.guest.ping.sent > 0 ? ms(r.guest.ping.rtt_p99_ns) : null,
    ping_lost: r.guest.ping.lost,
    userspace_progress: r.guest.userspace.progress,
    userspace_gap_max_ms: ms(r.guest.userspace.gap_max_ns),
    migration_status: m ? m.status : null,
    completion_attempts: m ? m.completion_attempts : null,
    rollbacks: m ? m.rollbacks : null,
    trace_sha256: r.trace_sha256,
    error: r.error,
  };
}

/** What a worker needs to run one point: everything by value, nothing shared. */
export interface PointInput {
  readonly index: number;
  readonly file: string;
  readonly text: string;
  readonly grid: Readonly<Record<string, string>>;
  readonly overrides: readonly ScenarioOverride[];
  readonly seed: number | null;
  /** Send the whole result back (for the HTML report). */
  readonly keepResult: boolean;
}

export interface PointOutput {
  readonly row: RunRow;
  readonly result: RunResult | null;
}

/**
 * Runs one point. The scenario was checked before the campaign started, so a
 * throw here is the model's: it becomes a row with outcome "error" and exit
 * code 5, and the campaign goes on.
 */
export function runPoint(input: PointInput): PointOutput {
  const scenario = parseScenario(input.text, input.file, input.overrides);
  const seed = input.seed ?? scenario.seed;
  try {
    const run = simulate(scenario, { seed, keepTrace: false });
    return { row: rowOf(input.index, { ...input.grid }, run.result, exitCodeOf(run.result)), result: input.keepResult ? run.result : null };
  } catch (e) {
    const message = `internal error: ${(e as Error).message ?? String(e)}; seed ${seed}`;
    return {
      row: {
        index: input.index, grid: { ...input.grid }, seed, pass: false, exit_code: 5, outcome: 'error',
        downtime_ms: null, main_loop_blocked_max_ms: null, bql_wait_max_ms: null, ping_rtt_p99_ms: null, ping_lost: null,
        userspace_progress: null, userspace_gap_max_ms: null, migration_status: null, completion_attempts: null,
        rollbacks: null, trace_sha256: null, error: message,
      },
      result: null,
    };
  }
}


/** A campaign's document as latsim prints it: marked partial when an interrupt cut it short. */
export type CampaignOutput = CampaignDocument & {
  /** True when the rows are not all the runs of this shard. */
  readonly partial: boolean;
  readonly interrupted: Interruption | null;
};

export function campaignDocument(command: string, spec: CampaignSpec, shard: Shard | null, rows: readonly RunRow[], interrupted: Interruption | null = null): CampaignOutput {
  return {
    format: 'latsim-campaign',
    version: 1,
    command,
    campaign: { ...spec, points: pointCount(spec) },
    shard,
    partial: interrupted !== null,
    interrupted,
    columns: ['index', ...spec.axes.map((a) => a.path), ...ROW_METRICS],
    rows: [...rows].sort((a, b) => a.index - b.index),
  };
}

/** The exit code of a campaign: the worst of its runs' (0 when it has none). */
export function campaignExitCode(rows: readonly RunRow[]): number {
  return rows.reduce((code, r) => Math.max(code, r.exit_code), 0);
}

// ---------------------------------------------------------------------------
// Running many jobs.

/** A job: a named export of a module, called with one input, returning a structured-cloneable output. */
export interface Job {
  /** file: URL of the module (TypeScript is fine: workers load it through tsx; in the compiled tree such a URL names the module's compiled entry, bin/build.mjs). */
  readonly module: string;
  readonly fn: string;
}

/** The job that runs campaign points (runPoint above). */
export const POINT_JOB: Job = { module: new URL('./campaign.ts', import.meta.url).href, fn: 'runPoint' };

const WORKER_FILE = new URL('./campaign-worker.mjs', import.meta.url).href;

export interface JobOptions<O> {
  readonly workers: number;
  /** Called after each finished job with the count so far. */
  readonly onDone?: (done: number) => void;
  /** Called with each output as it arrives, with its input's index (to write a file at once, say). */
  readonly onOutput?: (index: number, output: O) => void;
  /** Aborting starts no more jobs and terminates the worker threads; the jobs left unfinished have no output. */
  readonly signal?: AbortSignal;
  /** Run in a worker thread even with one worker, so that an abort also stops the job in progress. */
  readonly isolate?: boolean;
}

export interface JobsRun<O> {
  /** In input order; undefined for the jobs an abort left unfinished. */
  readonly outputs: readonly (O | undefined)[];
  /** Jobs finished. */
  readonly done: number;
}

/**
 * Runs the job on every input and returns the outputs in input order. One
 * worker runs in this thread (an abort is seen between two jobs); more, or
 * `isolate`, run in a tinypool of worker threads.
 */
export async function runJobs<I, O>(job: Job, inputs: readonly I[], options: JobOptions<O>): Promise<JobsRun<O>> {
  const outputs = new Array<O | undefined>(inputs.length).fill(undefined);
  const { signal } = options;
  let done = 0;
  const finished = (i: number, o: O) => {
    outputs[i] = o;
    options.onOutput?.(i, o);
    options.onDone?.(++done);
  };
  if (inputs.length === 0) return { outputs, done };
  if ((options.workers <= 1 || inputs.length <= 1) && !options.isolate) {
    const mod = (await import(job.module)) as Record<string, (input: I) => O>;
    const fn = mod[job.fn];
    if (typeof fn !== 'function') throw new Error(`${job.module} has no export ${job.fn}`);
    for (let i = 0; i < inputs.length && !signal?.aborted; i++) {
      finished(i, fn(inputs[i]!));
      // Let a terminal progress bar redraw, and a signal handler run, between jobs.
      await yieldToEventLoop();
    }
    return { outputs, done };
  }
  const threads = Math.max(1, Math.min(options.workers, inputs.length));
  const pool = new Tinypool({ filename: WORKER_FILE, minThreads: threads, maxThreads: threads, isolateWorkers: false });
  let destroyed: Promise<void> | null = null;
  const destroy = () => (destroyed ??= pool.destroy());
  // An abort terminates the threads: the jobs in progress end with an error that is not theirs.
  const onAbort = () => void destroy();
  signal?.addEventListener('abort', onAbort, { once: true });
  // Two tasks in flight per thread: the threads stay busy, and only that many
  // inputs are copied to workers at a time, however large the campaign.
  let next = 0;
  const lane = async () => {
    while (next < inputs.length && !signal?.aborted) {
      const i = next++;
      let o: O;
      try {
        o = (await pool.run({ module: job.module, fn: job.fn, input: inputs[i] })) as O;
      } catch (e) {
        if (signal?.aborted) return;
        throw e;
      }
      finished(i, o);
    }
  };
  try {
    await Promise.all(Array.from({ length: 2 * threads }, lane));
  } finally {
    signal?.removeEventListener('abort', onAbort);
    await destroy();
  }
  return { outputs, done };
}

/** Progress of a campaign on stderr. */
export interface Progress {
  update(done: number): void;
  stop(): void;
}

/** --progress: auto (a bar when stderr is a terminal, else nothing), lines (a line per finished job, for logs) or none. */
export const PROGRESS_MODES = ['auto', 'lines', 'none'] as const;
export type ProgressMode = (typeof PROGRESS_MODES)[number];

export function parseProgress(text: string | undefined): ProgressMode {
  if (text === undefined) return 'auto';
  if (!(PROGRESS_MODES as readonly string[]).includes(text)) throw new UsageError(`--progress: expected one of ${PROGRESS_MODES.join(', ')}, got ${JSON.stringify(text)}`);
  return text as ProgressMode;
}

/** `sweep: 3 of 10 runs done` lines, or a bar on a terminal, or nothing. */
export function progressBar(total: number, label: string, mode: ProgressMode = 'auto', unit = 'runs', stream: NodeJS.WriteStream = process.stderr): Progress {
  if (mode === 'none' || total <= 0) return { update: () => {}, stop: () => {} };
  if (mode === 'lines') return { update: (done) => void stream.write(`${label}: ${done} of ${total} ${unit} done\n`), stop: () => {} };
  if (!stream.isTTY) return { update: () => {}, stop: () => {} };
  const bar = new SingleBar({
    stream,
    format: `${label} [{bar}] {value}/{total} ${unit} | {percentage}% | eta {eta_formatted}`,
    barCompleteChar: '#',
    barIncompleteChar: '.',
    hideCursor: true,
    clearOnComplete: true,
  });
  bar.start(total, 0);
  return { update: (done) => bar.update(done), stop: () => bar.stop() };
}
