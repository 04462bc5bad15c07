// Replay in CI: every scenario file shipped in scenarios/ is a test case named
// after the file. It must validate, hold its `expect` budgets, and reproduce
// its recorded trace fingerprint (`latsim run --update-fingerprint` rewrites
// it deliberately).
import { readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadScenarioFile } from '../../cli/scenario-file.ts';
import { simulate } from '../../sim/run.ts';

/** Scenario files under dir; an `include` directory holds fragments that scenarios include, not scenarios. */
function scenarioFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? (e.name === 'include' ? [] : scenarioFiles(join(dir, e.name))) : e.name.endsWith('.yaml') ? [join(dir, e.name)] : []);
}

const files = scenarioFiles('scenarios').sort();

describe('shipped scenarios replay', () => {
  it('there are scenarios to replay', () => {
    expect(files.length).toBeGreaterThanOrEqual(7);
  });
  for (const file of files) {
    it(file, () => {
      const scenario = loadScenarioFile(file);
      const { result } = simulate(scenario);
      const failed = result.expect.filter((e) => !e.pass).map((e) => `${e.name}=${e.value} (limit ${e.limit})`);
      expect(result.error, `seed ${result.seed}`).toBeNull();
      expect(failed, `budgets failed; replay: latsim run ${file} --seed ${result.seed}`).toEqual([]);
      expect(scenario.fingerprint, `${file} has no recorded fingerprint`).not.toBeNull();
      expect(result.trace_sha256, `fingerprint changed; replay: latsim run ${file} --seed ${result.seed}`).toBe(scenario.fingerprint);
    });
  }
});
