// One fuzz seed, in two jobs for the campaign pool (cli/campaign.ts).
// fuzzSeed draws the knobs, runs the safety phase (faults on), then, if it
// held, the liveness phase (faults off); a failing seed comes back with its
// regression file as the seed drew it. shrinkSeed then shrinks the knobs to
// the smallest that fail the same way (same phase, same failure class) and
// renders that scenario. Two jobs, so that a failure is known, and its file
// written, before shrinking starts: an interrupt while shrinking keeps it.
// A regression file has a header that says the seed, what failed and how to
// replay it. Inputs and outputs are plain data; the caller writes the files.
// Leaves out: sharding, workers, progress and output (cli/commands/fuzz.ts).
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { knobsOf, knobsText, KNOBS_VERSION, type Knobs } from './knobs.ts';
import { buildScenario, type Plant } from './scenario.ts';
import { judge, runPhase, type Failure, type PhaseRun } from './check.ts';
import { shrinkKnobs } from './shrink.ts';

export interface SeedInput {
  readonly seed: number;
  readonly plant: Plant | null;
  /** Directory the regression file will be written to (for its header and replay command). */
  readonly out: string;
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
  /** The regression file, when the seed failed (not shrunk yet). */
  readonly regression: Regression | null;
}

export interface Regression {
  readonly file: string;
  readonly text: string;
  readonly shrink_runs: number;
  readonly shrink_steps: number;
}

/** What shrinkSeed needs: the seed and how it failed. */
export interface ShrinkInput {
  readonly seed: number;
  readonly plant: Plant | null;
  readonly out: string;
  /** Property runs shrinking may spend. */
  readonly shrink_runs: number;
  readonly failure: Failure;
}

const SCHEMA = fileURLToPath(new URL('../../scenarios/latsim.schema.json', import.meta.url));

/** The command that replays a seed's campaign run. */
export function seedCommand(seed: number, plant: Plant | null): string {
  return `latsim fuzz --seed-start ${seed} --seeds 1${plant ? ` --plant ${plant}` : ''}`;
}

/**
 * Both phases of the knobs: safety, then liveness if safety held. Knobs
 * without faults whose dirty rate the link outruns already describe the
 * liveness scenario, but for its length: when the safety run's migration
 * completed and the run stopped (AFTER_END_NS later) before either
 * phase's end, the liveness run would be the same run, so it is judged
 * from the safety run's result instead of run again.
 */
function runPhases(k: Knobs, seed: number, plant: Plant | null): { safety: PhaseRun; failure: Failure | null } {
  const safetyText = buildScenario(k, { seed, phase: 'safety', plant });
  const safety = runPhase(safetyText, 'safety');
  if (safety.failure) return { safety, failure: safety.failure };
  const liveness = buildScenario(k, { seed, phase: 'liveness', plant });
  const r = safety.result;
  if (r !== null && liveness.model === safetyText.model && r.migration?.status === 'completed' &&
    r.sim_time_ns < Math.min(safetyText.duration_ns, liveness.duration_ns)) {
    return { safety, failure: judge(r, 'liveness') };
  }
  return { safety, failure: runPhase(liveness, 'liveness').failure };
}

function runKnobs(k: Knobs, seed: number, plant: Plant | null): Failure | null {
  return runPhases(k, seed, plant).failure;
}

/** Runs one seed (the pool's job); a failure comes back with the unshrunk regression file. */
export function fuzzSeed(input: SeedInput): SeedRun {
  const { seed, plant } = input;
  if (input.deadline_ms !== null && Date.now() > input.deadline_ms) {
    return { seed, status: 'skipped', safety_status: null, failure: null, regression: null };
  }
  const knobs = knobsOf(seed);
  const { safety, failure } = runPhases(knobs, seed, plant);
  const safetyStatus = safety.result?.migration?.status ?? null;
  if (!failure) return { seed, status: 'pass', safety_status: safetyStatus, failure: null, regression: null };
  const regression = regressionFile(knobs, knobs, failure, failure, input, 0, 0);
  return { seed, status: 'fail', safety_status: safetyStatus, failure, regression };
}

/** Shrinks a failed seed's knobs to the smallest that fail in the same phase with the same class (the pool's job). */
export function shrinkSeed(input: ShrinkInput): Regression {
  const { seed, plant, failure } = input;
  const knobs = knobsOf(seed);
  const same = (f: Failure | null) => f !== null && f.phase === failure.phase && f.class === failure.class;
  const shrunk = shrinkKnobs(knobs, (k) => same(runKnobs(k, seed, plant)), input.shrink_runs);
  // The shrunk scenario's own failure (another page, say), for its header.
  const now = shrunk.runs > 1 ? runKnobs(shrunk.knobs, seed, plant) : failure;
  return regressionFile(shrunk.knobs, knobs, failure, same(now) ? now! : failure, input, shrunk.runs, shrunk.steps);
}

function regressionFile(k: Knobs, original: Knobs, failure: Failure, shrunkFailure: Failure, input: { seed: number; plant: Plant | null; out: string }, runs: number, steps: number): Regression {
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
    runs === 0 ? 'Not shrunk; this is the seed\'s own scenario:'
      : `Shrunk with fast-check in ${runs} runs (${steps} steps; ${changed} knobs changed from the seed's); this scenario:`,
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
