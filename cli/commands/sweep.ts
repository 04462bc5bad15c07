// `latsim sweep <scenario> --set path=v1,v2 [--seeds A..B]`: runs a scenario
// over a grid of parameter values and seeds and prints one row per run (a
// table, CSV or JSON). Every grid point is checked before the first run, so
// a bad value is one ScenarioError (exit 2) naming the file, line and path.
// The grid, sharding and worker pool live in cli/campaign.ts.
// SIGINT or SIGTERM stops the workers; the rows finished are printed, marked
// partial (JSON: "partial": true and "interrupted"; a table: a last line;
// JSON and CSV: a line on stderr), the --report directory is written with a manifest that
// says it is not complete, and the exit code is 130.
// Leaves out: joining shard outputs (latsim merge reads the JSON form).
import type { Command } from 'commander';
import { MAX_MEMORY_HELP, maxMemoryOption, parseScenario, readScenarioText } from '../scenario-file.ts';
import { UsageError } from '../errors.ts';
import { formatOption, parseSeeds } from '../args.ts';
import {
  campaignDocument, campaignExitCode, campaignSpec, expandGrid, gridCombinations, overridesOf, parseSet,
  parseProgress, parseShard, parseWorkers, POINT_JOB, pointLabel, POINTS_MAX, progressBar, runJobs, shardPoints,
  type CampaignOutput, type PointInput, type PointOutput, type Progress,
} from '../campaign.ts';
import { catchInterrupts, interruptionText, type Interrupts } from '../interrupt.ts';
import { EXIT } from '../exit-codes.ts';
import { checkWritable } from '../output.ts';
import { CAMPAIGN_FORMATS as FORMATS, formatCampaign, type CampaignFormat as Format, type GridAxis } from '../../reports/campaign.ts';
import { htmlReport } from '../../reports/html.ts';
import { writeReportDirectory } from '../../reports/write.ts';
import type { RunResult } from '../../sim/results.ts';


export interface SweepOptions {
  set?: GridAxis[];
  seeds?: string;
  format?: string;
  json?: boolean;
  report?: string;
  workers?: string;
  shard?: string;
  progress?: string;
  maxMemory?: string;
}

const SWEEP_HELP = `
Values are YAML, substituted into the scenario before it is checked; commas
inside [...] or {...} do not split. Runs are numbered with the first --set
outermost and seeds innermost; --shard i/n keeps runs whose number mod n is
i-1, so n shards cover the campaign exactly once. Rows are the same whatever
--workers is. Exit code: the worst of the runs' (as latsim run), 2 for bad
input, 9 for a --report that cannot be written, 130 interrupted (SIGINT,
SIGTERM: the rows finished are printed, marked partial, and --report's
manifest.json says complete: false).

Examples:
  latsim sweep my-scenario.yaml --set migration.flush_timeout=250ms,1s,4s --seeds 1..10
  latsim sweep my-scenario.yaml --set 'migration.policy=legacy,[flush-timeout,min-interval]' --report out/
  latsim sweep my-scenario.yaml --set devices.blk[0].flush=1ms,10ms --seeds 1..1000 --shard 2/8 --json
`;

export interface SweepRun {
  readonly doc: CampaignOutput;
  /** Full results (with keepResults), for the HTML report; runs that threw have none. */
  readonly results: RunResult[];
  /** One label per result: its grid values and seed. */
  readonly labels: string[];
}

/** Runs a sweep: checks every grid point, then runs this shard's points. */
export async function sweep(file: string, opts: SweepOptions, run: {
  keepResults?: boolean;
  progress?: (total: number) => Progress;
  interrupts?: Pick<Interrupts, 'signal' | 'received'>;
} = {}): Promise<SweepRun> {
  const text = readScenarioText(file);
  const axes = opts.set ?? [];
  const seeds = opts.seeds === undefined ? null : parseSeeds('--seeds', opts.seeds, POINTS_MAX);
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
  const signal = run.interrupts?.signal;
  let jobs;
  try {
    jobs = await runJobs<PointInput, PointOutput>(POINT_JOB, inputs, { workers, onDone: (done) => bar?.update(done), ...(signal ? { signal } : {}) });
  } finally {
    bar?.stop();
  }
  const received = run.interrupts?.received() ?? null;
  const interrupted = received !== null && jobs.done < inputs.length ? { signal: received, done: jobs.done, total: inputs.length } : null;
  const doc = campaignDocument('sweep', spec, shard, jobs.outputs.flatMap((o) => (o ? [o.row] : [])), interrupted);
  const results: RunResult[] = [];
  const labels: string[] = [];
  jobs.outputs.forEach((o, i) => {
    if (!o?.result) return;
    results.push(o.result);
    labels.push(pointLabel(spec, points[i]!, o.result.seed));
  });
  return { doc, results, labels };
}

function formatOf(opts: SweepOptions): Format {
  const f = formatOption(opts) ?? 'table';
  if (!(FORMATS as readonly string[]).includes(f)) throw new UsageError(`--format: expected one of ${FORMATS.join(', ')}, got ${JSON.stringify(f)}`);
  return f as Format;
}

export function registerSweep(command: Command): void {
  command
    .argument('<scenario>', 'scenario file (YAML)')
    .option('--set <path=v1,v2,...>', 'a grid axis: a field path and its values (repeatable)', (v: string, prev: GridAxis[] = []) => [...prev, parseSet(v)])
    .option('--seeds <A..B>', 'seeds to run every grid point with: A..B, A,B,C or A (default: the scenario\'s seed)')
    .option('--format <format>', 'table, csv or json (default: table)')
    .option('--json', 'same as --format json')
    .option('--report <dir>', 'also write report.html (runs side by side), sweep.json, sweep.csv and manifest.json to a directory')
    .option('--workers <n>', 'worker threads, or "auto" for one per core', '1')
    .option('--shard <i/n>', 'run only shard i of n (runs whose number mod n is i-1)')
    .option('--progress <mode>', 'auto (a bar on a terminal), lines (a line on stderr per finished run, for logs) or none')
    .option('--max-memory <size>', `${MAX_MEMORY_HELP}; --workers runs count once each`)
    .addHelpText('after', SWEEP_HELP)
    .action(async (file: string, opts: SweepOptions) => {
      const format = formatOf(opts);
      const progress = parseProgress(opts.progress);
      // A --report that cannot be written is said before the campaign runs, not after.
      if (opts.report !== undefined) checkWritable(opts.report, 'directory');
      const interrupts = catchInterrupts();
      let swept: SweepRun;
      try {
        swept = await sweep(file, opts, {
          keepResults: Boolean(opts.report),
          progress: (total) => progressBar(total, 'sweep', progress),
          interrupts,
        });
      } finally {
        interrupts.dispose();
      }
      const { doc, results, labels } = swept;
      const note = doc.interrupted ? `latsim sweep: ${interruptionText(doc.interrupted, 'runs')}; the rows are the runs that finished` : null;
      process.stdout.write(formatCampaign(doc, format));
      if (note) {
        if (format === 'table') process.stdout.write(`${note}\n`);
        else process.stderr.write(`${note}\n`);
      }
      process.exitCode = doc.interrupted ? EXIT.interrupted : campaignExitCode(doc.rows);
      if (opts.report !== undefined) {
        const title = `latsim sweep: ${results[0]?.scenario ?? file}`;
        writeReportDirectory(opts.report, 'sweep', [
          { name: 'report.html', text: htmlReport(results, { title, labels }) },
          { name: 'sweep.json', text: formatCampaign(doc, 'json') },
          { name: 'sweep.csv', text: formatCampaign(doc, 'csv') },
        ], doc.interrupted ? interruptionText(doc.interrupted, 'runs') : null);
      }
    });
}
