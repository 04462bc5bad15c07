// Runs a scenario on the simulator: one seed drives the whole run, the
// scheduler's hard bounds turn a hang into a liveness failure, and invariant
// violations end the run with their message. Returns the result object and
// the world for reports. Nothing here reads a clock or a file.
import { LivenessError, Scheduler } from './scheduler/index.ts';
import { SimPlatform } from './sim-platform.ts';
import { InvariantError } from './invariant.ts';
import type { Scenario } from './scenario/scenario.ts';
import { buildWorld, type World } from './world.ts';
import { collectResult, type Outcome, type RunResult } from './results.ts';

export interface SimulateOptions {
  /** Overrides the scenario's seed. */
  seed?: number;
  /** Keep trace records and poll records (for --trace and reports). */
  keepTrace?: boolean;
  /**
   * End the run this long (simulated ns) after the migration ends
   * (completed, failed or cancelled), before the scenario's duration: the
   * fuzzer's judgement is made by then. A migration that never ends runs on
   * to the end.
   */
  stopAfterEndNs?: number;
  /** Hash the trace into trace_sha256 (default true); false: the trace costs nothing and trace_sha256 is ''. */
  fingerprint?: boolean;
}

export interface SimRun {
  readonly result: RunResult;
  readonly world: World;
  readonly error: Error | null;
}

export function simulate(scenario: Scenario, options: SimulateOptions = {}): SimRun {
  const seed = options.seed ?? scenario.seed;
  const scheduler = new Scheduler({
    seed,
    maxTimeNs: scenario.limits.max_time_ns,
    maxEvents: scenario.limits.max_events,
  });
  const platform = new SimPlatform(scheduler);
  const world = buildWorld(scenario, platform, options.keepTrace ?? false, undefined, options.fingerprint ?? true);
  const grace = options.stopAfterEndNs;
  if (grace !== undefined && world.migration) {
    world.migration.onEnd = () => {
      scheduler.callAfter(grace, () => scheduler.stop());
    };
  }
  let outcome: Outcome = 'ok';
  let error: Error | null = null;
  try {
    scheduler.run(scenario.duration_ns);
  } catch (e) {
    if (e instanceof LivenessError) outcome = 'liveness';
    else if (e instanceof InvariantError) outcome = 'invariant';
    else throw e;
    error = e;
  }
  world.machine.finish();
  // vCPUs still in guest mode do the writes of the stretch they are in.
  world.guest.ram.onLogSync?.();
  world.guest.userspace.finish(platform.nowNs());
  const message = error ? `${error.message}${error instanceof LivenessError ? '' : `; seed ${seed}`}` : null;
  world.machine.trace.event('latsim', 'run_end', { outcome, events: scheduler.events });
  const result = collectResult(world, seed, scheduler.events, outcome, message, world.machine.trace.sha256());
  return { result, world, error };
}
