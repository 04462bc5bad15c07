// The `latsim` command line. Each subcommand lives in cli/commands/; this file
// wires them up, documents the exit codes, and turns user mistakes into one
// line on stderr with exit code 2 (never a stack trace).
import { Command, CommanderError } from 'commander';
import { ScenarioError } from './scenario-file.ts';
import { UsageError } from './errors.ts';
import { registerRun } from './commands/run.ts';
import { registerCheck } from './commands/check.ts';
import { registerSchema } from './commands/schema.ts';
import { registerSweep } from './commands/sweep.ts';
import { registerStatechart } from './commands/statechart.ts';
import { registerDiff } from './commands/diff.ts';
import { registerFuzz } from './commands/fuzz.ts';
import { registerMerge } from './commands/merge.ts';
import { registerBisectParam } from './commands/bisect-param.ts';
import { registerBisect } from './commands/bisect.ts';
import { registerReal } from './commands/real.ts';
import { registerQemu } from './commands/qemu.ts';

export const EXIT = {
  ok: 0,
  budget: 1,
  badInput: 2,
  liveness: 3,
  invariant: 4,
  internal: 5,
  realUnavailable: 6,
  guestFailed: 7,
  destinationFailed: 8,
} as const;

export const EXIT_CODES_HELP = `
Exit codes:
  0  every budget held
  1  a budget failed (or, for check/diff, a difference was found)
  2  bad input: a malformed scenario, an unknown option, a missing file
  3  liveness bound hit (simulated time or event count); the seed is printed
  4  invariant violated (lost page, lost acknowledged write, lock discipline)
  5  internal error
  6  real mode unavailable (no /dev/kvm, no permission, API or capability missing, addon not built)
  7  the real guest failed (e.g. a triple fault)
  8  the real migration's destination process failed or its stream broke
`;

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('latsim')
    .description('Deterministic simulation of QEMU\'s main loop and live migration: replay a scenario, see where the latency went.')
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({ outputError: () => {} })
    .addHelpText('after', EXIT_CODES_HELP);
  registerRun(program);
  registerCheck(program);
  registerSchema(program);
  registerSweep(program);
  registerStatechart(program);
  registerDiff(program);
  registerFuzz(program);
  registerMerge(program);
  registerBisect(program);
  registerBisectParam(program);
  registerReal(program);
  registerQemu(program);
  for (const c of program.commands) c.exitOverride().configureOutput({ outputError: () => {} });
  return program;
}

/** Runs the CLI; returns the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return EXIT.ok;
      process.stderr.write(`latsim: ${e.message.replace(/^error: /, '')}\n`);
      return EXIT.badInput;
    }
    if (e instanceof ScenarioError || e instanceof UsageError) {
      process.stderr.write(`latsim: ${e.message}\n`);
      return EXIT.badInput;
    }
    process.stderr.write(`latsim: internal error: ${(e as Error).stack ?? String(e)}\n`);
    return EXIT.internal;
  }
}
