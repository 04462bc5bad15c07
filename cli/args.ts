// Option values, parsed the same way by every command. Seeds are decimal
// digits from 0 to SEED_MAX (what a scenario's `seed` accepts): `--seed N`,
// `--seeds A..B`, `--seeds A,B,C`, `--seed-start N`; `0x10`, `1e3`, `-1`,
// `1.0`, ` 7` and the empty string are not seeds. Counts are decimal digits
// too. An option or argument given as the empty string (`--trace ''`) is
// refused for every command before it runs, and so are options that exclude
// each other. Each mistake is a UsageError: one line, exit 2.
// Leaves out: values with units (sim/scenario/units.ts) and the grid's
// --set (cli/campaign.ts).
import type { Command } from 'commander';
import { UsageError } from './errors.ts';
import { SEED_MAX } from '../sim/scenario/scenario.ts';

const DIGITS = /^[0-9]+$/;

/** A whole number written in decimal digits only, from min to max. */
export function parseInteger(option: string, text: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const n = DIGITS.test(text) ? Number(text) : NaN;
  if (!(n >= min && n <= max)) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`;
    throw new UsageError(`${option}: expected an integer ${range} in decimal digits, got ${JSON.stringify(text)}`);
  }
  return n;
}

/** A seed: decimal digits, 0 to SEED_MAX. */
export function parseSeed(option: string, text: string): number {
  if (!DIGITS.test(text) || !(Number(text) <= SEED_MAX)) {
    throw new UsageError(`${option}: ${JSON.stringify(text)} is not a seed (decimal digits, 0 to ${SEED_MAX})`);
  }
  return Number(text);
}

/** `A..B` (both ends included, B >= A); null when the text is not a range. */
export function parseSeedRange(option: string, text: string): { first: number; last: number } | null {
  const m = /^([^.]*)\.\.([^.]*)$/.exec(text);
  if (!m) return null;
  const first = parseSeed(option, m[1]!);
  const last = parseSeed(option, m[2]!);
  if (last < first) throw new UsageError(`${option} ${text}: the range is empty (${last} < ${first})`);
  return { first, last };
}

/** Seeds as `A..B`, `A,B,C` or `A`: at most `max` of them, none twice. */
export function parseSeeds(option: string, text: string, max: number): number[] {
  const range = parseSeedRange(option, text);
  if (range) {
    const n = range.last - range.first + 1;
    if (n > max) throw new UsageError(`${option} ${text}: ${n} seeds, more than ${max}`);
    return Array.from({ length: n }, (_, i) => range.first + i);
  }
  const list = text.split(',').map((s) => parseSeed(option, s));
  if (list.length > max) throw new UsageError(`${option}: ${list.length} seeds, more than ${max}`);
  if (new Set(list).size !== list.length) throw new UsageError(`${option} ${text}: a seed is listed twice`);
  return list;
}

/** The UsageError of two options given together that exclude each other. */
export function conflict(a: string, b: string, why?: string): UsageError {
  return new UsageError(`${a} and ${b} cannot be used together${why ? `: ${why}` : ''}`);
}

/** The output format of `--json` / `--format F`: null when neither is given; --json with another --format is a conflict. */
export function formatOption(opts: { json?: boolean; format?: string }): string | null {
  if (opts.json && opts.format !== undefined && opts.format !== 'json') throw conflict('--json', `--format ${opts.format}`);
  return opts.json ? 'json' : opts.format ?? null;
}

/** Refuses an option or argument given as the empty string: for every command, before its action (cli/main.ts). */
export function refuseEmptyValues(cmd: Command): void {
  for (const o of cmd.options) {
    const v: unknown = cmd.getOptionValue(o.attributeName());
    if (v === '' || (Array.isArray(v) && v.includes(''))) throw new UsageError(`${o.long ?? o.flags}: the value is empty`);
  }
  cmd.registeredArguments.forEach((a, i) => {
    const v: unknown = cmd.processedArgs[i];
    if (v === '' || (Array.isArray(v) && v.includes(''))) throw new UsageError(`<${a.name()}>: the argument is empty`);
  });
}
