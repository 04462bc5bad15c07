// Property test of bad input: well over 1,000 generated malformed scenarios
// (mutations of the shipped scenario: unknown keys, wrong types, bad units,
// deleted required keys, huge numbers, deeply nested junk, stray lines; and
// random YAML garbage) go through the real CLI entry, `latsim check FILE`, in
// this process. Each must exit 2 with exactly one line on stderr naming the
// file, line and column: never another exception, a stack trace or a hang.
// Then: a value ten times its documented limit is refused naming the value
// and the limit; and random mutations of every shipped scenario (values
// scaled by up to 10^12, numbers changed, keys deleted) run to exit 0, 1 or 3,
// or are refused in one line with exit 2, within the test's timeout.
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parse, stringify } from 'yaml';
import { scenarioSchema } from '../../sim/scenario/schema.ts';
import { runCli, tempDir } from './helpers.ts';

const SHIPPED = 'scenarios/virtio-net-358ms.yaml';
const TEXT = readFileSync(SHIPPED, 'utf8');
const BASE = parse(TEXT) as Json;

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Path = (string | number)[];

const UNIT = /^\s*(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][+-]?\d+)?\s*(ns|us|µs|ms|s|min|h|B|KB|MB|GB|TB|KiB|MiB|GiB|TiB|[KMG]?B\/s|[KMG]iB\/s|[KMG]?bit\/s|\/s|\/ms|\/us|\/min|\/h|%)\s*$/;

/** Every node of a JSON tree with its path. */
function nodes(value: Json, path: Path = []): { path: Path; value: Json }[] {
  const out = [{ path, value }];
  if (Array.isArray(value)) value.forEach((v, i) => out.push(...nodes(v, [...path, i])));
  else if (value !== null && typeof value === 'object') for (const [k, v] of Object.entries(value)) out.push(...nodes(v, [...path, k]));
  return out;
}

const ALL = nodes(BASE);
const MAPPINGS = ALL.filter((n) => n.value !== null && typeof n.value === 'object' && !Array.isArray(n.value));
const LEAVES = ALL.filter((n) => n.value === null || typeof n.value !== 'object');
const NUMBER_LEAVES = LEAVES.filter((n) => typeof n.value === 'number');
const STRING_LEAVES = LEAVES.filter((n) => typeof n.value === 'string');
const UNIT_LEAVES = STRING_LEAVES.filter((n) => UNIT.test(n.value as string));
const NON_ROOT = ALL.filter((n) => n.path.length > 0);

/** Keys the JSON Schema requires, wherever the shipped file has them: deleting one is a mistake. */
function requiredKeys(): Path[] {
  const schema = scenarioSchema() as Record<string, unknown>;
  const defs = schema.$defs as Record<string, Record<string, unknown>>;
  const resolve = (s: Record<string, unknown> | undefined) => (s && typeof s.$ref === 'string' ? defs[s.$ref.split('/').pop()!] : s);
  const out: Path[] = [];
  const walk = (value: Json, s: Record<string, unknown> | undefined, path: Path) => {
    s = resolve(s);
    if (!s || value === null || typeof value !== 'object') return;
    if (Array.isArray(value)) {
      value.forEach((v, i) => walk(v, s!.items as Record<string, unknown> | undefined, [...path, i]));
      return;
    }
    for (const k of (s.required as string[] | undefined) ?? []) if (k in value) out.push([...path, k]);
    const props = (s.properties ?? {}) as Record<string, Record<string, unknown>>;
    for (const [k, v] of Object.entries(value)) walk(v, props[k], [...path, k]);
  };
  walk(BASE, schema, []);
  return out;
}
const REQUIRED = requiredKeys();

function setAt(root: Json, path: Path, value: Json | undefined): Json {
  const copy = structuredClone(root);
  if (path.length === 0) return value ?? null;
  let o = copy as Record<string | number, Json>;
  for (const p of path.slice(0, -1)) o = o[p] as Record<string | number, Json>;
  const last = path[path.length - 1]!;
  if (value === undefined) {
    if (Array.isArray(o)) o.splice(last as number, 1);
    else delete o[last];
  } else {
    o[last] = value;
  }
  return copy;
}

const word = fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz_'.split('')), minLength: 1, maxLength: 10 });
const junk: fc.Arbitrary<Json> = fc.oneof(fc.integer(), fc.string({ maxLength: 12 }), fc.boolean(), fc.constant(null), fc.array(fc.integer(), { maxLength: 3 }));
const nested = (depth: number, kind: 'list' | 'map'): Json => {
  let v: Json = 'x';
  for (let i = 0; i < depth; i++) v = kind === 'list' ? [v] : { x: v };
  return v;
};
const pick = <T>(items: readonly T[]) => fc.constantFrom(...items);

/** One generated bad input: its family and its text. */
type Case = { family: string; text: string; path?: Path };

const families: Record<string, fc.Arbitrary<Case>> = {
  'unknown key': fc.tuple(pick(MAPPINGS), word, junk).map(([n, k, v]) => ({
    family: 'unknown key', path: [...n.path, `x_${k}`], text: stringify(setAt(BASE, [...n.path, `x_${k}`], v)),
  })),
  'wrong type': fc.oneof(
    fc.tuple(pick(NUMBER_LEAVES), fc.string({ maxLength: 12 })).map(([n, s]) => ({ family: 'wrong type', path: n.path, text: stringify(setAt(BASE, n.path, s)) })),
    fc.tuple(pick(STRING_LEAVES), fc.oneof(fc.integer(), fc.double({ noNaN: true }), fc.boolean())).map(([n, v]) => ({ family: 'wrong type', path: n.path, text: stringify(setAt(BASE, n.path, v)) })),
    fc.tuple(pick(LEAVES), fc.dictionary(word.map((w) => `x_${w}`), junk, { minKeys: 1, maxKeys: 3 })).map(([n, v]) => ({ family: 'wrong type', path: n.path, text: stringify(setAt(BASE, n.path, v)) })),
  ),
  'bad unit': fc.tuple(pick(UNIT_LEAVES), fc.integer({ min: 0, max: 10_000 }), pick(['parsecs', 'sec', 'MS', 'GB/h', 'mins', 'kib', '', ' ', 'Gbps', 'ms/s', 'mb'])).map(([n, v, u]) => ({
    family: 'bad unit', path: n.path, text: stringify(setAt(BASE, n.path, `${v}${u}`)),
  })),
  'negative value': fc.tuple(pick(UNIT_LEAVES), fc.integer({ min: 1, max: 10_000 })).map(([n, v]) => ({
    family: 'negative value', path: n.path, text: stringify(setAt(BASE, n.path, (n.value as string).replace(/^\s*[\d.eE+-]+/, `-${v}`))),
  })),
  'deleted required key': pick(REQUIRED).map((p) => ({ family: 'deleted required key', path: p.slice(0, -1), text: stringify(setAt(BASE, p, undefined)) })),
  'huge number': fc.oneof(
    fc.tuple(pick(NUMBER_LEAVES), pick([1e308, -1e308, 2 ** 64, -1, Infinity, -Infinity, NaN])).map(([n, v]) => ({ family: 'huge number', path: n.path, text: stringify(setAt(BASE, n.path, v)) })),
    pick(UNIT_LEAVES).map((n) => ({ family: 'huge number', path: n.path, text: stringify(setAt(BASE, n.path, (n.value as string).replace(/^\s*[\d.eE+-]+/, '1e400'))) })),
  ),
  'deeply nested junk': fc.tuple(pick(NON_ROOT), fc.integer({ min: 2, max: 400 }), pick(['list', 'map'] as const)).map(([n, d, k]) => ({
    family: 'deeply nested junk', path: n.path, text: stringify(setAt(BASE, n.path, nested(d, k))),
  })),
  'stray line': fc.tuple(fc.integer({ min: 0, max: TEXT.split('\n').length }), word).map(([at, w]) => {
    const lines = TEXT.split('\n');
    lines.splice(at, 0, `x_${w}: 1`);
    return { family: 'stray line', text: lines.join('\n') };
  }),
  'not a mapping': fc.oneof(
    fc.array(junk, { maxLength: 4 }).map((v) => stringify(v)),
    fc.oneof(fc.integer(), fc.double(), fc.boolean(), fc.string({ unit: fc.constantFrom(...'ABC 0123'.split('')), maxLength: 12 })).map((v) => stringify(v)),
  ).map((text) => ({ family: 'not a mapping', text })),
  // No lowercase letters, so no "name" or "duration" key can appear by chance.
  'YAML garbage': fc.oneof(
    fc.string({ unit: fc.constantFrom(...':{}[],-?#&*!|>\'"%@`\n\t 0123456789ABCXYZ.=_/\\'.split('')), maxLength: 300 }),
    fc.tuple(pick(['[', '{A: ', '- ', '? ', '&A [', '"']), fc.integer({ min: 1, max: 3000 })).map(([s, n]) => s.repeat(n)),
  ).map((text) => ({ family: 'YAML garbage', text })),
};

const RUNS_PER_FAMILY = Number(process.env.RUNS ?? 130);

describe(`${Object.keys(families).length * RUNS_PER_FAMILY} malformed scenarios through latsim check`, () => {
  const tmp = tempDir('prop');
  afterAll(() => tmp.remove());
  let n = 0;
  const seen = new Map<string, number>();

  it.each(Object.keys(families))('%s', async (family) => {
    await fc.assert(fc.asyncProperty(families[family]!, async (c) => {
      const file = tmp.file(`case-${n++}.yaml`, c.text);
      const run = await runCli(['check', file]);
      const context = `${c.family}: ${JSON.stringify(c.text.slice(0, 300))}\n${run.stderr}`;
      expect(run.code, context).toBe(2);
      expect(run.stdout, context).toBe('');
      // One line: the file, line and column, then what is wrong.
      expect(run.stderr.endsWith('\n') && run.stderr.indexOf('\n') === run.stderr.length - 1, context).toBe(true);
      expect(run.stderr.startsWith(`latsim: ${file}:`), context).toBe(true);
      expect(run.stderr, context).toMatch(/^latsim: \S+:\d+:\d+: \S.*\n$/);
      expect(run.stderr, context).not.toMatch(/internal error|\bat .*\(.*:\d+:\d+\)/);
      // A mistake at a known place names that place (or a field inside it),
      // unless the YAML itself is refused (nesting too deep).
      if (c.path && c.path.length > 0 && typeof c.path[0] === 'string' && !/: YAML: /.test(run.stderr)) {
        expect(run.stderr, context).toContain(` ${c.path[0]}`);
      }
      seen.set(c.family, (seen.get(c.family) ?? 0) + 1);
    }), { numRuns: RUNS_PER_FAMILY });
  });

  it('covered at least 1,000 inputs', () => {
    expect([...seen.values()].reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(1000);
  });
});

/** The schema node that describes the value at path (through $ref, oneOf and items), or undefined. */
function schemaAt(path: Path): Record<string, unknown> | undefined {
  const schema = scenarioSchema() as Record<string, unknown>;
  const defs = schema.$defs as Record<string, Record<string, unknown>>;
  let s: Record<string, unknown> | undefined = schema;
  for (const p of path) {
    if (!s) return undefined;
    const ref = s.$ref as string | undefined;
    const target: Record<string, unknown> = ref ? { ...defs[ref.split('/').pop()!]!, ...s } : s;
    if (typeof p === 'number') {
      s = (target.items ?? (target.oneOf as Record<string, unknown>[] | undefined)?.find((a) => a.items)?.items) as Record<string, unknown> | undefined;
    } else {
      s = (target.properties as Record<string, Record<string, unknown>> | undefined)?.[p];
    }
  }
  return s;
}

describe('a value ten times its limit names the field, the value and the limit', () => {
  const tmp = tempDir('limit');
  afterAll(() => tmp.remove());
  const RANGED = UNIT_LEAVES.filter((n) => / to /.test(String(schemaAt(n.path)?.['x-range'] ?? '')) && !String(n.value).includes('%'));
  let n = 0;

  it(`for each of the ${RANGED.length} unit fields of ${SHIPPED}`, async () => {
    expect(RANGED.length).toBeGreaterThan(5);
    await fc.assert(fc.asyncProperty(pick(RANGED), async (leaf) => {
      const max = String(schemaAt(leaf.path)!['x-range']).split(' to ').pop()!;
      const [, num, unit] = /^([\d.e+]+)(.*)$/.exec(max)!;
      const value = `${Number(num) * 10}${unit}`;
      const file = tmp.file(`limit-${n++}.yaml`, stringify(setAt(BASE, leaf.path, value)));
      const run = await runCli(['check', file]);
      const context = `${leaf.path.join('.')}=${value}\n${run.stderr}`;
      expect(run.code, context).toBe(2);
      expect(run.stderr, context).toMatch(/^latsim: \S+:\d+:\d+: \S+: .*\n$/);
      expect(run.stderr, context).toContain(`${value} is above the limit of ${max} `);
    }), { numRuns: Math.max(RANGED.length * 2, 30) });
  });
});

describe('random mutations of every shipped scenario, run', () => {
  const tmp = tempDir('mutate');
  afterAll(() => tmp.remove());
  const shipped = readdirSync('scenarios').filter((f) => f.endsWith('.yaml')).map((f) => parse(readFileSync(`scenarios/${f}`, 'utf8')) as Json);
  /** A unit value scaled by 10^k, a number replaced, or a leaf deleted; the run capped at 300,000 events. */
  const mutate = (doc: Json, picks: number[], ks: number[]): Json => {
    let out = doc;
    const leaves = nodes(doc).filter((x) => x.path.length > 0 && (x.value === null || typeof x.value !== 'object') && x.path[0] !== 'fingerprint' && x.path[0] !== 'name');
    picks.forEach((p, i) => {
      const leaf = leaves[p % leaves.length]!;
      const k = ks[i]!;
      if (typeof leaf.value === 'string' && UNIT.test(leaf.value)) {
        out = setAt(out, leaf.path, leaf.value.replace(/^\s*([\d.eE+-]+)/, (m) => String(Number(m) * 10 ** k)));
      } else if (typeof leaf.value === 'number') {
        out = setAt(out, leaf.path, Math.round(leaf.value * 10 ** (k / 3)));
      } else if (k < -6) {
        out = setAt(out, leaf.path, undefined);
      }
    });
    const limits = { ...((out as Record<string, Json>).limits as Record<string, Json> | undefined), max_events: 300_000 };
    return { ...(out as Record<string, Json>), limits, fingerprint: null };
  };
  let n = 0;
  const codes = new Map<number, number>();

  it('exit 0, 1 or 3, or one line of exit 2: never an invariant, an internal error or a hang', { timeout: 600_000 }, async () => {
    await fc.assert(fc.asyncProperty(
      fc.integer({ min: 0, max: shipped.length - 1 }),
      fc.array(fc.nat(), { minLength: 1, maxLength: 4 }),
      fc.array(fc.integer({ min: -9, max: 12 }), { minLength: 4, maxLength: 4 }),
      async (which, picks, ks) => {
        const doc = mutate(shipped[which]!, picks, ks);
        delete (doc as Record<string, Json>).fingerprint;
        const file = tmp.file(`mutant-${n++}.yaml`, stringify(doc));
        const run = await runCli(['run', file, '--json', '--max-memory', '2GiB']);
        const context = `${JSON.stringify(doc)}\n${run.stderr}`;
        codes.set(run.code, (codes.get(run.code) ?? 0) + 1);
        expect([0, 1, 2, 3], context).toContain(run.code);
        if (run.code === 2) {
          expect(run.stderr, context).toMatch(/^latsim: \S+:\d+:\d+: \S.*\n$/);
          expect(run.stdout, context).toBe('');
        }
        expect(run.stderr, context).not.toMatch(/internal error|\bat .*\(.*:\d+:\d+\)/);
      }), { numRuns: Number(process.env.MUTANTS ?? 40) });
  });

  it('ran some mutants to the end, not only refused them', () => {
    expect((codes.get(0) ?? 0) + (codes.get(1) ?? 0) + (codes.get(3) ?? 0)).toBeGreaterThan(0);
    expect(codes.get(2) ?? 0).toBeGreaterThan(0);
  });
});
