// `latsim qemu ...`: a scenario on the user's own QEMU binary with KVM
// (real/qemu/, README "Real QEMU").
//   probe     the binary, its version, the accelerator, its migration capabilities
//   run       the scenario on QEMU: boot the payload, migrate over loopback, check memory
//   compare   the scenario on the simulation and on QEMU, side by side, with gaps
//   calibrate this host's per-page costs, link and guest rate, as a scenario fragment
// Exit codes: those of latsim run (0, 1 a budget failed, 2 bad input, 4 memory
// differed at switchover, 9 an output could not be written), 6 QEMU or KVM
// unavailable (one line), 7 the guest failed (did not boot or run before the
// migration), 8 the migration failed (QEMU's status `failed` unless the
// scenario expects it, a QMP failure during the migration, the guest not
// resuming on the destination). With --bisect, `latsim qemu run` exits as
// `git bisect run` reads it.
// Leaves out: --seed (a QEMU run is not reproducible), fingerprints, the
// Perfetto and HTML reports (they need the simulation's trace).
import { dirname, join, relative, resolve } from 'node:path';
import type { Command } from 'commander';
import { ScenarioError } from '../scenario-file.ts';
import { UsageError } from '../errors.ts';
import { realScenarioOf } from '../real-scenario.ts';
import { parseInteger } from '../args.ts';
import { checkWritable, ensureDirectory, outputErrorsOf, writeFileAtomic } from '../output.ts';
import { bisectExitCode } from '../exit-codes.ts';
import { writeReportDirectory } from '../../reports/write.ts';
import { parseBandwidth, parseSize } from '../../sim/scenario/units.ts';
import type { Scenario } from '../../sim/scenario/scenario.ts';
import { resultJson } from '../../reports/json.ts';
import { DEFAULT_QEMU, probeQemu } from '../../real/qemu/probe.ts';
import { queryCapabilities, type QemuCapabilities } from '../../real/qemu/capabilities.ts';
import { QemuUnavailable, runOnQemu } from '../../real/qemu/run.ts';
import type { QemuRunResult } from '../../real/qemu/result.ts';
import { evaluateQemuBudgets, qemuExitCode, QEMU_EXIT } from '../../real/qemu/budgets.ts';
import { summarize } from '../../real/qemu/summary.ts';
import { compareOnQemu } from '../../real/qemu/compare.ts';
import { compareText, probeText, runText, summaryText } from '../../real/qemu/report.ts';
import { calibrate, calibrationFragment, calibrationText } from '../../real/qemu/calibrate.ts';


export const QEMU_EXIT_CODES_HELP = `
Exit codes (besides latsim run's 0 every budget held, 1 a budget failed, 2 bad
input, 4 memory differed at switchover, 9 an output could not be written):
  6  QEMU or KVM unavailable: the binary does not run, /dev/kvm missing or not
     usable, no trace backend, the guest payload not built
  7  the guest failed: it did not boot or run on QEMU before the migration
  8  the migration failed: status "failed" (unless expected), QMP failing
     during the migration, the guest not resuming on the destination
With --bisect (qemu run): 0 good; 1 bad (a budget failed, memory differed, the
migration failed); 125 skip (QEMU unavailable, the guest did not boot, bad input).
`;

interface CommonOptions {
  qemu?: string;
  json?: boolean;
  repeat?: string;
  duration?: string;
  memory?: string;
}

/** QEMU runs one command may make. */
const REPEAT_MAX = 100;

function repeatOf(o: CommonOptions): number {
  return o.repeat === undefined ? 1 : parseInteger('--repeat', o.repeat, 1, REPEAT_MAX);
}

/**
 * Mistakes in the options, found before any QEMU starts (a run takes a while):
 * a bad --repeat, a --report that is the scenario file or cannot be written.
 * They are exit 2 (or 9) even with --bisect: not the commit's fault.
 */
function checkRunOptions(file: string, o: CommonOptions & { report?: string }): void {
  repeatOf(o);
  if (o.report !== undefined) {
    if (resolve(o.report) === resolve(file)) throw new UsageError(`--report ${o.report}: that is the scenario file`);
    checkWritable(o.report, 'directory');
  }
}

/** Unavailable: one line and exit 6, before anything else runs. */
function needQemu(binary: string): void {
  const p = probeQemu(binary);
  if (!p.available) throw new QemuUnavailable(p.reason);
}

const progress = (line: string) => process.stderr.write(`latsim: ${line}\n`);

/** Runs a qemu action; unavailability becomes one line and exit 6. */
async function guarded(action: () => Promise<number>): Promise<void> {
  try {
    process.exitCode = await action();
  } catch (e) {
    if (!(e instanceof QemuUnavailable)) throw e;
    process.stderr.write(`latsim: qemu: QEMU backend unavailable: ${e.message}\n`);
    process.exitCode = QEMU_EXIT.unavailable;
  }
}

/**
 * The exit code as `git bisect run` reads it: 0 good; 1 bad (a budget
 * failed, memory differed, or the migration failed on this QEMU); 125 skip
 * (this QEMU cannot be run or the guest does not boot on it: not what is
 * being bisected).
 */
export function qemuBisectExitCode(code: number): number {
  if (code === QEMU_EXIT.migrationFailed) return 1;
  return bisectExitCode(code);
}

async function probeAction(o: { qemu?: string; json?: boolean }): Promise<number> {
  const binary = o.qemu ?? DEFAULT_QEMU;
  const p = probeQemu(binary);
  // Unavailable: one line (the JSON says more).
  if (!p.available && !o.json) throw new QemuUnavailable(p.reason);
  let caps: QemuCapabilities | null = null;
  let capsError = '';
  if (p.version) {
    try {
      caps = await queryCapabilities(binary, p.kvm);
    } catch (e) {
      capsError = (e as Error).message;
    }
  }
  if (o.json) {
    process.stdout.write(`${JSON.stringify({ ...p, accelerator: p.kvm ? 'kvm' : null, capabilities: caps, ...(capsError ? { capabilities_error: capsError } : {}) }, null, 2)}\n`);
  } else {
    process.stdout.write(`${probeText(p, caps)}\n`);
  }
  if (!p.available) throw new QemuUnavailable(p.reason);
  return 0;
}

/** A run's JSON: the result with its budgets, as latsim run prints a simulated one. */
function runJson(r: QemuRunResult, s: Scenario): Record<string, unknown> {
  const expect = evaluateQemuBudgets(s, [r]);
  return { ...r, expect, pass: r.outcome === 'ok' && r.failure === null && expect.every((b) => b.pass) };
}

async function runAction(file: string, o: CommonOptions & { report?: string; bisect?: boolean; prealloc?: boolean }): Promise<number> {
  const s = realScenarioOf(file, o);
  const repeat = repeatOf(o);
  const binary = o.qemu ?? DEFAULT_QEMU;
  needQemu(binary);
  const runs: QemuRunResult[] = [];
  for (let i = 0; i < repeat; i++) {
    const r = await runOnQemu(s, { qemu: binary, ...(o.prealloc ? { preallocDestination: true } : {}) });
    if (repeat > 1) progress(`qemu run ${i + 1}/${repeat}: ${r.outcome}, ${r.migration?.status ?? 'no migration'}, ${r.wall_ms} ms`);
    runs.push(r);
  }
  const budgets = evaluateQemuBudgets(s, runs);
  const code = qemuExitCode(s, runs, budgets);
  const summary = repeat > 1 ? summarize(runs) : null;
  const r0 = runs[0]!;
  const json = summary
    ? {
      scenario: s.name, file: s.file, seed: s.seed, backend: 'qemu', repeat,
      qemu: { version: r0.qemu.version, package: r0.qemu.package, binary: r0.qemu.binary },
      summary, expect: budgets, pass: code === 0, runs,
    }
    : runJson(r0, s);
  const text = summary ? summaryText(summary, runs, budgets) : runText(r0, budgets);
  // The report first: a file that cannot be written does not cost it.
  process.stdout.write(o.json ? `${JSON.stringify(json, null, 2)}\n` : `${text}\n`);
  for (const r of runs) if (r.error) process.stderr.write(`latsim: qemu: ${r.error}\n`);
  if (o.report !== undefined) {
    writeReportDirectory(o.report, 'qemu run', [
      { name: 'report.txt', text: `${text}\n` },
      { name: 'result.json', text: `${JSON.stringify(json, null, 2)}\n` },
    ]);
  }
  return o.bisect ? qemuBisectExitCode(code) : code;
}

async function compareAction(file: string, o: CommonOptions & { link?: string; strict?: boolean; prealloc?: boolean }): Promise<number> {
  const s = realScenarioOf(file, o);
  const repeat = repeatOf(o);
  let linkBandwidth: number | undefined;
  if (o.link !== undefined) {
    const bw = parseBandwidth(o.link);
    if (bw === null || bw <= 0) throw new UsageError(`--link: expected a bandwidth such as 80MB/s, got ${JSON.stringify(o.link)}`);
    linkBandwidth = bw;
  }
  const binary = o.qemu ?? DEFAULT_QEMU;
  needQemu(binary);
  const c = await compareOnQemu(s, {
    qemu: binary, repeat, preallocDestination: o.prealloc ?? true, ...(linkBandwidth === undefined ? {} : { linkBandwidth }), log: progress,
  });
  if (o.json) {
    process.stdout.write(`${JSON.stringify({ ...c, sim: resultJson(c.sim) }, null, 2)}\n`);
  } else {
    process.stdout.write(`${compareText(c)}\n`);
  }
  const budgets = evaluateQemuBudgets(s, c.runs);
  // Budgets do not decide a comparison: only a QEMU run that failed does.
  const code = qemuExitCode(s, c.runs, budgets.map((b) => ({ ...b, pass: true })));
  if (code !== 0) return code;
  return o.strict && c.outside.length > 0 ? 1 : 0;
}

async function calibrateAction(o: { qemu?: string; json?: boolean; write?: string; memory?: string; repeat?: string }): Promise<number> {
  const repeat = o.repeat === undefined ? 3 : parseInteger('--repeat', o.repeat, 1, REPEAT_MAX);
  if (o.write !== undefined) checkWritable(o.write, 'file');
  const memoryBytes = o.memory === undefined ? undefined : parseMemory(o.memory);
  const binary = o.qemu ?? DEFAULT_QEMU;
  needQemu(binary);
  const c = await calibrate({ qemu: binary, repeat, ...(memoryBytes === undefined ? {} : { memoryBytes }), log: progress });
  process.stdout.write(o.json ? `${JSON.stringify(c, null, 2)}\n` : `${calibrationText(c)}\n`);
  if (o.write !== undefined) {
    // The date only: a fragment says when it was measured, not to the second.
    ensureDirectory(dirname(o.write));
    const schema = relative(dirname(resolve(o.write)), join(import.meta.dirname, '..', '..', 'scenarios', 'latsim.schema.json'));
    writeFileAtomic(o.write, calibrationFragment(c, new Date().toISOString().slice(0, 10), schema));
    progress(`qemu calibrate: wrote ${o.write}`);
  }
  return 0;
}

function parseMemory(v: string): number {
  const b = parseSize(v);
  if (b === null || b < 16 * 2 ** 20 || b > 3 * 2 ** 30) throw new UsageError(`--memory: expected a size from 16MiB to 3GiB (the QEMU guest is 32-bit), got ${JSON.stringify(v)}`);
  return b;
}

export function registerQemu(command: Command): void {
  const qemu = command
    .addHelpText('after', QEMU_EXIT_CODES_HELP);

  qemu.command('probe')
    .description('say what the QEMU binary offers: version, accelerator, migration capabilities and parameters')
    .option('--qemu <path>', `the QEMU binary (default ${DEFAULT_QEMU})`)
    .option('--json', 'print one JSON object')
    .action((o: { qemu?: string; json?: boolean }) => guarded(() => probeAction(o)));

  qemu.command('run')
    .description('run the scenario on QEMU: boot the guest payload, migrate it over loopback, check the destination\'s memory')
    .argument('<scenario>', 'scenario file (YAML)')
    .option('--qemu <path>', `the QEMU binary (default ${DEFAULT_QEMU}; e.g. build/qemu-system-x86_64 of a source tree)`)
    .option('--repeat <n>', 'run it n times and report medians with ranges (min..max)')
    .option('--json', 'print the result as one JSON object')
    .option('--report <dir>', 'write report.txt, result.json and manifest.json (last) to a directory')
    .option('--duration <d>', 'run this long at most instead of the scenario\'s duration (e.g. 10s)')
    .option('--memory <size>', 'give the guest this much memory instead (e.g. 64MiB)')
    .option('--prealloc', 'start the destination with -mem-prealloc (as qemu compare does; default: the scenario\'s migration.destination_prealloc)')
    .option('--bisect', 'exit codes for git bisect run: 0 good; 1 bad (budget, memory, migration failed); 125 skip (QEMU unavailable, guest failed, bad input)')
    .action((file: string, o: CommonOptions & { report?: string; bisect?: boolean; prealloc?: boolean }) => {
      // A misuse of the options is exit 2 (an unwritable --report 9) even with --bisect.
      checkRunOptions(file, o);
      if (!o.bisect) return guarded(() => runAction(file, o));
      return guarded(async () => {
        try {
          return await runAction(file, o);
        } catch (e) {
          if (e instanceof QemuUnavailable) {
            process.stderr.write(`latsim: qemu: QEMU backend unavailable: ${e.message}\nlatsim: --bisect: skipping this commit (exit 125)\n`);
            return 125;
          }
          // The scenario does not apply to this tree, or latsim broke: neither good nor bad.
          const outputs = outputErrorsOf(e);
          const what = e instanceof ScenarioError || e instanceof UsageError ? (e as Error).message
            : outputs ? outputs.map((x) => x.message).join('\nlatsim: ') : `internal error: ${(e as Error).stack ?? String(e)}`;
          process.stderr.write(`latsim: ${what}\nlatsim: --bisect: skipping this commit (exit 125)\n`);
          return 125;
        }
      });
    });

  qemu.command('compare')
    .description('run the scenario on the simulation and on QEMU and print status, syncs, pages, bytes and times side by side with their gaps')
    .argument('<scenario>', 'scenario file (YAML)')
    .option('--qemu <path>', `the QEMU binary (default ${DEFAULT_QEMU})`)
    .option('--repeat <n>', 'QEMU runs (median and range); the simulation runs once')
    .option('--json', 'print the comparison, the simulation\'s result and every QEMU run as one JSON object')
    .option('--link <bandwidth>', 'simulate on this link (e.g. 76MB/s) instead of measuring QEMU\'s unthrottled stream first')
    .option('--duration <d>', 'both run this long at most instead (e.g. 10s)')
    .option('--memory <size>', 'both guests get this much memory instead (e.g. 64MiB)')
    .option('--no-prealloc', 'do not start the destinations with -mem-prealloc (their first touch of each page then slows the first pass)')
    .option('--strict', 'exit 1 when a metric is outside the scenario\'s fidelity goals')
    .action((file: string, o: CommonOptions & { link?: string; strict?: boolean; prealloc?: boolean }) => guarded(() => compareAction(file, o)));

  qemu.command('calibrate')
    .description('measure this host\'s costs on QEMU (zero-page scan, page send, dirty sync, destination first touch, load and zero-page check, downtime floor, the guest\'s fastest rate, loopback TCP, the host\'s CPUs) and print them as the qemu.host section')
    .option('--qemu <path>', `the QEMU binary (default ${DEFAULT_QEMU})`)
    .option('--memory <size>', 'the calibration guests\' memory (default 512MiB)')
    .option('--repeat <n>', 'rounds of measurement (default 3): each cost is the least seen, each rate the greatest')
    .option('--write <file>', 'write the costs as a scenario fragment (YAML) that scenarios include, e.g. scenarios/fidelity/host.yaml')
    .option('--json', 'print the calibration as one JSON object')
    .action((o: { qemu?: string; json?: boolean; write?: string; memory?: string; repeat?: string }) => guarded(() => calibrateAction(o)));

  for (const c of qemu.commands) c.exitOverride().configureOutput({ outputError: () => {} });
}
