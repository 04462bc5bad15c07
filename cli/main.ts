// The `latsim` command line. Each subcommand lives in cli/commands/; this file
// wires them up, documents the exit codes (cli/exit-codes.ts), refuses empty
// option values for every command, and turns what is not latsim's fault into
// one line on stderr, never a stack trace: user mistakes exit 2, outputs that
// cannot be written exit 9, a closed stdout ends quietly with the command's
// own exit code. Only internal errors print a stack (exit 5).
// A command's module is loaded only when that command runs or its help is
// asked for, so `latsim --help` loads none of the model, the reports or the
// real backends; the list it shows comes from COMMANDS below.
import { Command, CommanderError, Help } from 'commander';
import { ScenarioError, UsageError } from './errors.ts';
import { refuseEmptyValues } from './args.ts';
import { EXIT, EXIT_CODES_HELP } from './exit-codes.ts';
import { flushStdout, guardStdio, outputErrorsOf } from './output.ts';
export { EXIT } from './exit-codes.ts';

interface CommandEntry {
  readonly name: string;
  /** What `latsim --help` shows after the name: [options] and the arguments, as commander writes them. */
  readonly usage: string;
  readonly description: string;
  /** The command's module; its register function adds the arguments, options and action. */
  readonly load: () => Promise<(command: Command) => void>;
}

/** Every command, in the order `latsim --help` lists them. */
export const COMMANDS: readonly CommandEntry[] = [
  { name: 'run', usage: '[options] <scenario>', description: 'run a scenario in simulated time and report where the latency went',
    load: async () => (await import('./commands/run.ts')).registerRun },
  { name: 'check', usage: '[options] <files...>', description: 'validate scenario files (exit 2 on the first mistake in each)',
    load: async () => (await import('./commands/check.ts')).registerCheck },
  { name: 'schema', usage: '[options]', description: 'print the scenario JSON Schema (--write updates scenarios/latsim.schema.json)',
    load: async () => (await import('./commands/schema.ts')).registerSchema },
  { name: 'sweep', usage: '[options] <scenario>', description: 'run a scenario over a grid of parameter values and seeds; one row per run',
    load: async () => (await import('./commands/sweep.ts')).registerSweep },
  { name: 'statechart', usage: '', description: 'print the migration statechart (xstate v5) for the Stately visualizer',
    load: async () => (await import('./commands/statechart.ts')).registerStatechart },
  { name: 'diff', usage: '[options] <a> <b>', description: 'compare two runs (results, traces or --report directories): first divergent event, latency deltas, verdict',
    load: async () => (await import('./commands/diff.ts')).registerDiff },
  { name: 'fuzz', usage: '[options]', description: 'swarm-test the model: random knobs per seed, safety under faults, liveness without; shrink failures',
    load: async () => (await import('./commands/fuzz.ts')).registerFuzz },
  { name: 'merge', usage: '[options] <files...>', description: 'join the --json outputs of the shards of one sweep or fuzz campaign into the output of the whole campaign',
    load: async () => (await import('./commands/merge.ts')).registerMerge },
  { name: 'bisect', usage: '[options] <scenario>', description: 'find the first commit at which a scenario\'s budgets fail (git worktrees, binary search)',
    load: async () => (await import('./commands/bisect.ts')).registerBisect },
  { name: 'bisect-param', usage: '[options] <scenario>', description: 'binary search over one scenario parameter for the value at which a budget starts to fail',
    load: async () => (await import('./commands/bisect-param.ts')).registerBisectParam },
  { name: 'real', usage: '', description: 'run scenarios on a real KVM virtual machine (needs /dev/kvm and the addon)',
    load: async () => (await import('./commands/real.ts')).registerReal },
  { name: 'qemu', usage: '', description: 'run scenarios on a real QEMU binary with KVM, and compare them with the simulation',
    load: async () => (await import('./commands/qemu.ts')).registerQemu },
];

/** The command argv names (`latsim NAME ...` or `latsim help NAME`), if it names one. */
function commandNamed(argv: readonly string[]): CommandEntry | undefined {
  const name = argv[0] === 'help' ? argv[1] : argv[0];
  return COMMANDS.find((c) => c.name === name);
}

/** A command as `latsim --help` lists it: from COMMANDS, whose modules may not be loaded. */
function subcommandTerm(command: Command): string {
  const c = COMMANDS.find((e) => e.name === command.name());
  return c === undefined ? new Help().subcommandTerm(command) : c.usage ? `${c.name} ${c.usage}` : c.name;
}

/**
 * The program for argv: every command by name and description, and the one
 * argv names (if any) with its module loaded, or all of them with `all`.
 */
export async function buildProgram(argv: readonly string[], all = false): Promise<Command> {
  const program = new Command();
  program
    .name('latsim')
    .description('Deterministic simulation of QEMU\'s main loop and live migration: replay a scenario, see where the latency went.')
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({ outputError: () => {} })
    .configureHelp({ subcommandTerm: subcommandTerm })
    .addHelpText('after', EXIT_CODES_HELP)
    .hook('preAction', (_program, action) => refuseEmptyValues(action));
  const named = commandNamed(argv);
  for (const c of COMMANDS) {
    const command = program.command(c.name).description(c.description);
    if (all || c === named) (await c.load())(command);
  }
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
  const program = await buildProgram(argv);
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
