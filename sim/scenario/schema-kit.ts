// Building blocks of the scenario JSON Schema: units are strings checked by
// the patterns of units.ts; "x-expected" says in words what a field takes, for
// error messages; "x-range" states the plausible range (limits.ts) that the
// section checks enforce, also appended to the description so editors show it.
// Each section file builds its own part with these.
import { COST_LIMIT, rangeText, type Limit } from './limits.ts';
import { BANDWIDTH_PATTERN, DURATION_PATTERN, PERCENT_PATTERN, RATE_PATTERN, SIZE_PATTERN } from './units.ts';

export type Schema = Record<string, unknown>;

/** Characters a name (of a device, handler, fault, scenario) may have at most. */
export const NAME_CHARS_MAX = 128;

const str = (pattern: string, expected: string, description: string, l: Limit): Schema => ({
  type: 'string', pattern, 'x-expected': expected, 'x-range': rangeText(l), description: `${description} (${rangeText(l)})`,
});
export const duration = (d: string, l: Limit) => str(DURATION_PATTERN, 'a duration like "358ms" or "40s"', d, l);
export const size = (d: string, l: Limit) => str(SIZE_PATTERN, 'a size like "4GiB" or "512MB"', d, l);
export const bandwidth = (d: string, l: Limit) => str(BANDWIDTH_PATTERN, 'a bandwidth like "1Gbit/s" or "200MB/s"', d, l);
export const rate = (d: string, l: Limit) => str(RATE_PATTERN, 'a rate like "100/s"', d, l);
export const percent = (d: string) => ({
  type: 'string', pattern: PERCENT_PATTERN, 'x-expected': 'a percentage like "50%"', 'x-range': '0% to 100%', description: `${d} (0% to 100%)`,
});
export const int = (minimum: number, maximum: number, d: string): Schema => ({
  type: 'integer', minimum, maximum, 'x-expected': `an integer from ${minimum} to ${maximum}`, 'x-range': `${minimum} to ${maximum}`, description: d,
});
export const num = (minimum: number, maximum: number, d: string): Schema => ({
  type: 'number', minimum, maximum, 'x-expected': `a number from ${minimum} to ${maximum}`, 'x-range': `${minimum} to ${maximum}`, description: d,
});
export const bool = (d: string): Schema => ({
  type: 'boolean', 'x-expected': 'true or false', description: d,
});
export const oneOfWords = (values: readonly string[], d: string): Schema => ({
  type: 'string', enum: values, 'x-expected': `one of ${values.join(', ')}`, description: d,
});
export const obj = (properties: Record<string, Schema>, description: string, required: string[] = []): Schema => ({
  type: 'object', properties, required, additionalProperties: false, description,
  'x-expected': 'a mapping',
});
/** A list of at most maxItems items (what names them in messages: "faults"). */
export const list = (items: Schema, description: string, maxItems: number, what: string): Schema => ({
  type: 'array', items, maxItems, description: `${description} (at most ${maxItems})`, 'x-expected': 'a list',
  'x-range': `at most ${maxItems} ${what}`, 'x-items': what,
});
export const name = (d: string): Schema => ({
  type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*$', maxLength: NAME_CHARS_MAX,
  'x-expected': `a name of letters, digits, "_", "." and "-" (at most ${NAME_CHARS_MAX})`, description: d,
});

/** The kinds of cost and latency distributions. */
export const DIST_KINDS = ['fixed', 'uniform', 'exponential', 'normal', 'lognormal', 'mixture'] as const;

/** Parts a mixture may have at most. */
export const MIXTURE_PARTS_MAX = 64;

/** A cost or latency: a duration, or a distribution (the schema's $defs.dist), each parameter within l. */
export const dist = (description: string, l: Limit): Schema => ({
  $ref: '#/$defs/dist', description: `${description} (each parameter ${rangeText(l)})`, 'x-range': rangeText(l),
});

/** The definition dist() refers to; each use states its own, narrower, range. */
export function distDefinition(): Schema {
  const l = COST_LIMIT;
  return {
    type: ['string', 'object'],
    pattern: DURATION_PATTERN,
    properties: {
      dist: oneOfWords(DIST_KINDS, 'distribution'),
      value: duration('fixed value', l),
      min: duration('uniform: lowest', l),
      max: duration('uniform: highest', l),
      mean: duration('exponential/normal: mean (exponential: greater than zero)', l),
      stddev: duration('normal: standard deviation (greater than zero)', l),
      median: duration('lognormal: median (greater than zero)', l),
      sigma: { ...num(0, 10, 'lognormal: sigma (greater than zero)'), exclusiveMinimum: 0, 'x-expected': 'a number above 0, at most 10', 'x-range': 'above 0, at most 10' },
      of: list(obj({ p: num(0, 1, 'probability'), value: dist('this part: a duration or a distribution', l) }, 'a part of a mixture', ['p', 'value']), 'mixture parts', MIXTURE_PARTS_MAX, 'parts'),
    },
    required: ['dist'],
    additionalProperties: false,
    'x-expected': 'a duration like "358ms" or a distribution like {dist: exponential, mean: 1ms}',
  };
}
