// `latsim sweep <scenario> --set path=v1,v2 [--seeds A..B]`: runs a scenario
// over a grid of parameter values and seeds and prints one row per run (a
// table, CSV or JSON). Every grid point is checked before the first run, so
// a bad value is one ScenarioError (exit 2) naming the file, line and path.
// The grid, sharding and worker pool live in cli/campaign.ts.
// Leaves out: joining shard outputs (latsim merge reads the JSON form).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { MAX_MEMORY_HELP, maxMemoryOption, parseScenario, readScenarioText } from '../scenario-file.ts';
import { UsageError } from '../errors.ts';
import {
  campaignDocument, campaignExitCode, campaignSpec, expandGrid, gridCombinations, overridesOf, parseSeeds, parseSet,
  parseShard, parseWorkers, POINT_JOB, pointLabel, progressBar, runJobs, shardPoints,
  type PointInput, type PointOutput, type Progress,
} from '../campaign.ts';
import { CAMPAIGN_FORMATS as FORMATS, formatCampaign, type CampaignDocument, type CampaignFormat as Format, type GridAxis } from '../../reports/campaign.ts';
import { htmlReport } from '../../reports/html.ts';
import type { RunResult } from '../../sim/results.ts';


export interface SweepOptions {
  set?: GridAxis[];
  seeds?: string;
  format?: string;
  json?: boolean;
  report?: string;
  workers?: string;
  shard?: string;
  maxMemory?: string;
}

const SWEEP_HELP = `
Values are YAML, substituted into the scenario before it is checked; commas
inside [...] or {...} do not split. Runs are numbered with the first --set
outermost and seeds innermost; --shard i/n keeps runs whose number mod n is
i-1, so n shards cover the campaign exactly once. Rows are the same whatever
--workers is. Exit code: the worst of the runs' (as latsim run), 2 for bad input.

Examples:
  latsim sweep my-scenario.yaml --set migration.flush_timeout=250ms,1s,4s --seeds 1..10
  latsim sweep my-scenario.yaml --set 'migration.policy=legacy,[flush-timeout,min-interval]' --report out/
  latsim sweep my-scenario.yaml --set devices.blk[0].flush=1ms,10ms --seeds 1..1000 --shard 2/8 --json
`;

export interface SweepRun {
  readonly doc: CampaignDocument;
  /** Full results (with keepResults), for the HTML report; runs that threw have none. */
  readonly results: RunResult[];
  /** One label per result: its grid values and seed. */
  readonly labels: string[];
}

/** Runs a sweep: checks every grid point, then runs this shard's points. */
export async function sweep(file: string, opts: SweepOptions, run: { keepResults?: boolean; progress?: (total: number) => Progress } = {}): Promise<SweepRun> {
  const text = readScenarioText(file);
  const axes = opts.set ?? [];
  const seeds = opts.seeds === undefined ? null : parseSeeds(opts.seeds);
  const shard = opts.shard === undefined ? null : parseShard(opts.shard);
  const workers = opts.workers === undefined ? 1 : parseWorkers(opts.workers);
  const spec = campaignSpec(file, text, axes, seeds);

  // Check the file, then every grid point, before running anything.
  const memory = { maxMemoryBytes: maxMemoryOption(opts.maxMemory), runsAtOnce: workers };
  parseScenario(text, file, [], memory);
  for (const values of gridCombinations(spec)) parseScenario(text, file, overridesOf(spec, values), memory);

  const points = shardPoints(expandGrid(spec), shard);
  const inputs: PointInput[] = points.map((p) => ({
    index: p.index,
    file,
    text,
    grid: Object.fromEntries(spec.axes.map((a, i) => [a.path, p.values[i]!])),
    overrides: overridesOf(spec, p.values),
    seed: p.seed,
    keepResult: run.keepResults ?? false,
  }));
  const bar = run.progress?.(inputs.length);
  let outputs: PointOutput[];
  try {
    outputs = await runJobs<PointInput, PointOutput>(POINT_JOB, inputs, { workers, onDone: (done) => bar?.update(done) });
  } finally {
    bar?.stop();
  }
  const doc = campaignDocument('sweep', spec, shard, outputs.map((o) => o.row));
  const results: RunResult[] = [];
  const labels: string[] = [];
  outputs.forEach((o, i) => {
    if (!o.result) return;
    results.push(o.result);
    labels.push(pointLabel(spec, points[i]!, o.result.seed));
  });
  return { doc, results, labels };
}

function formatOf(opts: SweepOptions): Format {
  if (opts.json) return 'json';
  const f = opts.format ?? 'table';
  if (!(FORMATS as readonly string[]).includes(f)) throw new UsageError(`--format: expected one of ${FORMATS.join(', ')}, got ${JSON.stringify(f)}`);
  return f as Format;
}


export function registerSweep(program: Command): void {
  program
    .command('sweep')
    .description('run a scenario over a grid of parameter values and seeds; one row per run')
    .argument('<scenario>', 'scenario file (YAML)')
    .option('--set <path=v1,v2,...>', 'a grid axis: a field path and its values (repeatable)', (v: string, prev: GridAxis[] = []) => [...prev, parseSet(v)])
    .option('--seeds <A..B>', 'seeds to run every grid point with: A..B, A,B,C or A (default: the scenario\'s seed)')
    .option('--format <format>', 'table, csv or json', 'table')
    .option('--json', 'same as --format json')
    .option('--report <dir>', 'also write report.html (runs side by side), sweep.json and sweep.csv to a directory')
    .option('--workers <n>', 'worker threads, or "auto" for one per core', '1')
    .option('--shard <i/n>', 'run only shard i of n (runs whose number mod n is i-1)')
    .option('--max-memory <size>', `${MAX_MEMORY_HELP}; --workers runs count once each`)
    .addHelpText('after', SWEEP_HELP)
    .action(async (file: string, opts: SweepOptions) => {
      const format = formatOf(opts);
      const { doc, results, labels } = await sweep(file, opts, {
        keepResults: Boolean(opts.report),
        progress: (total) => progressBar(total, 'sweep'),
      });
      process.stdout.write(formatCampaign(doc, format));
      if (opts.report) {
        mkdirSync(opts.report, { recursive: true });
        const title = `latsim sweep: ${results[0]?.scenario ?? file}`;
        writeFileSync(join(opts.report, 'report.html'), htmlReport(results, { title, labels }));
        writeFileSync(join(opts.report, 'sweep.json'), formatCampaign(doc, 'json'));
        writeFileSync(join(opts.report, 'sweep.csv'), formatCampaign(doc, 'csv'));
      }
      process.exitCode = campaignExitCode(doc.rows);
    });
}
