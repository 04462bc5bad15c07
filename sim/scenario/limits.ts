// Plausible ranges of scenario values. Every duration, size, bandwidth and
// rate a scenario gives has one, written in the file's own units ("1us to
// 1h"); the schema states it (description and "x-range") and the section
// check refuses a value outside it, naming the value and the limit, before
// anything runs. A limit is not a statement about QEMU: it is where a value
// stops describing a machine and starts describing a mistake (a 16 TiB
// guest's 2^32 pages, a dirty rate of 1e30 pages per second), so the model
// is never asked to simulate one.
// Leaves out: integers and plain numbers, whose ranges are the schema's own
// minimum and maximum; counts of list items (maxItems, beside each list).
import { parseBandwidth, parseDuration, parseRate, parseSize } from './units.ts';

export interface Limit {
  /** Lowest and highest accepted value, in the model's unit (ns, bytes, bytes/s, per second). */
  readonly min: number;
  readonly max: number;
  /** The same as a scenario writes them: "1us", "4TiB". */
  readonly minText: string;
  readonly maxText: string;
  /** What zero means when it is accepted below min ("no ping"); null when zero is only accepted if min is 0. */
  readonly zero: string | null;
}

function make(parse: (t: string) => number | null, minText: string, maxText: string, zero: string | null): Limit {
  const min = parse(minText);
  const max = parse(maxText);
  if (min === null || max === null || min > max) throw new RangeError(`bad limit ${minText} to ${maxText}`);
  return { min, max, minText, maxText, zero };
}

/** Limits in each unit: limit.duration('1us', '1h'), limit.rate('0/s', '1e6/s'), ... */
export const limit = {
  duration: (min: string, max: string, zero: string | null = null) => make(parseDuration, min, max, zero),
  size: (min: string, max: string, zero: string | null = null) => make(parseSize, min, max, zero),
  bandwidth: (min: string, max: string, zero: string | null = null) => make(parseBandwidth, min, max, zero),
  rate: (min: string, max: string, zero: string | null = null) => make(parseRate, min, max, zero),
};

/** "1us to 1h", or "0s (no ping), or 100us to 1h". */
export function rangeText(l: Limit): string {
  const span = `${l.minText} to ${l.maxText}`;
  return l.zero !== null && l.min > 0 ? `0 (${l.zero}), or ${span}` : span;
}

/**
 * What is wrong with value v (written as raw) under limit l, or null. Zero
 * below a positive minimum is "must be greater than zero" (what names it).
 */
export function limitProblem(l: Limit, v: number, raw: string, what: string): string | null {
  if (v === 0 && (l.min === 0 || l.zero !== null)) return null;
  if (v > l.max) return `${raw} is above the limit of ${l.maxText} (plausible: ${rangeText(l)})`;
  if (v < l.min) return v === 0 ? `${what} must be greater than zero` : `${raw} is below the limit of ${l.minText} (plausible: ${rangeText(l)})`;
  return null;
}

/** A cost or latency's parameters: up to an hour (the talk's NFS flushes took 40-50 s). */
export const COST_LIMIT = limit.duration('0s', '1h');
/** A run's simulated time. */
export const DURATION_LIMIT = limit.duration('1us', '24h');
/** A time within the run (a fault's start, a handler's first activation): also up to the longest run. */
export const INSTANT_LIMIT = limit.duration('0s', '24h');
/** Budgets on durations and the liveness bound in simulated time: up to a week. */
export const BOUND_LIMIT = limit.duration('0s', '168h');
