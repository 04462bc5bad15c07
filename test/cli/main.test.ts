// The command table of cli/main.ts: `latsim --help` lists every command from
// COMMANDS without loading its module, and must read exactly as it would with
// every module loaded; a command's own options appear once it is named.
import { Help } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram, COMMANDS } from '../../cli/main.ts';
import { runCli } from './helpers.ts';

describe('the command table', () => {
  it('lists each command as its loaded module defines it', async () => {
    const loaded = await buildProgram([], true);
    const listed = COMMANDS.map((c) => `${c.name} ${c.usage}`.trim());
    const defined = loaded.commands.map((c) => new Help().subcommandTerm(c));
    expect(listed).toEqual(defined);
  });

  it('gives the same top-level help with no command module loaded as with all of them', async () => {
    const lazy = await buildProgram(['--help']);
    const loaded = await buildProgram([], true);
    expect(lazy.commands.every((c) => c.options.length === 0 && c.commands.length === 0)).toBe(true);
    expect(lazy.helpInformation()).toBe(loaded.helpInformation());
    const help = await runCli(['--help']);
    expect(help.code).toBe(0);
    for (const c of COMMANDS) expect(help.stdout).toContain(c.description.split(' ').slice(0, 3).join(' '));
  });

  it('loads the command that argv names, for running it and for `help NAME`', async () => {
    for (const argv of [['run', 'x.yaml'], ['help', 'run']]) {
      const program = await buildProgram(argv);
      const withOptions = program.commands.filter((c) => c.options.length > 0).map((c) => c.name());
      expect(withOptions).toEqual(['run']);
    }
    const help = await runCli(['help', 'run']);
    expect(help.stdout).toContain('--update-fingerprint');
    const unknown = await runCli(['ru']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toBe('latsim: unknown command \'ru\'\n(Did you mean run?)\n');
  });
});
