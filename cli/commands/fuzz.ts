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
// Leaves out: the knobs, phases and shrinking themselves (cli/fuzz/).
import { mkdirSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { UsageError, intOption } from '../errors.ts';
import { parseDuration } from '../../sim/scenario/units.ts';
import { parseShard, parseWorkers, progressBar, runJobs, shardPoints, type Job } from '../campaign.ts';
import { SEED_MAX } from '../../sim/scenario/scenario.ts';
import { fuzzDocument, fuzzExitCode, fuzzText, type FuzzCampaign, type FuzzDocument, type FuzzFailure, type FuzzRow } from '../fuzz/document.ts';
import { KNOB_TABLE, KNOBS_VERSION, type Knobs } from '../fuzz/knobs.ts';
import { buildScenario, PLANTS, type Plant } from '../fuzz/scenario.ts';
import { MAX_MEMORY_HELP, maxMemoryOption, memoryProblem, parseScenario } from '../scenario-file.ts';
import { DEFAULT_SHRINK_RUNS } from '../fuzz/shrink.ts';
import { seedCommand, type SeedInput, type SeedRun } from '../fuzz/seed.ts';

export const DEFAULT_SEEDS = 100;
/** Seeds at most in one campaign (also the default with --time and no --seeds). */
export const FUZZ_SEEDS_MAX = 100_000;
export const DEFAULT_OUT = 'scenarios/regressions';

const FUZZ_JOB: Job = { module: new URL('../fuzz/seed.ts', import.meta.url).href, fn: 'fuzzSeed' };


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
  maxMemory?: string;
}



/** Runs a fuzz campaign (this shard of it) and writes regression files. */
export async function fuzz(opts: FuzzOptions, progress = true): Promise<FuzzDocument> {
  const seedStart = opts.seedStart === undefined ? 1 : intOption('--seed-start', opts.seedStart);
  let timeNs: number | null = null;
  if (opts.time !== undefined) {
    timeNs = parseDuration(opts.time);
    if (timeNs === null || timeNs <= 0) throw new UsageError(`--time: expected a duration like "10min" or "30s", got ${JSON.stringify(opts.time)}`);
  }
  const seeds = opts.seeds === undefined ? (timeNs === null ? DEFAULT_SEEDS : FUZZ_SEEDS_MAX) : intOption('--seeds', opts.seeds, 1);
  if (seeds > FUZZ_SEEDS_MAX) throw new UsageError(`--seeds: at most ${FUZZ_SEEDS_MAX} in one campaign; split it with --seed-start`);
  if (seedStart + seeds - 1 > SEED_MAX) throw new UsageError(`--seed-start ${seedStart} --seeds ${seeds}: seeds go past ${SEED_MAX}`);
  const plant = opts.plant === undefined ? null : opts.plant;
  if (plant !== null && !(PLANTS as readonly string[]).includes(plant)) {
    throw new UsageError(`--plant: expected one of ${PLANTS.join(', ')}, got ${JSON.stringify(plant)}`);
  }
  const shard = opts.shard === undefined ? null : parseShard(opts.shard);
  const workers = opts.workers === undefined ? 1 : parseWorkers(opts.workers);
  const shrinkRuns = opts.shrinkRuns === undefined ? DEFAULT_SHRINK_RUNS : intOption('--shrink-runs', opts.shrinkRuns);
  const out = opts.out ?? DEFAULT_OUT;
  const campaign: FuzzCampaign = { seed_start: seedStart, seeds, plant: plant as Plant | null, knobs_version: KNOBS_VERSION };
  checkFuzzMemory(maxMemoryOption(opts.maxMemory), workers, campaign.plant);

  const points = shardPoints(Array.from({ length: seeds }, (_, index) => ({ index, seed: seedStart + index })), shard);
  const deadline = timeNs === null ? null : Date.now() + timeNs / 1e6;
  const inputs: SeedInput[] = points.map((p) => ({ seed: p.seed, plant: campaign.plant, out, shrink_runs: shrinkRuns, deadline_ms: deadline }));
  const bar = progress ? progressBar(inputs.length, 'fuzz') : null;
  let runs: SeedRun[];
  try {
    runs = await runJobs<SeedInput, SeedRun>(FUZZ_JOB, inputs, { workers, onDone: (done) => bar?.update(done) });
  } finally {
    bar?.stop();
  }

  const rows: FuzzRow[] = [];
  const failures: FuzzFailure[] = [];
  let notRun = 0;
  runs.forEach((r, i) => {
    if (r.status === 'skipped') {
      notRun++;
      return;
    }
    const f = r.failure;
    rows.push({ index: points[i]!.index, seed: r.seed, pass: r.status === 'pass', safety_status: r.safety_status, phase: f?.phase ?? null, class: f?.class ?? null });
    if (!f) return;
    if (r.regression) {
      mkdirSync(out, { recursive: true });
      writeFileSync(r.regression.file, r.regression.text);
    }
    failures.push({
      seed: r.seed, phase: f.phase, class: f.class, exit_code: f.exit_code, error: f.error,
      shrunk_file: r.regression?.file ?? null, shrink_runs: r.regression?.shrink_runs ?? 0,
      replay: r.regression ? `latsim run ${r.regression.file}` : null, seed_command: seedCommand(r.seed, campaign.plant),
    });
  });
  return fuzzDocument(campaign, shard, rows, failures, notRun);
}


/** Refuses a campaign whose largest scenario (every knob at its highest), once per worker, would not fit maxMemoryBytes. */
function checkFuzzMemory(maxMemoryBytes: number, workers: number, plant: Plant | null): void {
  const largest = Object.fromEntries(KNOB_TABLE.map(([name, , hi]) => [name, hi])) as Knobs;
  for (const phase of ['safety', 'liveness'] as const) {
    const s = parseScenario(buildScenario(largest, { seed: 1, phase, plant }).text, `fuzz-largest-${phase}`);
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
Exit code: 0 all seeds passed, 4 a safety failure, 3 a liveness failure.

Examples:
  latsim fuzz --seeds 200 --workers auto
  latsim fuzz --time 10min --seed-start 5000
  latsim fuzz --seeds 1000 --shard 3/8 --json > shard3.json
  latsim fuzz --seeds 5 --plant sync-drops-new-bits --out /tmp/regressions
`;

export function registerFuzz(program: Command): void {
  program
    .command('fuzz')
    .description('swarm-test the model: random knobs per seed, safety under faults, liveness without; shrink failures')
    .option('--seeds <n>', `number of seeds (default ${DEFAULT_SEEDS}, or as many as --time allows)`)
    .option('--time <duration>', 'wall-clock budget, e.g. 10min: no new seed starts after it')
    .option('--seed-start <s>', 'first seed', '1')
    .option('--workers <n>', 'worker threads, or "auto" for one per core', '1')
    .option('--shard <i/n>', 'run only shard i of n (seeds whose number mod n is i-1)')
    .option('--plant <bug>', `plant a bug in the migration model (${PLANTS.join(', ')}) to check the checkers`)
    .option('--out <dir>', 'where shrunk regression scenarios go', DEFAULT_OUT)
    .option('--shrink-runs <n>', 'runs shrinking may spend per failing seed (0: do not shrink)', String(DEFAULT_SHRINK_RUNS))
    .option('--json', 'print the result as one JSON object')
    .option('--max-memory <size>', `${MAX_MEMORY_HELP}; --workers runs count once each`)
    .addHelpText('after', FUZZ_HELP)
    .action(async (opts: FuzzOptions) => {
      const doc = await fuzz(opts);
      process.stdout.write(opts.json ? `${JSON.stringify(doc, null, 2)}\n` : `${fuzzText(doc)}\n`);
      process.exitCode = fuzzExitCode(doc);
    });
}
