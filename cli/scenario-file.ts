// Scenario files: YAML in, a checked Scenario out. Structure, types, units and
// unknown keys are checked against the JSON Schema (sim/scenario/schema.ts);
// values that are well-formed but impossible (a page size that is not a power
// of two, zero bandwidth, a fault after the end of the run, a vCPU that does
// not exist, a value beyond its plausible range) by sim/scenario's section
// checks. This file reads the text, runs both, and places each mistake in the
// file: one ScenarioError naming the file, line, column and field path and
// what was expected. Values set from the command line (`latsim sweep --set`)
// go into the parsed document before any check, so they get the same errors,
// pointing at the line they replace.
//
// Hostile input is refused early and in time linear in its size: only regular
// files of at most SCENARIO_BYTES_MAX, read once through one descriptor
// opened without blocking (a FIFO or /dev/zero is refused at once); flow
// nesting measured by a linear pass of the YAML lexer before the parser runs,
// block nesting on the concrete syntax tree before the composer recurses;
// strict YAML 1.2 with the core schema (no other directive, no unknown tag, no
// complex or duplicate key, no second document), with duplicate keys found by
// hashing rather than by the library's pairwise check; strings capped.
// Finally, with --max-memory, the run's estimated memory (sim/estimate.ts).
// The schema's validator is compiled once per process by Ajv, or, where
// `npm run build` precompiled it for the same schema (dist/, Ajv's standalone
// code with the schema and its SHA-256), loaded as it is: a tenth of a second
// less at every start. The compiled tree takes the schema from there too (it
// comes from the same build); the sources check the SHA-256 against theirs.
import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from 'node:fs';
import { createRequire } from 'node:module';
import { totalmem } from 'node:os';
import { dirname, resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Ajv, ErrorObject, ValidateFunction } from 'ajv';
import {
  Composer, isAlias, isMap, isNode, isPair, isScalar, isSeq, Lexer, LineCounter, Parser,
  type Document, type Node,
} from 'yaml';
import { checkScenario, type Scenario } from '../sim/scenario/scenario.ts';
import { scenarioSchema } from '../sim/scenario/schema.ts';
import type { Schema } from '../sim/scenario/schema-kit.ts';
import type { Path, Raw } from '../sim/scenario/fields.ts';
import { parseSize } from '../sim/scenario/units.ts';
import { estimateMemory } from '../sim/estimate.ts';
import { formatBytes } from '../sim/instrument/format.ts';
import { printableName, ScenarioError, UsageError } from './errors.ts';

export { printableName, ScenarioError } from './errors.ts';

/** A scenario file holds at most 1 MiB (the shipped ones hold 1-2 KiB). */
export const SCENARIO_BYTES_MAX = 2 ** 20;
/** Characters a string in a scenario may have at most. */
export const STRING_CHARS_MAX = 65_536;
/** Deeper nesting than any scenario needs. */
export const NESTING_MAX = 64;
/** The default --max-memory: this share of physical memory. */
export const MAX_MEMORY_SHARE = 0.5;

/** Ajv's options for the scenario schema, at run time and in the precompiled validator alike. */
const AJV_OPTIONS = { allErrors: false, verbose: true, strict: false } as const;
/** Where the build puts the precompiled validator (bin/build.mjs). */
export const PRECOMPILED_VALIDATOR = fileURLToPath(new URL('../dist/scenario-validator.cjs', import.meta.url));

/** True in the compiled tree (bin/build.mjs defines it). */
const COMPILED = (globalThis as { __LATSIM_COMPILED__?: boolean }).__LATSIM_COMPILED__ === true;

interface Precompiled {
  default?: ValidateFunction;
  schema_sha256?: string;
  schema?: Schema;
}

const load = createRequire(import.meta.url);
let schemaCache: Schema | null = null;
let validator: ValidateFunction | null = null;
let precompiled: Precompiled | null | undefined;

function precompiledModule(): Precompiled | null {
  if (precompiled === undefined) {
    try {
      precompiled = load(PRECOMPILED_VALIDATOR) as Precompiled;
    } catch {
      precompiled = null;
    }
  }
  return precompiled;
}

function schema(): Schema {
  if (schemaCache === null) {
    const built = COMPILED ? precompiledModule()?.schema : undefined;
    schemaCache = built ?? scenarioSchema();
  }
  return schemaCache;
}

function schemaSha256(): string {
  return createHash('sha256').update(JSON.stringify(schema())).digest('hex');
}

function validate(): ValidateFunction {
  return (validator ??= precompiledValidator() ?? newAjv().compile(schema()));
}

function newAjv(options: object = {}): Ajv {
  const { Ajv: AjvClass } = load('ajv') as typeof import('ajv');
  return new AjvClass({ ...AJV_OPTIONS, ...options });
}

/** The build's validator if it was made for this schema, else null. */
function precompiledValidator(): ValidateFunction | null {
  const mod = precompiledModule();
  if (mod === null || typeof mod.default !== 'function') return null;
  return COMPILED || mod.schema_sha256 === schemaSha256() ? mod.default : null;
}

/** The scenario schema's validator as a CommonJS module (Ajv's standalone code) that records the schema's SHA-256. */
export function validatorSource(): string {
  const ajv = newAjv({ code: { source: true } });
  const standalone = (load('ajv/dist/standalone') as { default: (a: Ajv, v: ValidateFunction) => string }).default;
  return `${standalone(ajv, ajv.compile(schema()))}\nmodule.exports.schema_sha256 = ${JSON.stringify(schemaSha256())};\n` +
    `module.exports.schema = JSON.parse(${JSON.stringify(JSON.stringify(schema()))});\n`;
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

/** What the run will be allowed (latsim run --max-memory): the scenario is refused when its estimate exceeds it. */
export interface MemoryOptions {
  /** Host memory the runs may take, in bytes. */
  readonly maxMemoryBytes: number;
  /** The trace's records are kept (--trace, --report). */
  readonly keepTrace?: boolean;
  /** Runs at once (--workers): each holds its own model. */
  readonly runsAtOnce?: number;
}

/** Reads and checks a scenario file. Throws ScenarioError for any mistake. */
export function loadScenarioFile(file: string, memory?: MemoryOptions): Scenario {
  return parseScenario(readScenarioText(file), file, [], memory);
}

function fileKind(st: Stats): string {
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isDirectory()) return 'a directory';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

const tooLarge = (file: string, what: string) =>
  new ScenarioError(file, 0, 0, '', `${what}, larger than the limit of ${formatBytes(SCENARIO_BYTES_MAX)} for a scenario`);

/**
 * Reads a scenario file's text: a regular file of at most SCENARIO_BYTES_MAX,
 * read once through one descriptor; anything else is a ScenarioError.
 */
export function readScenarioText(file: string): string {
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
    fd = openSync(file, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0) | (constants.O_NOCTTY ?? 0));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    throw new ScenarioError(file, 0, 0, '', code === 'ENOENT' ? 'no such file' : `cannot read the file (${code})`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new ScenarioError(file, 0, 0, '', `${fileKind(st)}, not a regular file: a scenario is read from a file`);
    if (st.size > SCENARIO_BYTES_MAX) throw tooLarge(file, `the file holds ${formatBytes(st.size)}`);
    // The size is only a hint (a file in /proc says 0, a file may grow): read to the end, at most one byte over.
    const buf = Buffer.alloc(SCENARIO_BYTES_MAX + 1);
    let n = 0;
    for (;;) {
      const got = readSync(fd, buf, n, buf.length - n, null);
      if (got === 0) break;
      n += got;
      if (n > SCENARIO_BYTES_MAX) throw tooLarge(file, 'the file holds more than that');
    }
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(0, n));
    } catch {
      throw new ScenarioError(file, 0, 0, '', 'the file is not UTF-8 text');
    }
  } catch (e) {
    if (e instanceof ScenarioError) throw e;
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    throw new ScenarioError(file, 0, 0, '', `cannot read the file (${code})`);
  } finally {
    closeSync(fd);
  }
}

/** The --max-memory option: a size like "8GiB", default MAX_MEMORY_SHARE of physical memory. */
export function maxMemoryOption(value: string | undefined): number {
  if (value === undefined) return Math.floor(totalmem() * MAX_MEMORY_SHARE);
  const bytes = parseSize(value);
  if (bytes === null || bytes <= 0 || !Number.isSafeInteger(bytes)) {
    throw new UsageError(`--max-memory: expected a size like "8GiB", got ${JSON.stringify(value)}`);
  }
  return bytes;
}

/** The option's help text, the same on every command that runs scenarios. */
export const MAX_MEMORY_HELP = `refuse a scenario whose estimated memory is above this size, e.g. 8GiB (default ${MAX_MEMORY_SHARE * 100}% of physical memory)`;

/** Why a scenario does not fit memory, at the field that weighs most; null when it fits. */
export function memoryProblem(s: Scenario, o: MemoryOptions): { path: Path; detail: string } | null {
  const est = estimateMemory(s, { keepTrace: o.keepTrace ?? false });
  const runs = Math.max(1, o.runsAtOnce ?? 1);
  if (est.bytes * runs <= o.maxMemoryBytes) return null;
  const top = est.parts[0];
  const each = runs > 1 ? ` x ${runs} runs at once` : '';
  return {
    path: top?.path ?? [],
    detail: `the run needs an estimated ${formatBytes(est.bytes)}${each}, above --max-memory ${formatBytes(o.maxMemoryBytes)}` +
      (top ? `; most of it ${top.what} = ${formatBytes(top.bytes)}` : ''),
  };
}

/** Checks scenario text; file names it in errors. Overrides apply before any check. */
/** A YAML document composed under the scenario rules, with its line counter. */
interface Composed {
  readonly doc: Document;
  readonly lc: LineCounter;
  readonly file: string;
}

/**
 * Text to one YAML document under the scenario rules (size, nesting, YAML
 * 1.2 core, one document, no duplicate key); every mistake is a
 * ScenarioError placed in file.
 */
function composeYaml(text: string, file: string): Composed {
  const lc = new LineCounter();
  const here = (offset: number, detail: string): ScenarioError => {
    const pos = lc.linePos(offset);
    return new ScenarioError(file, pos.line, pos.col, '', detail);
  };
  if (text.length > SCENARIO_BYTES_MAX) throw tooLarge(file, `the text holds ${formatBytes(text.length)}`);
  const flow = flowTooDeep(text);
  if (flow !== null) {
    // Lines are counted only up to the offset: the text past it is never parsed.
    const before = text.slice(0, flow);
    const line = before.split('\n').length;
    throw new ScenarioError(file, line, flow - before.lastIndexOf('\n'), '', `YAML: nested deeper than ${NESTING_MAX} levels`);
  }
  const tokens = [...new Parser(lc.addNewLine).parse(text)];
  const cst = checkSyntaxTree(tokens);
  if (cst.problem) throw here(cst.problem.offset, cst.problem.detail);

  const docs = [...new Composer({
    version: '1.2', schema: 'core', strict: true, uniqueKeys: false, merge: false, logLevel: 'error',
  }).compose(tokens, true, text.length)];
  const doc = docs[0]!;
  if (docs.length > 1) throw here(docs[1]!.range[0], 'YAML: a second document (---): a scenario is one document');
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const quote = cst.unclosedQuote;
    if (quote !== null && quote.offset <= e.pos[0]) throw here(quote.offset, `YAML: this ${quote.kind} string is never closed`);
    throw here(e.pos[0], `YAML: ${e.message.split('\n')[0]!}`);
  }
  if (doc.warnings.length > 0) {
    const w = doc.warnings[0]!;
    throw here(w.pos[0], `YAML: ${w.message.split('\n')[0]!}`);
  }
  const keyProblem = checkKeys(doc, lc);
  if (keyProblem) {
    const [line, col] = keyProblem.at;
    throw new ScenarioError(file, line, col, formatPath(keyProblem.path), keyProblem.detail);
  }
  return { doc, lc, file };
}

/** Top-level keys a fragment may not give: they belong to the scenario itself. */
const OWN_KEYS = new Set(['name', 'seed', 'duration', 'fingerprint', 'include', 'description']);

/** A value a fragment gave the scenario: where it came from. */
interface Included {
  readonly path: Path;
  readonly from: Composed;
}

/**
 * The scenario's `include`: each fragment (a path relative to the scenario
 * file) gives the values the scenario leaves out, mapping by mapping; what
 * the scenario gives itself wins, and a later fragment does not replace an
 * earlier one. A list is one value. Returns where each value came from.
 */
function applyIncludes(main: Composed, fail: (path: Path, detail: string, key?: boolean) => never): Included[] {
  const { doc } = main;
  const spec = doc.get('include');
  if (spec === undefined) return [];
  const names = isSeq(spec) ? spec.toJSON() as unknown[] : [isScalar(spec) ? spec.value : spec];
  const out: Included[] = [];
  names.forEach((name, i) => {
    const path: Path = isSeq(spec) ? ['include', i] : ['include'];
    if (typeof name !== 'string' || name === '') fail(path, 'expected the path of a scenario fragment (YAML), relative to this file');
    const target = resolvePath(dirname(main.file), name);
    if (resolvePath(target) === resolvePath(main.file)) fail(path, 'a scenario cannot include itself');
    const frag = composeYaml(readScenarioText(target), target);
    const contents = frag.doc.contents;
    const where = (p: Path, detail: string): never => {
      const [line, col] = locate(frag.doc, frag.lc, p, true);
      throw new ScenarioError(target, line, col, formatPath(p), `${detail} (included by ${printableName(main.file)})`);
    };
    if (!isMap(contents)) where([], 'expected a mapping: a scenario fragment gives sections such as qemu or vm');
    const raw = frag.doc.toJS({ maxAliasCount: 100 }) as Raw;
    for (const key of Object.keys(raw)) if (OWN_KEYS.has(key)) where([key], `${key} belongs to the scenario itself, not to a fragment it includes`);
    const unknown = unknownKey({ name: 'fragment', duration: '1s', ...raw }, scenarioSchema());
    if (unknown) where(unknown.path, unknown.detail);
    const merge = (value: unknown, at: Path): void => {
      const mine = doc.getIn(at, true);
      if (mine === undefined) {
        doc.setIn(at, doc.createNode(value));
        out.push({ path: at, from: frag });
      } else if (isMap(mine) && value !== null && typeof value === 'object' && !Array.isArray(value)) {
        for (const [k, v] of Object.entries(value as Raw)) merge(v, [...at, k]);
      }
    };
    for (const [k, v] of Object.entries(raw)) merge(v, [k]);
  });
  return out;
}

/** Checks scenario text; file names it in errors. Overrides apply before any check. */
export function parseScenario(text: string, file: string, overrides: readonly ScenarioOverride[] = [], memory?: MemoryOptions): Scenario {
  const main = composeYaml(text, file);
  const { doc, lc } = main;
  let included: Included[] = [];
  const at = (path: Path, key = false): [number, number] => locate(doc, lc, path, key);
  const fail = (path: Path, detail: string, key = false): never => {
    const inc = included.find((x) => isPrefix(x.path, path));
    if (inc) {
      const [line, col] = locate(inc.from.doc, inc.from.lc, path, key);
      throw new ScenarioError(inc.from.file, line, col, formatPath(path), `${detail} (included by ${printableName(file)})`);
    }
    const [line, col] = at(path, key);
    const from = overrides.find((o) => isPrefix(o.path, path) || isPrefix(path, o.path));
    throw new ScenarioError(file, line, col, formatPath(path), from ? `${detail} (${from.source})` : detail);
  };
  included = applyIncludes(main, fail);
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
  const scenario = checkRaw(raw, file, fail);
  if (memory) {
    const problem = memoryProblem(scenario, memory);
    if (problem) fail(problem.path, problem.detail);
  }
  return scenario;
}

/**
 * A scenario given as the object its YAML would be (a program's, such as
 * the fuzzer's), checked as parseScenario checks a file's; errors name the
 * field, without a line.
 */
export function scenarioFromObject(raw: unknown, file: string): Scenario {
  return checkRaw(raw, file, (path, detail) => {
    throw new ScenarioError(file, 0, 0, formatPath(path), detail);
  });
}

/** What parseScenario checks of the document's value: its shape, the schema, then each section's rules. */
function checkRaw(raw: unknown, file: string, fail: (path: Path, detail: string, key?: boolean) => never): Scenario {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    return fail([], 'expected a mapping with at least name and duration');
  }
  const long = longString(raw);
  if (long) fail(long.path, `a text of ${long.chars.toLocaleString('en-US')} characters, above the limit of ${STRING_CHARS_MAX.toLocaleString('en-US')}`);
  const unknown = unknownKey(raw, schema());
  if (unknown) fail(unknown.path, unknown.detail, true);
  const v = validate();
  if (!v(raw)) {
    const [path, detail, key] = describe(v.errors ?? []);
    return fail(path, detail, key);
  }
  return checkScenario(raw as Raw, file, fail);
}

/**
 * The offset of the first flow collection ("[" or "{") nested deeper than
 * NESTING_MAX, or null: one pass of the YAML lexer, which is linear in the
 * text, so a megabyte of "[" costs milliseconds, not the parser's seconds.
 */
function flowTooDeep(text: string): number | null {
  let depth = 0;
  let offset = 0;
  for (const tok of new Lexer().lex(text)) {
    if (tok === '[' || tok === '{') {
      if (++depth > NESTING_MAX) return offset;
    } else if (tok === ']' || tok === '}') {
      depth = Math.max(0, depth - 1);
    }
    // Control tokens (document start, scalar and flow-end markers) take no place in the text.
    if (tok !== '\u0002' && tok !== '\u001f' && tok !== '\u0018') offset += tok.length;
  }
  return null;
}

/** The core schema's tags (and "!", the non-specific tag); anything else is refused. */
const CORE_TAGS = new Set(['!', '!!str', '!!int', '!!float', '!!bool', '!!null', '!!map', '!!seq']);

interface SyntaxTreeCheck {
  readonly problem: { offset: number; detail: string } | null;
  /** The first quoted string without its closing quote: where a "missing quote" error really is. */
  readonly unclosedQuote: { offset: number; kind: 'double-quoted' | 'single-quoted' } | null;
}

/**
 * One walk of the concrete syntax tree, with an explicit stack (its depth is
 * what is being measured): nesting deeper than NESTING_MAX, directives other
 * than %YAML 1.2, tags outside the core schema, and the first unclosed quote.
 * The composer, which recurses once per level, runs only after.
 */
function checkSyntaxTree(tokens: readonly unknown[]): SyntaxTreeCheck {
  type Tok = {
    type?: string; offset?: number; source?: string; value?: Tok; key?: Tok | null;
    items?: Tok[]; start?: Tok[] | Tok; sep?: Tok[]; end?: Tok[]; props?: Tok[];
  };
  let unclosedQuote: SyntaxTreeCheck['unclosedQuote'] = null;
  const stack: [Tok | null | undefined, number][] = [];
  for (let i = tokens.length - 1; i >= 0; i--) stack.push([tokens[i] as Tok, 0]);
  while (stack.length > 0) {
    const [tok, depth] = stack.pop()!;
    if (!tok || typeof tok !== 'object') continue;
    if (depth > NESTING_MAX) return { problem: { offset: tok.offset ?? 0, detail: `YAML: nested deeper than ${NESTING_MAX} levels` }, unclosedQuote };
    switch (tok.type) {
      case 'directive': {
        const d = (tok.source ?? '').replace(/\s+#.*$/, '').trim();
        if (!/^%YAML[ \t]+1\.2$/.test(d)) {
          return { problem: { offset: tok.offset ?? 0, detail: `YAML: directive ${JSON.stringify(d)} is not accepted: a scenario is YAML 1.2 (%YAML 1.2, or no directive)` }, unclosedQuote };
        }
        continue;
      }
      case 'tag': {
        const tag = tok.source ?? '';
        if (!CORE_TAGS.has(tag)) {
          return { problem: { offset: tok.offset ?? 0, detail: `YAML: unknown tag ${tag}: only the core schema's ${[...CORE_TAGS].filter((t) => t !== '!').join(', ')} are accepted` }, unclosedQuote };
        }
        continue;
      }
      case 'double-quoted-scalar':
      case 'single-quoted-scalar':
        if (unclosedQuote === null && !quoteClosed(tok.source ?? '')) {
          unclosedQuote = { offset: tok.offset ?? 0, kind: tok.type === 'double-quoted-scalar' ? 'double-quoted' : 'single-quoted' };
        }
        break;
    }
    // Tags and anchors sit in the start, sep and props lists of items and block scalars.
    const lists = [tok.props, tok.end, tok.sep, Array.isArray(tok.start) ? tok.start : tok.start ? [tok.start] : undefined];
    for (const l of lists) if (l) for (const t of l) stack.push([t, depth]);
    if (tok.type === 'document') stack.push([tok.value, depth]);
    const items = tok.items ?? [];
    for (let i = items.length - 1; i >= 0; i--) {
      const item = items[i]!;
      for (const l of [item.start, item.sep]) if (Array.isArray(l)) for (const t of l) stack.push([t, depth]);
      stack.push([item.value, depth + 1]);
      stack.push([item.key, depth + 1]);
    }
  }
  return { problem: null, unclosedQuote };
}

/** Whether a quoted scalar's source ends with its closing quote. */
function quoteClosed(source: string): boolean {
  const q = source[0];
  if (source.length < 2 || source[source.length - 1] !== q) return false;
  if (q === "'") {
    // '' is an escaped quote: the string is closed when the quotes after the opening one pair up, but for the last.
    let run = 0;
    for (let i = source.length - 1; i > 0 && source[i] === "'"; i--) run++;
    return run % 2 === 1;
  }
  // A closing " preceded by an odd number of backslashes is escaped.
  let bs = 0;
  for (let i = source.length - 2; i > 0 && source[i] === '\\'; i--) bs++;
  return bs % 2 === 0;
}

/**
 * Complex (non-scalar) keys and duplicate keys, in document order, found by
 * hashing each mapping's keys (the YAML library compares every pair, which
 * takes seconds on 40,000 keys). The composed tree is at most NESTING_MAX deep.
 */
function checkKeys(doc: Document, lc: LineCounter): { path: Path; at: [number, number]; detail: string } | null {
  const pos = (n: unknown): [number, number] => {
    const p = lc.linePos((n as Node | null)?.range?.[0] ?? 0);
    return [p.line, p.col];
  };
  const stack: [unknown, Path][] = [[doc.contents, []]];
  while (stack.length > 0) {
    const [node, path] = stack.pop()!;
    if (isMap(node)) {
      const seen = new Map<string, unknown>();
      const next: [unknown, Path][] = [];
      for (const pair of node.items) {
        if (!isPair(pair)) continue;
        const k = pair.key;
        if (!isScalar(k)) {
          const what = isAlias(k) ? 'an alias' : isSeq(k) ? 'a list' : isMap(k) ? 'a mapping' : 'nothing';
          return { path, at: pos(k ?? pair.value), detail: `a key must be a single value, not ${what}` };
        }
        const name = String(k.value ?? '');
        const first = seen.get(name);
        if (first !== undefined) {
          const [line, col] = pos(first);
          return { path: [...path, name], at: pos(k), detail: `duplicate key ${JSON.stringify(name)} (first at ${line}:${col})` };
        }
        seen.set(name, k);
        next.push([pair.value, [...path, name]]);
      }
      for (let i = next.length - 1; i >= 0; i--) stack.push(next[i]!);
    } else if (isSeq(node)) {
      for (let i = node.items.length - 1; i >= 0; i--) stack.push([node.items[i], [...path, i]]);
    }
  }
  return null;
}

/** The first string longer than STRING_CHARS_MAX, with its path. */
function longString(raw: unknown): { path: Path; chars: number } | null {
  const stack: [unknown, Path][] = [[raw, []]];
  while (stack.length > 0) {
    const [v, path] = stack.pop()!;
    if (typeof v === 'string') {
      if (v.length > STRING_CHARS_MAX) return { path, chars: v.length };
    } else if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push([v[i], [...path, i]]);
    } else if (v !== null && typeof v === 'object') {
      const entries = Object.entries(v);
      for (let i = entries.length - 1; i >= 0; i--) {
        const [k, x] = entries[i]!;
        if (k.length > STRING_CHARS_MAX) return { path: [...path, k.slice(0, 40)], chars: k.length };
        stack.push([x, [...path, k]]);
      }
    }
  }
  return null;
}

/**
 * The first key, in document order, that the schema does not know, with the
 * known key it is closest to. Run before the schema so that a misspelt key
 * ("duraton") is reported at its own line, not as the required key it hides.
 */
function unknownKey(raw: unknown, schema: Raw): { path: Path; detail: string } | null {
  const defs = (schema.$defs ?? {}) as Record<string, Raw>;
  const resolve = (s: Raw | undefined): Raw | undefined => {
    for (let i = 0; s && typeof s.$ref === 'string' && i < 8; i++) s = defs[s.$ref.split('/').pop()!];
    return s;
  };
  /** The branch of a oneOf that a value of this shape takes. */
  const branch = (s: Raw, v: unknown): Raw | undefined => {
    const alts = s.oneOf as Raw[] | undefined;
    if (!alts) return s;
    const want = Array.isArray(v) ? 'array' : v !== null && typeof v === 'object' ? 'object' : null;
    return alts.map(resolve).find((a) => a && (a.type === want || (Array.isArray(a.type) && a.type.includes(want))));
  };
  const stack: [unknown, Raw | undefined, Path][] = [[raw, schema, []]];
  while (stack.length > 0) {
    const [v, s0, path] = stack.pop()!;
    const s = s0 && branch(resolve(s0)!, v);
    if (!s) continue;
    if (Array.isArray(v)) {
      const item = s.items as Raw | undefined;
      if (item) for (let i = v.length - 1; i >= 0; i--) stack.push([v[i], item, [...path, i]]);
      continue;
    }
    if (v === null || typeof v !== 'object') continue;
    const props = s.properties as Record<string, Raw> | undefined;
    if (!props || s.additionalProperties !== false) continue;
    const next: [unknown, Raw | undefined, Path][] = [];
    for (const [k, x] of Object.entries(v as Raw)) {
      if (!Object.hasOwn(props, k)) {
        const known = Object.keys(props);
        const near = closest(k, known);
        const shown = k.length > 40 ? `${k.slice(0, 40)}...` : k;
        return {
          path: [...path, k],
          detail: near ? `unknown key ${JSON.stringify(shown)} (did you mean ${JSON.stringify(near)}?)` : `unknown key ${JSON.stringify(shown)}; expected one of: ${known.join(', ')}`,
        };
      }
      next.push([x, props[k], [...path, k]]);
    }
    for (let i = next.length - 1; i >= 0; i--) stack.push(next[i]!);
  }
  return null;
}

/** The known key within a few edits of k (a third of its length, at least one), or null. */
function closest(k: string, known: readonly string[]): string | null {
  if (k.length > 64) return null;
  let best: string | null = null;
  let bestD = Math.max(1, Math.floor(k.length / 3)) + 1;
  for (const c of known) {
    const d = editDistance(k.toLowerCase(), c);
    if (d < bestD) {
      best = c;
      bestD = d;
    }
  }
  return best;
}

/** Optimal string alignment distance: insertions, deletions, substitutions and swaps of neighbours. */
function editDistance(a: string, b: string): number {
  const rows: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 0; j <= b.length; j++) rows[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, rows[i - 2]![j - 2]! + 1);
      rows[i]![j] = d;
    }
  }
  return rows[a.length]![b.length]!;
}

/** Whitespace that looks like a space and is not one: names it for the message. */
function oddSpace(s: string): string | null {
  const m = /[\t\u00a0\u1680\u2000-\u200b\u202f\u205f\u3000\ufeff]/.exec(s);
  if (!m) return null;
  const c = m[0];
  if (c === '\t') return 'a tab';
  if (c === '\u00a0') return 'a no-break space (U+00A0)';
  return `a U+${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')} space`;
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
  const got = (d: unknown) => (d === null ? 'nothing' : typeof d === 'string' ? JSON.stringify(d.length > 40 ? `${d.slice(0, 40)}...` : d) : Array.isArray(d) ? 'a list' : typeof d === 'object' ? 'a mapping' : String(d));
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
    case 'maxItems': {
      const n = (pick.data as unknown[]).length;
      const what = (parent['x-items'] as string | undefined) ?? 'items';
      return [path, `${n.toLocaleString('en-US')} ${what}, above the limit of ${String(pick.schema)}`, false];
    }
    case 'maxLength':
      return [path, `expected ${expected}, got a text of ${(pick.data as string).length.toLocaleString('en-US')} characters`, false];
    case 'pattern': {
      const odd = typeof pick.data === 'string' ? oddSpace(pick.data) : null;
      return [path, `expected ${expected}, got ${got(pick.data)}${odd ? `, which holds ${odd} where only a plain space may go` : ''}`, false];
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
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg));
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
