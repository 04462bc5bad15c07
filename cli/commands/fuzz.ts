// `latsim fuzz`: swarm testing of the model in the manner of FoundationDB's
// simulation and TigerBeetle's VOPR. Each seed draws random knobs (features on
// or off, faults, handler costs, dirty rates and patterns, bandwidths,
// policies, mode, memory size), runs a safety phase under faults with every
// checker on, then a liveness phase without faults in which the migration must
// complete; a failing seed is shrunk with fast-check and written as a
// regression scenario. Seeds split deterministically over --shard i/n and run
// on --workers threads (the campaign pool of cli/campaign.ts); `latsim merge`
// joins shard outputs. Exit 0 when every seed passed, 4 when a safety
// failure was found, 3 when only liveness failures were.
// SIGINT or SIGTERM stops the workers: the seeds finished are printed,
// marked partial, with the regression files of the failures found so far
// (each is written as soon as its seed fails, before it is shrunk), exit 130.
// Leaves out: the knobs, phases and shrinking themselves (cli/fuzz/).
import type { Command } from 'commander';
import { UsageError } from '../errors.ts';
import { conflict, parseInteger, parseSeed, parseSeedRange } from '../args.ts';
import { parseDuration } from '../../sim/scenario/units.ts';
import { parseProgress, parseShard, parseWorkers, progressBar, runJobs, shardPoints, type Job, type ProgressMode } from '../campaign.ts';
import { catchInterrupts, type Interrupts } from '../interrupt.ts';
import { EXIT } from '../exit-codes.ts';
import { checkWritable, ensureDirectory, outputErrorsOf, writeFileAtomic } from '../output.ts';
import type { OutputError } from '../errors.ts';
import { throwOutputErrors } from '../../reports/write.ts';
import { SEED_MAX } from '../../sim/scenario/scenario.ts';
import { fuzzDocument, fuzzExitCode, fuzzText, interruptedLine, type FuzzCampaign, type FuzzDocument, type FuzzFailure, type FuzzInterruption, type FuzzRow } from '../fuzz/document.ts';
import { KNOB_TABLE, KNOBS_VERSION, type Knobs } from '../fuzz/knobs.ts';
import { buildScenario, PLANTS, type Plant } from '../fuzz/scenario.ts';
import { MAX_MEMORY_HELP, maxMemoryOption, memoryProblem, scenarioFromObject } from '../scenario-file.ts';
import { DEFAULT_SHRINK_RUNS } from '../fuzz/shrink.ts';
import { seedCommand, type Regression, type SeedInput, type SeedRun, type ShrinkInput } from '../fuzz/seed.ts';

export const DEFAULT_SEEDS = 100;
/** Seeds at most in one campaign (also the default with --time and no --seeds). */
export const FUZZ_SEEDS_MAX = 100_000;
export const DEFAULT_OUT = 'scenarios/regressions';

const SEED_MODULE = new URL('../fuzz/seed.ts', import.meta.url).href;
const FUZZ_JOB: Job = { module: SEED_MODULE, fn: 'fuzzSeed' };
const SHRINK_JOB: Job = { module: SEED_MODULE, fn: 'shrinkSeed' };


export interface FuzzOptions {
  seeds?: string;
  time?: string;
  seedStart?: string;
  workers?: string;
  shard?: string;
  plant?: string;
  out?: string;
  shrinkRuns?: string;
  json?: boolean;
  progress?: string;
  maxMemory?: string;
}

export interface FuzzRun {
  readonly doc: FuzzDocument;
  /** Regression files that could not be written. */
  readonly errors: readonly OutputError[];
}

/** --seeds N or A..B, and --seed-start: the first seed and how many. */
function seedsOf(opts: FuzzOptions, timed: boolean): { seedStart: number; seeds: number } {
  const range = opts.seeds === undefined ? null : parseSeedRange('--seeds', opts.seeds);
  if (range && opts.seedStart !== undefined) throw conflict(`--seeds ${opts.seeds}`, '--seed-start', 'the range says where it starts');
  const seedStart = range ? range.first : opts.seedStart === undefined ? 1 : parseSeed('--seed-start', opts.seedStart);
  const seeds = range ? range.last - range.first + 1
    : opts.seeds === undefined ? (timed ? FUZZ_SEEDS_MAX : DEFAULT_SEEDS) : parseInteger('--seeds', opts.seeds, 1);
  if (seeds > FUZZ_SEEDS_MAX) throw new UsageError(`--seeds: at most ${FUZZ_SEEDS_MAX} in one campaign; split it with --seed-start`);
  if (seedStart + seeds - 1 > SEED_MAX) throw new UsageError(`--seed-start ${seedStart} --seeds ${seeds}: seeds go past ${SEED_MAX}`);
  return { seedStart, seeds };
}

/**
 * Runs a fuzz campaign (this shard of it): every seed, then the shrinking of
 * the failed ones. Regression files are written as they come (unshrunk, then
 * shrunk); an interrupt stops both stages and marks the document partial.
 */
export async function fuzz(opts: FuzzOptions, run: { progress?: ProgressMode; interrupts?: Pick<Interrupts, 'signal' | 'received'> } = {}): Promise<FuzzRun> {
  let timeNs: number | null = null;
  if (opts.time !== undefined) {
    timeNs = parseDuration(opts.time);
    if (timeNs === null || timeNs <= 0) throw new UsageError(`--time: expected a duration like "10min" or "30s", got ${JSON.stringify(opts.time)}`);
  }
  const { seedStart, seeds } = seedsOf(opts, timeNs !== null);
  const plant = opts.plant === undefined ? null : opts.plant;
  if (plant !== null && !(PLANTS as readonly string[]).includes(plant)) {
    throw new UsageError(`--plant: expected one of ${PLANTS.join(', ')}, got ${JSON.stringify(plant)}`);
  }
  const shard = opts.shard === undefined ? null : parseShard(opts.shard);
  const workers = opts.workers === undefined ? 1 : parseWorkers(opts.workers);
  const shrinkRuns = opts.shrinkRuns === undefined ? DEFAULT_SHRINK_RUNS : parseInteger('--shrink-runs', opts.shrinkRuns);
  const out = opts.out ?? DEFAULT_OUT;
  // Where regressions go must take files: said now, not after the campaign.
  checkWritable(out, 'directory');
  const campaign: FuzzCampaign = { seed_start: seedStart, seeds, plant: plant as Plant | null, knobs_version: KNOBS_VERSION };
  const signal = run.interrupts?.signal;
  const abortable = signal ? { signal } : {};

  const errors: OutputError[] = [];
  const written = new Map<number, Regression>();
  const write = (seed: number, r: Regression) => {
    try {
      ensureDirectory(out);
      writeFileAtomic(r.file, r.text);
      written.set(seed, r);
    } catch (e) {
      const o = outputErrorsOf(e);
      if (!o) throw e;
      errors.push(...o);
    }
  };
  checkFuzzMemory(maxMemoryOption(opts.maxMemory), workers, campaign.plant);

  const points = shardPoints(Array.from({ length: seeds }, (_, index) => ({ index, seed: seedStart + index })), shard);
  const deadline = timeNs === null ? null : Date.now() + timeNs / 1e6;
  const inputs: SeedInput[] = points.map((p) => ({ seed: p.seed, plant: campaign.plant, out, deadline_ms: deadline }));
  const bar = progressBar(inputs.length, 'fuzz', run.progress ?? 'none', 'seeds');
  let found;
  try {
    found = await runJobs<SeedInput, SeedRun>(FUZZ_JOB, inputs, {
      workers, ...abortable,
      onDone: (done) => bar.update(done),
      onOutput: (_i, r) => r.regression && write(r.seed, r.regression),
    });
  } finally {
    bar.stop();
  }
  const runs = found.outputs.filter((r): r is SeedRun => r !== undefined);
  let interrupted: FuzzInterruption | null = null;
  const received = () => run.interrupts?.received() ?? null;
  if (found.done < inputs.length && received()) interrupted = { signal: received()!, done: found.done, total: inputs.length, stage: 'seeds' };

  // Shrinking, in worker threads even for one worker, so an interrupt stops a long shrink at once.
  const failed = runs.filter((r) => r.failure);
  if (!interrupted && shrinkRuns > 0 && failed.length > 0) {
    const shrinkBar = progressBar(failed.length, 'shrink', run.progress ?? 'none', 'failures');
    const shrinkInputs: ShrinkInput[] = failed.map((r) => ({ seed: r.seed, plant: campaign.plant, out, shrink_runs: shrinkRuns, failure: r.failure! }));
    let shrunk;
    try {
      shrunk = await runJobs<ShrinkInput, Regression>(SHRINK_JOB, shrinkInputs, {
        workers, isolate: true, ...abortable,
        onDone: (done) => shrinkBar.update(done),
        onOutput: (i, reg) => write(shrinkInputs[i]!.seed, reg),
      });
    } finally {
      shrinkBar.stop();
    }
    if (shrunk.done < shrinkInputs.length && received()) interrupted = { signal: received()!, done: shrunk.done, total: shrinkInputs.length, stage: 'shrinking' };
  }

  const rows: FuzzRow[] = [];
  const failures: FuzzFailure[] = [];
  let notRun = 0;
  for (const r of runs) {
    const index = r.seed - seedStart;
    if (r.status === 'skipped') {
      notRun++;
      continue;
    }
    const f = r.failure;
    rows.push({ index, seed: r.seed, pass: r.status === 'pass', safety_status: r.safety_status, phase: f?.phase ?? null, class: f?.class ?? null });
    if (!f) continue;
    const reg = written.get(r.seed) ?? null;
    failures.push({
      seed: r.seed, phase: f.phase, class: f.class, exit_code: f.exit_code, error: f.error,
      shrunk_file: reg?.file ?? null, shrink_runs: reg?.shrink_runs ?? 0,
      replay: reg ? `latsim run ${reg.file}` : null, seed_command: seedCommand(r.seed, campaign.plant),
    });
  }
  return { doc: fuzzDocument(campaign, shard, rows, failures, notRun, interrupted), errors };
}


/** Refuses a campaign whose largest scenario (every knob at its highest), once per worker, would not fit maxMemoryBytes. */
function checkFuzzMemory(maxMemoryBytes: number, workers: number, plant: Plant | null): void {
  const largest = Object.fromEntries(KNOB_TABLE.map(([name, , hi]) => [name, hi])) as Knobs;
  for (const phase of ['safety', 'liveness'] as const) {
    const s = scenarioFromObject(buildScenario(largest, { seed: 1, phase, plant }).doc, `fuzz-largest-${phase}`);
    const problem = memoryProblem(s, { maxMemoryBytes, runsAtOnce: workers });
    if (problem) throw new UsageError(`--max-memory: the largest fuzz scenario (${phase} phase): ${problem.detail}`);
  }
}

const FUZZ_HELP = `
Each seed draws its knobs from a seeded stream, so a seed always means the same
scenario. A failing seed is shrunk with fast-check to a small scenario, written
to --out (default ${DEFAULT_OUT}) with the seed, what failed and the command
that replays it. Seeds are numbered from --seed-start; --shard i/n keeps seeds
whose number mod n is i-1; \`latsim merge\` joins the --json outputs of shards.
--seeds A..B is --seed-start A with B-A+1 seeds. Every regression file is
written as soon as its seed fails, then replaced by the shrunk one. Exit code:
0 all seeds passed, 4 a safety failure, 3 a liveness failure, 9 a regression
file could not be written, 130 interrupted (SIGINT, SIGTERM: the seeds finished
and the files of their failures are kept; the output is marked partial).

Examples:
  latsim fuzz --seeds 200 --workers auto
  latsim fuzz --time 10min --seed-start 5000
  latsim fuzz --seeds 1000 --shard 3/8 --json > shard3.json
  latsim fuzz --seeds 5 --plant sync-drops-new-bits --out /tmp/regressions
`;

export function registerFuzz(command: Command): void {
  command
    .option('--seeds <n|A..B>', `number of seeds (default ${DEFAULT_SEEDS}, or as many as --time allows), or the seeds A to B`)
    .option('--time <duration>', 'wall-clock budget, e.g. 10min: no new seed starts after it')
    .option('--seed-start <s>', 'first seed (default 1)')
    .option('--workers <n>', 'worker threads, or "auto" for one per core', '1')
    .option('--shard <i/n>', 'run only shard i of n (seeds whose number mod n is i-1)')
    .option('--plant <bug>', `plant a bug in the migration model (${PLANTS.join(', ')}) to check the checkers`)
    .option('--out <dir>', 'where shrunk regression scenarios go', DEFAULT_OUT)
    .option('--shrink-runs <n>', 'runs shrinking may spend per failing seed (0: do not shrink)', String(DEFAULT_SHRINK_RUNS))
    .option('--json', 'print the result as one JSON object')
    .option('--progress <mode>', 'auto (a bar on a terminal), lines (a line on stderr per finished seed, for logs) or none')
    .option('--max-memory <size>', `${MAX_MEMORY_HELP}; --workers runs count once each`)
    .addHelpText('after', FUZZ_HELP)
    .action(async (opts: FuzzOptions) => {
      const progress = parseProgress(opts.progress);
      const interrupts = catchInterrupts();
      let run: FuzzRun;
      try {
        run = await fuzz(opts, { progress, interrupts });
      } finally {
        interrupts.dispose();
      }
      const { doc } = run;
      process.stdout.write(opts.json ? `${JSON.stringify(doc, null, 2)}\n` : `${fuzzText(doc)}\n`);
      if (opts.json && doc.interrupted) process.stderr.write(`latsim ${interruptedLine(doc)}\n`);
      process.exitCode = doc.interrupted ? EXIT.interrupted : fuzzExitCode(doc);
      throwOutputErrors(run.errors);
    });
}
