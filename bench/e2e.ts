// `npm run bench -- e2e [--json]`: latsim as a user meets it, in whole
// processes of `node bin/latsim.mjs` (the compiled tree, bin/build.mjs):
//   - start-up: `latsim --help`, wall time of the process;
//   - every shipped scenario (scenarios/*.yaml): `latsim run FILE --json`:
//     simulated time over the wall time inside the run (the result's
//     wall_ms), events per second inside the run, and the process's wall
//     time from spawn to exit;
//   - fuzz: `latsim fuzz --workers 2 --json`, the campaign a user starts
//     (fuzz's default seed count, or --seeds N), seeds per second of the
//     whole process. Each worker thread starts with cold code, which runs
//     several times slower until V8 has optimized it (measured: 20 seeds
//     take 0.98 s in a fresh thread and 0.26 s in a warm one), so the figure
//     grows with the seed count: a short campaign is mostly warm-up.
// Each figure is the best of --runs processes (the least disturbed by the
// rest of the machine), beside the goal of issue 16 and whether it is met:
// start-up under 0.25 s; at least 1000x simulated/wall inside the run for
// every scenario; flush-stall-legacy's whole process under 0.4 s; at least
// 20 fuzz seeds per second with two workers.
//
// Leaves out: the 64 GiB and 1 TiB migrations (minutes of work: `npm run
// bench -- migrate` has them and their goals), and real mode.
// Options: --runs N (default 3), --startup-runs N (default 5), --seeds N
// (fuzz; default: fuzz's own), --no-fuzz.

import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { distIsFresh } from '../bin/dist.mjs';
import { type BenchOptions, fail, intArg, printJson, round, si, table } from './lib.ts';

const GOAL_STARTUP_S = 0.25;
const GOAL_SIM_OVER_WALL = 1000;
const GOAL_PROCESS_S = { file: 'flush-stall-legacy.yaml', max_s: 0.4 };
const GOAL_FUZZ_SEEDS_PER_S = 20;
const FUZZ_WORKERS = 2;

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = join(root, 'bin', 'latsim.mjs');

interface ScenarioFigures {
  sim_over_wall: number;
  events_per_s: number;
  process_s: number;
}

interface Goal {
  value: number | null;
  goal: string;
  met: boolean | null;
}

/** Runs `latsim args` to its end; returns its stdout and wall seconds, or fails the bench. */
function latsim(args: readonly string[]): { stdout: string; seconds: number } {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20 });
  const seconds = (performance.now() - t0) / 1000;
  if (r.error !== undefined) fail('e2e', `latsim ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) fail('e2e', `latsim ${args.join(' ')} exited ${r.status}: ${r.stderr.trim().split('\n').slice(-3).join(' / ')}`);
  return { stdout: r.stdout, seconds };
}

/** The best of n runs of f, by the key's smallest value. */
function bestOf<T>(n: number, f: () => T, key: (t: T) => number): T {
  let best: T | undefined;
  for (let i = 0; i < n; i++) {
    const t = f();
    if (best === undefined || key(t) < key(best)) best = t;
  }
  return best!;
}

function runScenario(file: string, runs: number): ScenarioFigures {
  let best: ScenarioFigures | null = null;
  for (let i = 0; i < runs; i++) {
    const { stdout, seconds } = latsim(['run', join('scenarios', file), '--json']);
    const r = JSON.parse(stdout) as { sim_time_ns: number; events: number; wall_ms: number };
    // wall_ms is whole milliseconds: half of one at the least, so a run under a millisecond is not infinitely fast.
    const wallS = Math.max(r.wall_ms, 0.5) / 1000;
    const f = { sim_over_wall: r.sim_time_ns / 1e9 / wallS, events_per_s: r.events / wallS, process_s: seconds };
    if (best === null) {
      best = f;
    } else {
      // Each figure's best, as for the other measurements.
      best = {
        sim_over_wall: Math.max(best.sim_over_wall, f.sim_over_wall),
        events_per_s: Math.max(best.events_per_s, f.events_per_s),
        process_s: Math.min(best.process_s, f.process_s),
      };
    }
  }
  return best!;
}

export default async function e2eBench(opts: BenchOptions): Promise<void> {
  const runs = intArg(opts.args, '--runs', 3);
  const startupRuns = intArg(opts.args, '--startup-runs', 5);
  const seedsArg = opts.args.includes('--seeds') ? ['--seeds', String(intArg(opts.args, '--seeds', 0))] : [];
  const withFuzz = !opts.args.includes('--no-fuzz');
  if (!distIsFresh()) fail('e2e', 'dist/ is missing or older than the sources, so latsim would run through tsx: run npm run build first');
  const wallStart = performance.now();

  const startupS = bestOf(startupRuns, () => latsim(['--help']).seconds, (s) => s);
  const files = readdirSync(join(root, 'scenarios')).filter((f) => f.endsWith('.yaml')).sort();
  const scenarios: Record<string, ScenarioFigures> = {};
  for (const f of files) scenarios[f] = runScenario(f, runs);
  let fuzzSeedsPerS: number | null = null;
  let seeds: number | null = null;
  if (withFuzz) {
    const best = bestOf(runs, () => latsim(['fuzz', '--workers', String(FUZZ_WORKERS), ...seedsArg, '--json', '--progress', 'none']), (r) => r.seconds);
    seeds = (JSON.parse(best.stdout) as { seeds: number }).seeds;
    fuzzSeedsPerS = seeds / best.seconds;
  }

  const worst = files.reduce((w, f) => (scenarios[f]!.sim_over_wall < scenarios[w]!.sim_over_wall ? f : w), files[0]!);
  const processFile = scenarios[GOAL_PROCESS_S.file];
  const goals: Record<string, Goal> = {
    startup_s: { value: round(startupS, 3), goal: `< ${GOAL_STARTUP_S}`, met: startupS < GOAL_STARTUP_S },
    sim_over_wall: {
      value: round(scenarios[worst]!.sim_over_wall, 0), goal: `>= ${GOAL_SIM_OVER_WALL} for every scenario (worst: ${worst})`,
      met: files.every((f) => scenarios[f]!.sim_over_wall >= GOAL_SIM_OVER_WALL),
    },
    process_s: {
      value: processFile ? round(processFile.process_s, 3) : null, goal: `< ${GOAL_PROCESS_S.max_s} for ${GOAL_PROCESS_S.file}`,
      met: processFile ? processFile.process_s < GOAL_PROCESS_S.max_s : null,
    },
    fuzz_seeds_per_s: {
      value: fuzzSeedsPerS === null ? null : round(fuzzSeedsPerS, 1), goal: `>= ${GOAL_FUZZ_SEEDS_PER_S} with --workers ${FUZZ_WORKERS}`,
      met: fuzzSeedsPerS === null ? null : fuzzSeedsPerS >= GOAL_FUZZ_SEEDS_PER_S,
    },
  };
  const goalsMet = Object.values(goals).every((g) => g.met === true);
  const wallS = (performance.now() - wallStart) / 1000;

  if (opts.json) {
    printJson({
      startup_s: round(startupS, 3),
      scenarios: Object.fromEntries(files.map((f) => {
        const s = scenarios[f]!;
        return [f, { sim_over_wall: round(s.sim_over_wall, 0), events_per_s: Math.round(s.events_per_s), process_s: round(s.process_s, 3) }];
      })),
      fuzz_seeds_per_s: fuzzSeedsPerS === null ? null : round(fuzzSeedsPerS, 1),
      goals_met: goalsMet,
      goals,
      runs,
      startup_runs: startupRuns,
      fuzz_seeds: seeds,
      fuzz_workers: FUZZ_WORKERS,
      node: process.version,
      wall_s: round(wallS, 1),
    });
    return;
  }

  const met = (ok: boolean | null) => (ok === null ? 'n/a' : ok ? 'met' : 'NOT met');
  console.log(`latsim end to end: best of ${runs} processes (start-up: ${startupRuns}); node ${process.version}`);
  console.log('');
  console.log(table(['scenario', 'sim/wall', 'events/s', 'process'],
    files.map((f) => {
      const s = scenarios[f]!;
      return [f, `${Math.round(s.sim_over_wall)}x`, si(s.events_per_s), `${s.process_s.toFixed(2)} s`];
    })));
  console.log('');
  console.log(`start-up (latsim --help): ${startupS.toFixed(3)} s`);
  if (fuzzSeedsPerS !== null) console.log(`fuzz: ${fuzzSeedsPerS.toFixed(1)} seeds/s (${seeds} seeds, --workers ${FUZZ_WORKERS})`);
  console.log('');
  console.log(table(['goal', 'target', 'figure', ''], Object.entries(goals).map(([k, g]) => [k, g.goal, g.value === null ? '-' : String(g.value), met(g.met)])));
  console.log(`all goals: ${goalsMet ? 'met' : 'NOT met'}; wall ${wallS.toFixed(1)} s`);
}
