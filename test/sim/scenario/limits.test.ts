// Plausible ranges (sim/scenario/limits.ts): how a limit reads and what it
// refuses, and that the schema states one for every number a scenario gives:
// each unit string and number has an x-range, each list a maxItems.
import { describe, expect, it } from 'vitest';
import { limit, limitProblem, rangeText } from '../../../sim/scenario/limits.ts';
import { scenarioSchema } from '../../../sim/scenario/schema.ts';

describe('limits', () => {
  it('read in the file\'s own units', () => {
    expect(rangeText(limit.duration('1us', '1h'))).toBe('1us to 1h');
    expect(rangeText(limit.duration('100us', '1h', 'no ping'))).toBe('0 (no ping), or 100us to 1h');
    expect(limit.size('1B', '4TiB')).toMatchObject({ min: 1, max: 2 ** 42 });
    expect(() => limit.rate('2/s', '1/s')).toThrow(/bad limit/);
  });

  it('name the value and the limit it crosses', () => {
    const l = limit.duration('10us', '100ms');
    expect(limitProblem(l, 2e8, '200ms', 'slice')).toBe('200ms is above the limit of 100ms (plausible: 10us to 100ms)');
    expect(limitProblem(l, 1, '1ns', 'slice')).toBe('1ns is below the limit of 10us (plausible: 10us to 100ms)');
    expect(limitProblem(l, 0, '0s', 'slice')).toBe('slice must be greater than zero');
    expect(limitProblem(l, 1e6, '1ms', 'slice')).toBeNull();
    expect(limitProblem(limit.duration('100us', '1h', 'no ping'), 0, '0s', 'ping interval')).toBeNull();
    expect(limitProblem(limit.duration('0s', '1h'), 0, '0s', 'latency')).toBeNull();
  });
});

describe('the schema documents a range for every number', () => {
  type S = Record<string, unknown>;
  const schema = scenarioSchema() as S;
  const missing: string[] = [];
  const walk = (s: S, path: string) => {
    const isUnit = typeof s.pattern === 'string' && s.type === 'string' && s.enum === undefined && path !== 'fingerprint' && !path.endsWith('name') && !/\.(device|slow_handlers\[\]|id|iothread)$/.test(path);
    const isNumber = s.type === 'integer' || s.type === 'number';
    const isDistUse = s.$ref === '#/$defs/dist';
    if ((isUnit || isNumber || isDistUse) && typeof s['x-range'] !== 'string') missing.push(path);
    if (s.type === 'array' && typeof s.maxItems !== 'number') missing.push(`${path} (maxItems)`);
    if (isUnit || isDistUse) expect(String(s.description), path).toContain(`(${String(s['x-range'])})`.replace('(', isDistUse ? '(each parameter ' : '('));
    for (const [k, v] of Object.entries((s.properties ?? {}) as Record<string, S>)) walk(v, path ? `${path}.${k}` : k);
    if (s.items) walk(s.items as S, `${path}[]`);
    for (const alt of (s.oneOf ?? []) as S[]) walk(alt, path);
  };

  it('in the description and in x-range; lists have maxItems', () => {
    walk(schema, '');
    walk(((schema.$defs as S).dist as S), '$defs.dist');
    expect(missing).toEqual([]);
  });
});
