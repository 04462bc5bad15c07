// One fuzz seed, start to end: draw the knobs, run the safety phase (faults
// on), then, if it held, the liveness phase (faults off); if a phase failed,
// shrink the knobs to the smallest that fail the same way (same phase, same
// failure class) and render that scenario as a regression file, with a
// header that says the seed, what failed and how to replay it. A job for the
// campaign pool (cli/campaign.ts): input and output are plain data, and the
// file is written by the caller.
// Leaves out: sharding, workers, progress and output (cli/commands/fuzz.ts).
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { knobsOf, knobsText, KNOBS_VERSION, type Knobs } from './knobs.ts';
import { buildScenario, type Plant } from './scenario.ts';
import { runPhase, type Failure } from './check.ts';
import { shrinkKnobs } from './shrink.ts';

export interface SeedInput {
  readonly seed: number;
  readonly plant: Plant | null;
  /** Directory the regression file will be written to (for its header and replay command). */
  readonly out: string;
  /** Property runs shrinking may spend; 0: do not shrink. */
  readonly shrink_runs: number;
  /** Wall-clock deadline (ms since the epoch) after which the seed is not started; null: none. */
  readonly deadline_ms: number | null;
}

export interface SeedRun {
  readonly seed: number;
  /** skipped: not started because the --time budget ran out. */
  readonly status: 'pass' | 'fail' | 'skipped';
  /** Final MigrationStatus of the safety phase (null: skipped, or the run threw). */
  readonly safety_status: string | null;
  readonly failure: Failure | null;
  /** The regression file, when the seed failed. */
  readonly regression: { readonly file: string; readonly text: string; readonly shrink_runs: number; readonly shrink_steps: number } | null;
}

const SCHEMA = fileURLToPath(new URL('../../scenarios/latsim.schema.json', import.meta.url));

/** The command that replays a seed's campaign run. */
export function seedCommand(seed: number, plant: Plant | null): string {
  return `latsim fuzz --seed-start ${seed} --seeds 1${plant ? ` --plant ${plant}` : ''}`;
}

function runKnobs(k: Knobs, seed: number, plant: Plant | null): Failure | null {
  const safety = runPhase(buildScenario(k, { seed, phase: 'safety', plant }).text, `fuzz-${seed}-safety.yaml`, 'safety');
  if (safety.failure) return safety.failure;
  return runPhase(buildScenario(k, { seed, phase: 'liveness', plant }).text, `fuzz-${seed}-liveness.yaml`, 'liveness').failure;
}

/** Runs one seed (the pool's job). */
export function fuzzSeed(input: SeedInput): SeedRun {
  const { seed, plant } = input;
  if (input.deadline_ms !== null && Date.now() > input.deadline_ms) {
    return { seed, status: 'skipped', safety_status: null, failure: null, regression: null };
  }
  const knobs = knobsOf(seed);
  const safety = runPhase(buildScenario(knobs, { seed, phase: 'safety', plant }).text, `fuzz-${seed}-safety.yaml`, 'safety');
  const safetyStatus = safety.result?.migration?.status ?? null;
  const failure = safety.failure ??
    runPhase(buildScenario(knobs, { seed, phase: 'liveness', plant }).text, `fuzz-${seed}-liveness.yaml`, 'liveness').failure;
  if (!failure) return { seed, status: 'pass', safety_status: safetyStatus, failure: null, regression: null };

  // Shrink to the smallest knobs that fail in the same phase with the same class.
  const same = (f: Failure | null) => f !== null && f.phase === failure.phase && f.class === failure.class;
  const shrunk = input.shrink_runs > 0
    ? shrinkKnobs(knobs, (k) => same(runKnobs(k, seed, plant)), input.shrink_runs)
    : { knobs, runs: 0, steps: 0 };
  // The shrunk scenario's own failure (another page, say), for its header.
  const now = shrunk.runs > 1 ? runKnobs(shrunk.knobs, seed, plant) : failure;
  const regression = regressionFile(shrunk.knobs, knobs, failure, same(now) ? now! : failure, input, shrunk.runs, shrunk.steps);
  return { seed, status: 'fail', safety_status: safetyStatus, failure, regression };
}

function regressionFile(k: Knobs, original: Knobs, failure: Failure, shrunkFailure: Failure, input: SeedInput, runs: number, steps: number): NonNullable<SeedRun['regression']> {
  const { seed, plant } = input;
  const name = `fuzz-${failure.class}-${seed}`;
  const file = join(input.out, `${name}.yaml`);
  const changed = Object.keys(k).filter((n) => k[n as keyof Knobs] !== original[n as keyof Knobs]).length;
  const expectNote = failure.phase === 'liveness'
    ? ['`expect` states the behaviour wanted once this is fixed: the migration completes.']
    : ['Once this is fixed, state the behaviour wanted under `expect` (e.g. migration_status: completed).'];
  const header = [
    `yaml-language-server: $schema=${relative(input.out, SCHEMA).split('\\').join('/')}`,
    '',
    `${name}: found by latsim fuzz (knobs v${KNOBS_VERSION}), seed ${seed}${plant ? `, planted bug ${plant}` : ''}.`,
    `Failed in the ${failure.phase} phase (${failure.phase === 'safety' ? 'faults on' : 'faults off'}): ${failure.class}:`,
    ...wrap(failure.error, 76).map((l) => `  ${l}`),
    `Shrunk with fast-check in ${runs} runs (${steps} steps; ${changed} knobs changed from the seed's); this scenario:`,
    ...wrap(shrunkFailure.error, 76).map((l) => `  ${l}`),
    `Replay: latsim run ${file}`,
    `The seed's campaign run: ${seedCommand(seed, plant)}`,
    ...expectNote,
    'The replay test (test/scenarios/replay.test.ts) runs every file here: it needs the',
    'run to pass and a recorded fingerprint (latsim run FILE --update-fingerprint),',
    'so commit this file together with the fix.',
    `knobs: ${knobsText(k)}`,
  ].flatMap((l) => (l.startsWith('knobs: ') ? wrap(l, 76) : [l]));
  const scenario = buildScenario(k, {
    seed, phase: failure.phase, plant, name, header,
    ...(failure.phase === 'liveness' ? { expect: { migration_status: 'completed' } } : {}),
  });
  return { file, text: scenario.text, shrink_runs: runs, shrink_steps: steps };
}

function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line && line.length + 1 + word.length > width) {
      out.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) out.push(line);
  return out;
}
