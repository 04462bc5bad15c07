// `latsim run <scenario>`: runs a scenario on the simulator and reports.
// With --bisect, exit codes are git bisect run's: 0 good, 1 bad, 125 skip.
import { readFileSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { loadScenarioFile, MAX_MEMORY_HELP, maxMemoryOption, ScenarioError } from '../scenario-file.ts';
import { intOption, UsageError } from '../errors.ts';
import { simulate } from '../../sim/run.ts';
import { bisectExitCode, exitCodeOf } from '../exit-codes.ts';
import { textReport } from '../../reports/text.ts';
import { resultJson } from '../../reports/json.ts';
import { perfettoTrace } from '../../reports/perfetto.ts';
import { writeReports } from '../../reports/write.ts';


/** Rewrites (or adds) the fingerprint line of a scenario file, leaving the rest as it was. */
export function writeFingerprint(file: string, sha: string): void {
  const text = readFileSync(file, 'utf8');
  const line = `fingerprint: ${sha}`;
  const next = /^fingerprint:.*$/m.test(text)
    ? text.replace(/^fingerprint:.*$/m, line)
    : `${text.replace(/\n*$/, '\n')}${line}\n`;
  writeFileSync(file, next);
}

export function registerRun(program: Command): void {
  program
    .command('run')
    .description('run a scenario in simulated time and report where the latency went')
    .argument('<scenario>', 'scenario file (YAML)')
    .option('--seed <n>', 'override the scenario seed')
    .option('--json', 'print the result as one JSON object')
    .option('--trace <file>', 'write a Perfetto / Chrome trace-event JSON file')
    .option('--report <dir>', 'write report.txt, result.json, trace.json and report.html to a directory')
    .option('--update-fingerprint', 'record this run\'s trace fingerprint in the scenario file')
    .option('--check-fingerprint', 'exit 1 when the trace fingerprint differs from the recorded one')
    .option('--max-memory <size>', MAX_MEMORY_HELP)
    .option('--bisect', 'exit codes for git bisect run: 0 good; 1 bad (budget, liveness, invariant); 125 skip (bad input, internal error)')
    .action((file: string, opts: RunOptions) => {
      if (!opts.bisect) return runAction(file, opts);
      try {
        runAction(file, opts);
        process.exitCode = bisectExitCode(typeof process.exitCode === 'number' ? process.exitCode : 0);
      } catch (e) {
        // The scenario does not apply at this commit, or the commit is broken: neither good nor bad.
        const what = e instanceof ScenarioError || e instanceof UsageError ? (e as Error).message : `internal error: ${(e as Error).stack ?? String(e)}`;
        process.stderr.write(`latsim: ${what}\nlatsim: --bisect: skipping this commit (exit 125)\n`);
        process.exitCode = 125;
      }
    });
}


interface RunOptions {
  seed?: string;
  json?: boolean;
  trace?: string;
  report?: string;
  updateFingerprint?: boolean;
  checkFingerprint?: boolean;
  bisect?: boolean;
  maxMemory?: string;
}

function runAction(file: string, opts: RunOptions): void {
  const scenario = loadScenarioFile(file, { maxMemoryBytes: maxMemoryOption(opts.maxMemory), keepTrace: Boolean(opts.trace || opts.report) });
  const seed = opts.seed === undefined ? undefined : intOption('--seed', opts.seed);
  const t0 = performance.now();
  const run = simulate(scenario, { ...(seed === undefined ? {} : { seed }), keepTrace: Boolean(opts.trace || opts.report) });
  run.result.wall_ms = Math.round(performance.now() - t0);
  const r = run.result;
  let code = exitCodeOf(run.result);
  if (opts.trace) writeFileSync(opts.trace, JSON.stringify(perfettoTrace(run.world.machine.trace.records, r)));
  if (opts.report) writeReports(opts.report, run);
  const seeded = seed === undefined || seed === scenario.seed;
  if (opts.updateFingerprint) {
    if (!seeded) process.stderr.write('latsim: --update-fingerprint records the scenario\'s own seed; drop --seed\n');
    else if (r.outcome !== 'ok') process.stderr.write(`latsim: not recording the fingerprint of a run that ended in ${r.outcome}\n`);
    else if (scenario.fingerprint !== r.trace_sha256) {
      writeFingerprint(file, r.trace_sha256);
      process.stderr.write(`latsim: ${file}: fingerprint ${scenario.fingerprint ?? '(none)'} -> ${r.trace_sha256}\n`);
    }
  } else if (seeded && scenario.fingerprint && scenario.fingerprint !== r.trace_sha256) {
    process.stderr.write(`latsim: ${file}: trace fingerprint ${r.trace_sha256} differs from the recorded ${scenario.fingerprint}` +
      ' (latsim run --update-fingerprint records it deliberately)\n');
    if (opts.checkFingerprint) code = Math.max(code, 1);
  }
  if (opts.json) process.stdout.write(`${JSON.stringify(resultJson(r), null, 2)}\n`);
  else process.stdout.write(`${textReport(r)}\n`);
  if (r.error) process.stderr.write(`latsim: ${r.error}\nreplay: latsim run ${file} --seed ${r.seed}\n`);
  process.exitCode = code;
}
