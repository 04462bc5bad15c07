// Shrinking a failing seed with fast-check: the knobs are a record of
// integers (fc.record of fc.integer, each from its simplest value up), the
// seed's knobs are given as the one example, and fast-check's shrinker walks
// from it towards smaller values, keeping every step that still fails the
// same way. A limit on property runs keeps shrinking bounded; it is counted,
// not timed, so the same seed always shrinks to the same knobs.
// Leaves out: what "fails the same way" means (the caller's predicate).
import fc from 'fast-check';
import { KNOB_TABLE, type Knobs } from './knobs.ts';

export const DEFAULT_SHRINK_RUNS = 200;

export interface Shrunk {
  readonly knobs: Knobs;
  /** Property runs spent, the first (the original knobs) included. */
  readonly runs: number;
  /** Successful shrink steps. */
  readonly steps: number;
}

/** The arbitrary the knobs are drawn from, in fast-check's terms. */
export function knobsArbitrary(): fc.Arbitrary<Knobs> {
  const fields = Object.fromEntries(KNOB_TABLE.map(([name, lo, hi]) => [name, fc.integer({ min: lo, max: hi })]));
  return fc.record(fields) as unknown as fc.Arbitrary<Knobs>;
}

/**
 * Shrinks knobs for which stillFails holds to smaller ones for which it
 * still holds. Returns the original knobs when they do not fail.
 */
export function shrinkKnobs(start: Knobs, stillFails: (k: Knobs) => boolean, maxRuns = DEFAULT_SHRINK_RUNS): Shrunk {
  let runs = 0;
  const property = fc.property(knobsArbitrary(), (k) => {
    // Out of budget: report "passes", which stops every further shrink.
    if (runs >= maxRuns) return true;
    runs++;
    return !stillFails(k);
  });
  const out = fc.check(property, { examples: [[start]], numRuns: 1, seed: 1, endOnFailure: false });
  const shrunk = out.failed ? out.counterexample?.[0] : undefined;
  if (shrunk === undefined) return { knobs: start, runs, steps: 0 };
  return { knobs: { ...shrunk }, runs, steps: out.numShrinks };
}
