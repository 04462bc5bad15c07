// Scenario files: YAML in, a checked Scenario out. Structure, types, units and
// unknown keys are checked against the JSON Schema (sim/scenario/schema.ts);
// values that are well-formed but impossible (a page size that is not a power
// of two, zero bandwidth, a fault after the end of the run, a vCPU that does
// not exist) by sim/scenario's section checks. This file reads the text, runs
// both, and places each mistake in the file: one ScenarioError naming the
// file, line, column and field path and what was expected. Values set from the
// command line (`latsim sweep --set`) go into the parsed document before any
// check, so they get the same errors, pointing at the line they replace.
import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject } from 'ajv';
import { isMap, isNode, isPair, isScalar, LineCounter, Parser, parseDocument, type Document, type Node } from 'yaml';
import { checkScenario, type Scenario } from '../sim/scenario/scenario.ts';
import { scenarioSchema } from '../sim/scenario/schema.ts';
import type { Path, Raw } from '../sim/scenario/fields.ts';

export class ScenarioError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly col: number,
    readonly path: string,
    readonly detail: string,
  ) {
    super(`${file}${line > 0 ? `:${line}:${col}` : ''}: ${path ? `${path}: ` : ''}${detail}`);
    this.name = 'ScenarioError';
  }
}

let validator: ReturnType<Ajv['compile']> | null = null;
function validate(): ReturnType<Ajv['compile']> {
  if (!validator) {
    const ajv = new Ajv({ allErrors: false, verbose: true, strict: false });
    validator = ajv.compile(scenarioSchema());
  }
  return validator;
}

/** A value set from outside the file, e.g. `--set migration.flush_timeout=2s`. */
export interface ScenarioOverride {
  /** Keys and list indices from the top of the document. */
  readonly path: readonly (string | number)[];
  /** A parsed YAML value (scalar, list or mapping). */
  readonly value: unknown;
  /** How the user wrote it, quoted in error messages. */
  readonly source: string;
}

/** Reads and checks a scenario file. Throws ScenarioError for any mistake. */
export function loadScenarioFile(file: string): Scenario {
  return parseScenario(readScenarioText(file), file);
}

/** Reads a scenario file's text; a missing or unreadable file is a ScenarioError. */
export function readScenarioText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    throw new ScenarioError(file, 0, 0, '', code === 'ENOENT' ? 'no such file' : `cannot read the file (${code})`);
  }
}

/** Checks scenario text; file names it in errors. Overrides apply before any check. */
export function parseScenario(text: string, file: string, overrides: readonly ScenarioOverride[] = []): Scenario {
  const lc = new LineCounter();
  const deep = tooDeep(text);
  if (deep !== null) {
    const before = text.slice(0, deep);
    const line = before.split('\n').length;
    throw new ScenarioError(file, line, deep - before.lastIndexOf('\n'), '', `YAML: nested deeper than ${NESTING_MAX} levels`);
  }
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: true, uniqueKeys: true });
  const at = (path: Path, key = false): [number, number] => locate(doc, lc, path, key);
  const fail = (path: Path, detail: string, key = false): never => {
    const [line, col] = at(path, key);
    const from = overrides.find((o) => isPrefix(o.path, path) || isPrefix(path, o.path));
    throw new ScenarioError(file, line, col, formatPath(path), from ? `${detail} (${from.source})` : detail);
  };
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const pos = e.linePos?.[0] ?? { line: 1, col: 1 };
    throw new ScenarioError(file, pos.line, pos.col, '', `YAML: ${e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '')}`);
  }
  for (const o of overrides) {
    if (o.path.length === 0) fail([], `cannot replace the whole document (${o.source})`);
    try {
      // A scalar replacing a scalar keeps its node, so errors point at the line it replaced.
      const value = o.value !== null && typeof o.value === 'object' ? doc.createNode(o.value) : o.value;
      if (doc.contents === null) (doc as Document).contents = doc.createNode({});
      doc.setIn(o.path, value);
    } catch (e) {
      const at = /^Expected YAML collection at (.*?)\. Remaining path/.exec((e as Error).message)?.[1];
      fail(o.path, at ? `cannot set it: ${at} is a single value, not a mapping or list` : `cannot set it: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    return fail([], `YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    return fail([], 'expected a mapping with at least name and duration');
  }
  const v = validate();
  if (!v(raw)) {
    const [path, detail, key] = describe(v.errors ?? []);
    return fail(path, detail, key);
  }
  return checkScenario(raw as Raw, file, fail);
}

/** Deeper nesting than any scenario needs. */
export const NESTING_MAX = 64;

/**
 * The offset of the first node nested deeper than NESTING_MAX, or null. The
 * YAML composer recurses once per level; on deep enough input it exhausts the
 * stack, and V8 can then fail hard instead of throwing. The concrete syntax
 * tree is built without recursion, so it is measured here first, with an
 * explicit stack.
 */
function tooDeep(text: string): number | null {
  type Tok = { type?: string; offset?: number; value?: unknown; items?: { key?: unknown; value?: unknown }[] };
  const stack: [Tok | null | undefined, number][] = [];
  for (const doc of new Parser().parse(text)) stack.push([doc as Tok, 0]);
  while (stack.length > 0) {
    const [tok, depth] = stack.pop()!;
    if (!tok || typeof tok !== 'object') continue;
    if (depth > NESTING_MAX) return tok.offset ?? 0;
    if (tok.type === 'document') stack.push([tok.value as Tok, depth]);
    for (const item of tok.items ?? []) {
      stack.push([item.key as Tok, depth + 1]);
      stack.push([item.value as Tok, depth + 1]);
    }
  }
  return null;
}

/** The most useful schema error: its path, what was expected, and whether to point at a key. */
function describe(errors: ErrorObject[]): [Path, string, boolean] {
  const pick = errors.find((e) => e.keyword === 'oneOf' || e.keyword === 'anyOf') ?? errors[0]!;
  const path: (string | number)[] = pick.instancePath
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
  const parent = (pick.parentSchema ?? {}) as Raw;
  const expected = (parent['x-expected'] as string | undefined) ?? pick.message ?? 'something else';
  const got = (d: unknown) => (d === null ? 'nothing' : typeof d === 'string' ? JSON.stringify(d) : Array.isArray(d) ? 'a list' : typeof d === 'object' ? 'a mapping' : String(d));
  switch (pick.keyword) {
    case 'additionalProperties': {
      const key = (pick.params as { additionalProperty: string }).additionalProperty;
      const known = Object.keys((parent.properties as Raw | undefined) ?? {}).join(', ');
      return [[...path, key], `unknown key ${JSON.stringify(key)}; expected one of: ${known}`, true];
    }
    case 'required': {
      const key = (pick.params as { missingProperty: string }).missingProperty;
      return [path, `missing required key ${JSON.stringify(key)}`, false];
    }
    default:
      return [path, `expected ${expected}, got ${got(pick.data)}`, false];
  }
}

function isPrefix(prefix: Path, path: Path): boolean {
  return prefix.length <= path.length && prefix.every((p, i) => p === path[i]);
}

function formatPath(path: Path): string {
  let s = '';
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : s ? `.${p}` : p;
  return s;
}

/** Line and column of the node at path (of its key, when key is set). */
function locate(doc: Document, lc: LineCounter, path: Path, key: boolean): [number, number] {
  let node: unknown = doc.contents;
  let best: Node | null = (doc.contents as Node | null) ?? null;
  for (let i = 0; i < path.length; i++) {
    const seg = path[i]!;
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && p.key.value === seg);
      if (!pair) break;
      if (key && i === path.length - 1) {
        best = pair.key as Node;
        break;
      }
      node = pair.value;
      if (isNode(node) && node.range) best = node;
      // A value set from the command line has no place in the file: point at its key.
      else if (isNode(pair.key) && pair.key.range) best = pair.key;
    } else if (node && typeof node === 'object' && 'items' in node && typeof seg === 'number') {
      node = (node as { items: unknown[] }).items[seg];
      if (isNode(node) && node.range) best = node;
    } else {
      break;
    }
  }
  const offset = best?.range?.[0] ?? 0;
  const pos = lc.linePos(offset);
  return [pos.line, pos.col];
}
