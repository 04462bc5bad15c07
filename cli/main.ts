// The `latsim` command line. Each subcommand lives in cli/commands/; this file
// wires them up, documents the exit codes (cli/exit-codes.ts), refuses empty
// option values for every command, and turns what is not latsim's fault into
// one line on stderr, never a stack trace: user mistakes exit 2, outputs that
// cannot be written exit 9, a closed stdout ends quietly with the command's
// own exit code. Only internal errors print a stack (exit 5).
import { Command, CommanderError } from 'commander';
import { ScenarioError } from './scenario-file.ts';
import { UsageError } from './errors.ts';
import { refuseEmptyValues } from './args.ts';
import { EXIT, EXIT_CODES_HELP } from './exit-codes.ts';
import { flushStdout, guardStdio, outputErrorsOf } from './output.ts';
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

export { EXIT } from './exit-codes.ts';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('latsim')
    .description('Deterministic simulation of QEMU\'s main loop and live migration: replay a scenario, see where the latency went.')
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({ outputError: () => {} })
    .addHelpText('after', EXIT_CODES_HELP)
    .hook('preAction', (_program, action) => refuseEmptyValues(action));
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
  for (const c of program.commands) c.exitOverride().configureOutput({ outputError: () => {} });
  return program;
}

/** Runs the CLI; returns the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  guardStdio();
  let code = await command(argv);
  const stdout = await flushStdout();
  if (stdout) {
    process.stderr.write(`latsim: ${stdout.message}\n`);
    if (code !== EXIT.interrupted) code = EXIT.output;
  }
  return code;
}

async function command(argv: readonly string[]): Promise<number> {
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
    const outputs = outputErrorsOf(e);
    if (outputs) {
      for (const o of outputs) process.stderr.write(`latsim: ${o.message}\n`);
      // An interrupted command stays interrupted; its outputs said what they could.
      return process.exitCode === EXIT.interrupted ? EXIT.interrupted : EXIT.output;
    }
    process.stderr.write(`latsim: internal error: ${(e as Error).stack ?? String(e)}\n`);
    return EXIT.internal;
  }
}
