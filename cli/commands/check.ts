// `latsim check <files...>`: validates scenario files without running them.
import type { Command } from 'commander';
import { loadScenarioFile, MAX_MEMORY_HELP, maxMemoryOption, printableName, ScenarioError } from '../scenario-file.ts';

export function registerCheck(command: Command): void {
  command
    .argument('<files...>', 'scenario files')
    .option('--json', 'print one JSON object per file')
    .option('--max-memory <size>', MAX_MEMORY_HELP)
    .action((files: string[], opts: { json?: boolean; maxMemory?: string }) => {
      const memory = { maxMemoryBytes: maxMemoryOption(opts.maxMemory) };
      let bad = 0;
      const results: { file: string; ok: boolean; error: string | null }[] = [];
      for (const f of files) {
        try {
          loadScenarioFile(f, memory);
          results.push({ file: f, ok: true, error: null });
          if (!opts.json) process.stdout.write(`${printableName(f)}: ok\n`);
        } catch (e) {
          if (!(e instanceof ScenarioError)) throw e;
          bad++;
          results.push({ file: f, ok: false, error: e.message });
          if (!opts.json) process.stderr.write(`latsim: ${e.message}\n`);
        }
      }
      if (opts.json) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
      process.exitCode = bad > 0 ? 2 : 0;
    });
}
