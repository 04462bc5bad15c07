// Building blocks of the scenario JSON Schema: units are strings checked by
// the patterns of units.ts; "x-expected" says in words what a field takes, for
// error messages. Each section file builds its own part with these.
import { BANDWIDTH_PATTERN, DURATION_PATTERN, PERCENT_PATTERN, RATE_PATTERN, SIZE_PATTERN } from './units.ts';

export type Schema = Record<string, unknown>;

const str = (pattern: string, expected: string, description: string): Schema => ({
  type: 'string', pattern, 'x-expected': expected, description,
});
export const duration = (d: string) => str(DURATION_PATTERN, 'a duration like "358ms" or "40s"', d);
export const size = (d: string) => str(SIZE_PATTERN, 'a size like "4GiB" or "512MB"', d);
export const bandwidth = (d: string) => str(BANDWIDTH_PATTERN, 'a bandwidth like "1Gbit/s" or "200MB/s"', d);
export const rate = (d: string) => str(RATE_PATTERN, 'a rate like "100/s"', d);
export const percent = (d: string) => str(PERCENT_PATTERN, 'a percentage like "50%"', d);
export const int = (minimum: number, maximum: number, d: string): Schema => ({
  type: 'integer', minimum, maximum, 'x-expected': `an integer from ${minimum} to ${maximum}`, description: d,
});
export const num = (minimum: number, maximum: number, d: string): Schema => ({
  type: 'number', minimum, maximum, 'x-expected': `a number from ${minimum} to ${maximum}`, description: d,
});
export const oneOfWords = (values: readonly string[], d: string): Schema => ({
  type: 'string', enum: values, 'x-expected': `one of ${values.join(', ')}`, description: d,
});
export const obj = (properties: Record<string, Schema>, description: string, required: string[] = []): Schema => ({
  type: 'object', properties, required, additionalProperties: false, description,
  'x-expected': 'a mapping',
});
export const list = (items: Schema, description: string): Schema => ({
  type: 'array', items, description, 'x-expected': 'a list',
});
export const name = (d: string): Schema => ({
  type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*$', 'x-expected': 'a name of letters, digits, "_", "." and "-"', description: d,
});

/** The kinds of cost and latency distributions. */
export const DIST_KINDS = ['fixed', 'uniform', 'exponential', 'normal', 'lognormal', 'mixture'] as const;

/** A cost or latency: a duration, or a distribution (the schema's $defs.dist). */
export const dist = (description: string): Schema => ({ $ref: '#/$defs/dist', description });

/** The definition dist() refers to. */
export function distDefinition(): Schema {
  return {
    type: ['string', 'object'],
    pattern: DURATION_PATTERN,
    properties: {
      dist: oneOfWords(DIST_KINDS, 'distribution'),
      value: duration('fixed value'),
      min: duration('uniform: lowest'),
      max: duration('uniform: highest'),
      mean: duration('exponential/normal: mean'),
      stddev: duration('normal: standard deviation'),
      median: duration('lognormal: median'),
      sigma: num(0, 10, 'lognormal: sigma'),
      of: list(obj({ p: num(0, 1, 'probability'), value: { $ref: '#/$defs/dist' } }, 'a part of a mixture', ['p', 'value']), 'mixture parts'),
    },
    required: ['dist'],
    additionalProperties: false,
    'x-expected': 'a duration like "358ms" or a distribution like {dist: exponential, mean: 1ms}',
  };
}
