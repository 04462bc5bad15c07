// Shared test rigs: a simulated Platform and Machine, and scenarios from YAML text.
import { Scheduler } from '../../sim/scheduler/index.ts';
import { SimPlatform } from '../../sim/sim-platform.ts';
import { Machine } from '../../sim/machine.ts';
import { parseScenario, ScenarioError } from '../../cli/scenario-file.ts';
import type { Scenario } from '../../sim/scenario/scenario.ts';

export function rig(seed = 1, options: { maxEvents?: number } = {}) {
  const scheduler = new Scheduler({ seed, ...(options.maxEvents ? { maxEvents: options.maxEvents } : {}) });
  const platform = new SimPlatform(scheduler);
  const machine = new Machine(platform, { keepTrace: true });
  return { scheduler, platform, machine };
}

/** The one-line message of the ScenarioError that building a scenario throws; throws if it builds. */
export function scenarioErrorOf(build: () => unknown): string {
  try {
    build();
  } catch (e) {
    if (!(e instanceof ScenarioError)) throw e;
    return e.message;
  }
  throw new Error('the scenario was accepted');
}

/** A scenario from YAML text (the test's name is its file name in errors). */
export function scenario(text: string, name = 'test.yaml'): Scenario {
  return parseScenario(text, name);
}

export const MS = 1_000_000;
export const S = 1_000_000_000;
