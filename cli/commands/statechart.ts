// `latsim statechart`: prints the migration statechart's definition as JSON,
// to paste into the Stately visualizer (actions and guards appear by name).
import type { Command } from 'commander';
import { migrationMachine } from '../../sim/migration/statechart.ts';

export function statechartJson(): string {
  return JSON.stringify(migrationMachine.config, (_k, v: unknown) =>
    typeof v === 'function' ? `[${(v as { name?: string }).name || 'action'}]` : v, 2);
}

export function registerStatechart(command: Command): void {
  command
    .action(() => {
      process.stdout.write(`${statechartJson()}\n`);
    });
}
