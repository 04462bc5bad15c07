// `latsim schema`: prints (or writes) the scenario JSON Schema for editors.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { scenarioSchema } from '../../sim/scenario/schema.ts';
import { writeFileAtomic } from '../output.ts';

export const SCHEMA_FILE = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'scenarios', 'latsim.schema.json');

export function schemaText(): string {
  return `${JSON.stringify(scenarioSchema(), null, 2)}\n`;
}

export function registerSchema(command: Command): void {
  command
    .option('--write', 'write scenarios/latsim.schema.json')
    .action((opts: { write?: boolean }) => {
      if (opts.write) writeFileAtomic(SCHEMA_FILE, schemaText());
      else process.stdout.write(schemaText());
    });
}
