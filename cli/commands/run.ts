// `latsim run <scenario>`: runs a scenario on the simulator and reports.
// The report goes to stdout first, then the files (--trace, --report, the
// fingerprint): a file that cannot be written costs nothing else, and is one
// line and exit 9. With --bisect, exit codes are git bisect run's: 0 good,
// 1 bad, 125 skip.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { loadScenarioFile, MAX_MEMORY_HELP, maxMemoryOption, printableName, ScenarioError } from '../scenario-file.ts';
import { UsageError } from '../errors.ts';
import { conflict, parseSeed } from '../args.ts';
import { outputErrorsOf, writeAll, writeFileAtomic } from '../output.ts';
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
  writeFileAtomic(file, next);
}

export function registerRun(command: Command): void {
  command
    .argument('<scenario>', 'scenario file (YAML)')
    .option('--seed <n>', 'override the scenario seed')
    .option('--json', 'print the result as one JSON object')
    .option('--trace <file>', 'write a Perfetto / Chrome trace-event JSON file')
    .option('--report <dir>', 'write report.txt, result.json, trace.json, report.html and manifest.json (last) to a directory')
    .option('--update-fingerprint', 'record this run\'s trace fingerprint in the scenario file')
    .option('--check-fingerprint', 'exit 1 when the trace fingerprint differs from the recorded one')
    .option('--max-memory <size>', MAX_MEMORY_HELP)
    .option('--bisect', 'exit codes for git bisect run: 0 good; 1 bad (budget, liveness, invariant); 125 skip (bad input, internal error)')
    .action((file: string, opts: RunOptions) => {
      // A misuse of the options is exit 2 even with --bisect: it is not the commit's fault.
      checkOptions(file, opts);
      if (!opts.bisect) return runAction(file, opts);
      try {
        runAction(file, opts);
        process.exitCode = bisectExitCode(typeof process.exitCode === 'number' ? process.exitCode : 0);
      } catch (e) {
        // The scenario does not apply at this commit, or the commit is broken: neither good nor bad.
        const outputs = outputErrorsOf(e);
        const what = e instanceof ScenarioError || e instanceof UsageError ? (e as Error).message
          : outputs ? outputs.map((o) => o.message).join('\nlatsim: ') : `internal error: ${(e as Error).stack ?? String(e)}`;
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

/** Options that exclude each other, or outputs that would overwrite the scenario or each other. */
function checkOptions(file: string, opts: RunOptions): void {
  if (opts.updateFingerprint && opts.checkFingerprint) throw conflict('--update-fingerprint', '--check-fingerprint', 'one records the fingerprint, the other checks it');
  if (opts.updateFingerprint && opts.bisect) throw conflict('--update-fingerprint', '--bisect', 'a bisection does not change the scenario file');
  if (opts.trace !== undefined && opts.report !== undefined && resolve(opts.trace) === resolve(opts.report)) {
    throw conflict(`--trace ${opts.trace}`, `--report ${opts.report}`, 'the same path');
  }
  for (const [flag, path] of [['--trace', opts.trace], ['--report', opts.report]] as const) {
    if (path !== undefined && resolve(path) === resolve(file)) throw new UsageError(`${flag} ${path}: that is the scenario file`);
  }
}

function runAction(file: string, opts: RunOptions): void {
  const scenario = loadScenarioFile(file, { maxMemoryBytes: maxMemoryOption(opts.maxMemory), keepTrace: Boolean(opts.trace || opts.report) });
  const seed = opts.seed === undefined ? undefined : parseSeed('--seed', opts.seed);
  if (opts.updateFingerprint && seed !== undefined && seed !== scenario.seed) {
    throw conflict(`--seed ${seed}`, '--update-fingerprint', `the fingerprint recorded is that of the scenario's own seed, ${scenario.seed}`);
  }
  const t0 = performance.now();
  const run = simulate(scenario, { ...(seed === undefined ? {} : { seed }), keepTrace: Boolean(opts.trace || opts.report) });
  run.result.wall_ms = Math.round(performance.now() - t0);
  const r = run.result;
  let code = exitCodeOf(run.result);
  const seeded = seed === undefined || seed === scenario.seed;
  const record = opts.updateFingerprint && scenario.fingerprint !== r.trace_sha256 && r.outcome === 'ok';
  if (opts.updateFingerprint && r.outcome !== 'ok') {
    process.stderr.write(`latsim: not recording the fingerprint of a run that ended in ${r.outcome}\n`);
  } else if (!opts.updateFingerprint && seeded && scenario.fingerprint && scenario.fingerprint !== r.trace_sha256) {
    process.stderr.write(`latsim: ${file}: trace fingerprint ${r.trace_sha256} differs from the recorded ${scenario.fingerprint}` +
      ' (latsim run --update-fingerprint records it deliberately)\n');
    if (opts.checkFingerprint) code = Math.max(code, 1);
  }
  if (opts.json) process.stdout.write(`${JSON.stringify(resultJson(r), null, 2)}\n`);
  else process.stdout.write(`${textReport(r)}\n`);
  if (r.error) process.stderr.write(`latsim: ${r.error}\nreplay: latsim run ${printableName(file)} --seed ${r.seed}\n`);
  process.exitCode = code;
  writeAll([
    () => opts.trace !== undefined && writeFileAtomic(opts.trace, JSON.stringify(perfettoTrace(run.world.machine.trace.records, r))),
    () => opts.report !== undefined && writeReports(opts.report, run),
    () => {
      if (!record) return;
      writeFingerprint(file, r.trace_sha256);
      process.stderr.write(`latsim: ${file}: fingerprint ${scenario.fingerprint ?? '(none)'} -> ${r.trace_sha256}\n`);
    },
  ]);
}
