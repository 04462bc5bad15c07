// Scenario files: YAML in, a checked Scenario out. Structure, types, units and
// unknown keys are checked against the JSON Schema (cli/schema.ts); values
// that are well-formed but impossible (a page size that is not a power of two,
// zero bandwidth, a fault after the end of the run, a vCPU that does not
// exist) are checked here. Every mistake is one ScenarioError naming the file,
// line, column and field path and what was expected. Values set from the
// command line (`latsim sweep --set`) go into the parsed document before any
// check, so they get the same errors, pointing at the line they replace.
import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject } from 'ajv';
import { isMap, isNode, isPair, isScalar, LineCounter, Parser, parseDocument, type Document, type Node } from 'yaml';
import type { Dist } from '../sim/util/dist.ts';
import type {
  BlkSpec, Budget, BudgetKey, FaultSpec, MigrationPolicy, MigrationSpec, NetSpec, Scenario,
  SyntheticHandlerSpec, WorkloadSpec,
} from '../sim/scenario/scenario.ts';
import { BUDGET_KINDS, scenarioSchema } from '../sim/scenario/schema.ts';
import { parseBandwidth, parseDuration, parsePercent, parseRate, parseSize } from '../sim/scenario/units.ts';

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

type Path = readonly (string | number)[];
type Raw = Record<string, unknown>;

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
    throw new ScenarioError(file, line, deep - before.lastIndexOf('\n'), '', `YAML: nested deeper than ${MAX_NESTING} levels`);
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
  return normalize(raw as Raw, file, fail);
}

/** Deeper nesting than any scenario needs. */
export const MAX_NESTING = 64;

/**
 * The offset of the first node nested deeper than MAX_NESTING, or null. The
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
    if (depth > MAX_NESTING) return tok.offset ?? 0;
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

type Fail = (path: Path, detail: string, key?: boolean) => never;

function normalize(r: Raw, file: string, fail: Fail): Scenario {
  const get = (o: unknown, k: string): unknown => (o as Raw | undefined)?.[k];
  const durationAt = (path: Path, value: unknown, dflt: number): number => {
    if (value === undefined) return dflt;
    const ns = parseDuration(value as string);
    if (ns === null) return fail(path, `expected a duration like "358ms", got ${JSON.stringify(value)}`);
    if (!Number.isSafeInteger(ns)) return fail(path, `duration ${value} is too large`);
    return ns;
  };
  const sizeAt = (path: Path, value: unknown, dflt: number): number => {
    if (value === undefined) return dflt;
    const b = parseSize(value as string);
    if (b === null || !Number.isSafeInteger(b)) return fail(path, `expected a size like "4GiB", got ${JSON.stringify(value)}`);
    return b;
  };
  const positive = (path: Path, v: number, what: string): number => (v > 0 ? v : fail(path, `${what} must be greater than zero`));
  const bandwidthAt = (path: Path, value: unknown, dflt: number): number => {
    if (value === undefined) return dflt;
    const bw = parseBandwidth(value as string);
    if (bw === null) return fail(path, `expected a bandwidth like "1Gbit/s", got ${JSON.stringify(value)}`);
    return positive(path, bw, 'bandwidth');
  };
  const rateAt = (path: Path, value: unknown, dflt: number): number => {
    if (value === undefined) return dflt;
    const v = parseRate(value as string);
    if (v === null) return fail(path, `expected a rate like "100/s", got ${JSON.stringify(value)}`);
    return v;
  };
  const distAt = (path: Path, value: unknown, dflt: Dist): Dist => {
    if (value === undefined) return dflt;
    if (typeof value === 'string') return { dist: 'fixed', value_ns: durationAt(path, value, 0) };
    const o = value as Raw;
    const need = (k: string): number => {
      if (o[k] === undefined) return fail(path, `a ${String(o.dist)} distribution needs "${k}"`);
      return durationAt([...path, k], o[k], 0);
    };
    switch (o.dist as Dist['dist']) {
      case 'fixed': return { dist: 'fixed', value_ns: need('value') };
      case 'uniform': {
        const min = need('min');
        const max = need('max');
        if (max < min) return fail([...path, 'max'], 'uniform max is below min');
        return { dist: 'uniform', min_ns: min, max_ns: max };
      }
      case 'exponential': return { dist: 'exponential', mean_ns: need('mean') };
      case 'normal': return { dist: 'normal', mean_ns: need('mean'), stddev_ns: need('stddev') };
      case 'lognormal': {
        if (o.sigma === undefined) return fail(path, 'a lognormal distribution needs "sigma"');
        return { dist: 'lognormal', median_ns: need('median'), sigma: o.sigma as number };
      }
      case 'mixture': {
        const of = o.of as Raw[] | undefined;
        if (!of || of.length === 0) return fail(path, 'a mixture needs "of": a list of {p, value}');
        const parts = of.map((part, i) => ({ p: part.p as number, value: distAt([...path, 'of', i, 'value'], part.value, dflt) }));
        const sum = parts.reduce((s, part) => s + part.p, 0);
        if (Math.abs(sum - 1) > 1e-9) return fail([...path, 'of'], `mixture probabilities add up to ${sum}, not 1`);
        return { dist: 'mixture', of: parts };
      }
    }
  };

  const name = r.name as string;
  const duration = positive(['duration'], durationAt(['duration'], r.duration, 0), 'duration');
  const maxTime = durationAt(['limits', 'max_time'], get(r.limits, 'max_time'), duration);
  if (maxTime < duration) fail(['limits', 'max_time'], `max_time ${String(get(r.limits, 'max_time'))} is shorter than the duration`);

  // The VM.
  const vmRaw = (r.vm ?? {}) as Raw;
  const pageSize = sizeAt(['vm', 'page_size'], vmRaw.page_size, 4096);
  if (pageSize <= 0 || (pageSize & (pageSize - 1)) !== 0 || pageSize > 2 ** 30) {
    fail(['vm', 'page_size'], `page size ${String(vmRaw.page_size)} is not a power of two between 1 B and 1 GiB`);
  }
  const memory = sizeAt(['vm', 'memory'], vmRaw.memory, 2 ** 30);
  if (memory < pageSize) fail(['vm', 'memory'], 'memory must hold at least one page');
  const pages = Math.ceil(memory / pageSize);
  if (pages > 2 ** 32) fail(['vm', 'memory'], 'memory holds more than 2^32 pages');
  const vcpus = (vmRaw.vcpus as number | undefined) ?? 1;
  const populated = vmRaw.populated === undefined ? 1 : parsePercent(vmRaw.populated as string)!;
  const vcpuAt = (path: Path, v: number | undefined, dflt = 0): number => {
    const i = v ?? dflt;
    return i < vcpus ? i : fail(path, `vCPU ${i} does not exist (the VM has ${vcpus})`);
  };

  // Synthetic main-loop handlers.
  const handlers: SyntheticHandlerSpec[] = ((get(r.main_loop, 'handlers') ?? []) as Raw[]).map((h, i) => {
    const path = ['main_loop', 'handlers', i];
    if ((h.rate === undefined) === (h.interval === undefined)) fail(path, 'give exactly one of "rate" and "interval"');
    let interval: Dist;
    if (h.rate !== undefined) {
      const rate = positive([...path, 'rate'], rateAt([...path, 'rate'], h.rate, 0), 'rate');
      interval = { dist: 'exponential', mean_ns: Math.round(1e9 / rate) };
    } else {
      interval = distAt([...path, 'interval'], h.interval, { dist: 'fixed', value_ns: 0 });
    }
    const start = h.start === undefined ? null : durationAt([...path, 'start'], h.start, 0);
    if (start !== null && start >= duration) fail([...path, 'start'], 'starts after the end of the run');
    return {
      name: h.name as string,
      type: h.type as SyntheticHandlerSpec['type'],
      cost: distAt([...path, 'cost'], h.cost, { dist: 'fixed', value_ns: 0 }),
      interval,
      clock: (h.clock as SyntheticHandlerSpec['clock'] | undefined) ?? 'realtime',
      start_ns: start,
    };
  });

  // The guest.
  const guestRaw = (r.guest ?? {}) as Raw;
  const workloads: WorkloadSpec[] = ((guestRaw.workloads ?? []) as Raw[]).map((w, i) => {
    const path = ['guest', 'workloads', i];
    const list = w.vcpus === 'all' ? [...Array(vcpus).keys()] : (w.vcpus as number[]);
    list.forEach((v, j) => vcpuAt([...path, 'vcpus', j], v));
    let dirty: WorkloadSpec['dirty'] = null;
    if (w.dirty) {
      const d = w.dirty as Raw;
      const dp = [...path, 'dirty'];
      const start = sizeAt([...dp, 'start'], d.start, 0);
      const size = sizeAt([...dp, 'size'], d.size, memory - start);
      if (start + size > memory) fail([...dp, 'size'], 'the range goes past the end of guest memory');
      const rangePages = Math.floor(size / pageSize);
      if (rangePages < 1) fail([...dp, 'size'], 'the range holds no whole page');
      const hot = Math.floor(sizeAt([...dp, 'hot_set'], d.hot_set, Math.min(size, 64 * pageSize)) / pageSize);
      if (hot > rangePages) fail([...dp, 'hot_set'], 'the hot set is larger than the range');
      const cold = d.cold === undefined ? 0.05 : parsePercent(d.cold as string)!;
      if (cold > 1) fail([...dp, 'cold'], 'cold share above 100%');
      dirty = {
        rate: rateAt([...dp, 'rate'], d.rate, 0),
        pattern: d.pattern as NonNullable<WorkloadSpec['dirty']>['pattern'],
        first_page: Math.floor(start / pageSize),
        pages: rangePages,
        hot_pages: Math.max(1, hot),
        cold_fraction: cold,
      };
    }
    let exits: WorkloadSpec['exits'] = null;
    if (w.exits) {
      const e = w.exits as Raw;
      const ep = [...path, 'exits'];
      exits = {
        rate: positive([...ep, 'rate'], rateAt([...ep, 'rate'], e.rate, 0), 'exit rate'),
        cost: distAt([...ep, 'cost'], e.cost, { dist: 'fixed', value_ns: 20_000 }),
        kind: (e.kind as 'pio' | 'mmio' | undefined) ?? 'pio',
      };
    }
    return { vcpus: list, dirty, exits };
  });
  const us = (guestRaw.userspace ?? {}) as Raw;
  const quantum = positive(['guest', 'userspace', 'quantum'], durationAt(['guest', 'userspace', 'quantum'], us.quantum, 10_000_000), 'quantum');
  const slice = positive(['guest', 'slice'], durationAt(['guest', 'slice'], guestRaw.slice, 1_000_000), 'slice');

  // Devices.
  const names = new Set<string>();
  const unique = (path: Path, n: string) => {
    if (names.has(n)) fail(path, `device name ${JSON.stringify(n)} is used twice`);
    names.add(n);
  };
  const devRaw = (r.devices ?? {}) as Raw;
  const net: NetSpec[] = ((devRaw.net ?? []) as Raw[]).map((n, i) => {
    const path = ['devices', 'net', i];
    unique([...path, 'name'], n.name as string);
    const peer = (n.peer ?? {}) as Raw;
    const pp = [...path, 'peer'];
    return {
      name: n.name as string,
      vcpu: vcpuAt([...path, 'vcpu'], n.vcpu as number | undefined),
      host_notifier_cost: distAt([...path, 'host_notifier_cost'], n.host_notifier_cost, { dist: 'fixed', value_ns: 20_000 }),
      tx_bh_cost: distAt([...path, 'tx_bh_cost'], n.tx_bh_cost, { dist: 'fixed', value_ns: 30_000 }),
      rx_cost: distAt([...path, 'rx_cost'], n.rx_cost, { dist: 'fixed', value_ns: 10_000 }),
      tx_burst: (n.tx_burst as number | undefined) ?? 256,
      peer: {
        ping_interval_ns: durationAt([...pp, 'ping_interval'], peer.ping_interval, 100_000_000),
        ping_timeout_ns: positive([...pp, 'ping_timeout'], durationAt([...pp, 'ping_timeout'], peer.ping_timeout, 1_000_000_000), 'ping timeout'),
        wire_latency_ns: durationAt([...pp, 'wire_latency'], peer.wire_latency, 50_000),
        background_rate: rateAt([...pp, 'background'], peer.background, 0),
      },
    };
  });
  const blk: BlkSpec[] = ((devRaw.blk ?? []) as Raw[]).map((b, i) => {
    const path = ['devices', 'blk', i];
    unique([...path, 'name'], b.name as string);
    const io = (b.io ?? {}) as Raw;
    const ip = [...path, 'io'];
    const reqBytes = positive([...ip, 'request_size'], sizeAt([...ip, 'request_size'], io.request_size, 4096), 'request size');
    const diskBytes = sizeAt([...ip, 'disk_size'], io.disk_size, 2 ** 30);
    if (diskBytes < reqBytes) fail([...ip, 'disk_size'], 'the disk is smaller than one request');
    if (diskBytes / reqBytes > 2 ** 26) fail([...ip, 'disk_size'], 'more than 2^26 requests fit on the disk; raise request_size');
    return {
      name: b.name as string,
      vcpu: vcpuAt([...path, 'vcpu'], b.vcpu as number | undefined),
      queue_depth: (b.queue_depth as number | undefined) ?? 32,
      read: distAt([...path, 'read'], b.read, { dist: 'exponential', mean_ns: 100_000 }),
      write: distAt([...path, 'write'], b.write, { dist: 'exponential', mean_ns: 200_000 }),
      flush: distAt([...path, 'flush'], b.flush, { dist: 'exponential', mean_ns: 1_000_000 }),
      request_cost: distAt([...path, 'request_cost'], b.request_cost, { dist: 'fixed', value_ns: 5_000 }),
      on_error: (b.on_error as 'report' | 'stop' | undefined) ?? 'report',
      retry_interval_ns: durationAt([...path, 'retry_interval'], b.retry_interval, 0),
      io: {
        pattern: (io.pattern as 'random' | 'sequential' | undefined) ?? 'random',
        rate: rateAt([...ip, 'rate'], io.rate, 0),
        write_fraction: (io.write_fraction as number | undefined) ?? 0.5,
        flush_every: (io.flush_every as number | undefined) ?? 16,
        sectors: Math.floor(diskBytes / reqBytes),
        request_bytes: reqBytes,
      },
    };
  });

  // Faults.
  const faults: FaultSpec[] = ((r.faults ?? []) as Raw[]).map((f, i) => {
    const path = ['faults', i];
    const at = durationAt([...path, 'at'], f.at, 0);
    if (at >= duration) fail([...path, 'at'], `the fault starts at or after the end of the run (${String(r.duration)})`);
    if (!names.has(f.device as string)) {
      fail([...path, 'device'], `no device named ${JSON.stringify(f.device)}${names.size ? `; devices: ${[...names].join(', ')}` : ''}`);
    }
    const kind = f.kind as FaultSpec['kind'];
    const isBlk = blk.some((b) => b.name === f.device);
    if ((kind === 'handler-cost') === isBlk) {
      fail([...path, 'kind'], kind === 'handler-cost' ? 'handler-cost applies to virtio-net devices' : `${kind} applies to virtio-blk devices`);
    }
    if ((kind === 'slow-flush' || kind === 'handler-cost') && f.latency === undefined) fail(path, `a ${kind} fault needs "latency"`);
    return {
      name: f.name as string,
      device: f.device as string,
      kind,
      at_ns: at,
      for_ns: positive([...path, 'for'], durationAt([...path, 'for'], f.for, 0), 'fault length'),
      latency: f.latency === undefined ? null : distAt([...path, 'latency'], f.latency, { dist: 'fixed', value_ns: 0 }),
      ops: (f.ops as FaultSpec['ops'] | undefined) ?? ['read', 'write', 'flush'],
    };
  });

  // Migration.
  let migration: MigrationSpec | null = null;
  if (r.migration) {
    const m = r.migration as Raw;
    const start = durationAt(['migration', 'start'], m.start, 1_000_000_000);
    if (start >= duration) fail(['migration', 'start'], 'migration starts at or after the end of the run');
    const link = (m.link ?? {}) as Raw;
    const ac = (m.auto_converge ?? {}) as Raw;
    const policy = (m.policy === undefined ? ['legacy'] : Array.isArray(m.policy) ? m.policy : [m.policy]) as MigrationPolicy[];
    if (policy.includes('legacy') && policy.length > 1) fail(['migration', 'policy'], 'legacy cannot be combined with other policies');
    if (policy.includes('min-interval') && !policy.includes('flush-timeout')) {
      fail(['migration', 'policy'], 'min-interval acts after a rollback: combine it with flush-timeout');
    }
    const acInitial = (ac.initial as number | undefined) ?? 20;
    const acMax = (ac.max as number | undefined) ?? 99;
    if (acInitial > acMax) fail(['migration', 'auto_converge', 'initial'], 'initial throttle above max');
    migration = {
      start_ns: start,
      policy,
      mode: (m.mode as 'thread' | 'main-loop' | undefined) ?? 'thread',
      max_bandwidth: bandwidthAt(['migration', 'max_bandwidth'], m.max_bandwidth, 128 * 2 ** 20),
      downtime_limit_ns: positive(['migration', 'downtime_limit'], durationAt(['migration', 'downtime_limit'], m.downtime_limit, 300_000_000), 'downtime limit'),
      link: {
        bandwidth: bandwidthAt(['migration', 'link', 'bandwidth'], link.bandwidth, 10e9 / 8),
        latency_ns: durationAt(['migration', 'link', 'latency'], link.latency, 100_000),
      },
      max_iterations: (m.max_iterations as number | undefined) ?? 0,
      flush_timeout_ns: positive(['migration', 'flush_timeout'], durationAt(['migration', 'flush_timeout'], m.flush_timeout, 1_000_000_000), 'flush timeout'),
      min_interval_ns: durationAt(['migration', 'min_interval'], m.min_interval, 5_000_000_000),
      abort_downtime_ns: positive(['migration', 'abort_downtime'], durationAt(['migration', 'abort_downtime'], m.abort_downtime, 2_000_000_000), 'abort downtime'),
      auto_converge: {
        initial: acInitial,
        increment: (ac.increment as number | undefined) ?? 10,
        max: acMax,
        trigger: (ac.trigger as number | undefined) ?? 50,
      },
      device_state_bytes: sizeAt(['migration', 'device_state'], m.device_state, 512 * 1024),
      page_header_bytes: sizeAt(['migration', 'page_header'], m.page_header, 8),
      bug: (m.bug as MigrationSpec['bug'] | undefined) ?? 'none',
    };
  }

  // Budgets.
  const expectRaw = (r.expect ?? {}) as Raw;
  const expect: Budget[] = [];
  for (const [k, v] of Object.entries(expectRaw)) {
    if (k === 'slow_handlers' || k === 'migration_status') continue;
    const bound = k.startsWith('max_') ? 'max' : 'min';
    const key = k.slice(4) as BudgetKey;
    const kind = BUDGET_KINDS[key]![1];
    if (['downtime', 'migration_time', 'completion_attempts', 'rollbacks'].includes(key) && !migration) {
      fail(['expect', k], `${k} needs a migration section`, true);
    }
    if (['ping_rtt_p99', 'ping_lost'].includes(key) && net.length === 0) fail(['expect', k], `${k} needs a virtio-net device`, true);
    expect.push({
      name: k, key, bound,
      limit: kind === 'duration' ? durationAt(['expect', k], v, 0) : (v as number),
      unit: kind === 'duration' ? 'ns' : 'count',
    });
  }
  if (expectRaw.migration_status !== undefined && !migration) fail(['expect', 'migration_status'], 'needs a migration section', true);

  return {
    name,
    file,
    seed: (r.seed as number | undefined) ?? 1,
    duration_ns: duration,
    threshold_ns: positive(['threshold'], durationAt(['threshold'], r.threshold, 100_000_000), 'threshold'),
    limits: { max_events: (get(r.limits, 'max_events') as number | undefined) ?? 500_000_000, max_time_ns: maxTime },
    vm: {
      memory_bytes: memory, page_size: pageSize, vcpus,
      run_state: (vmRaw.run_state as Scenario['vm']['run_state'] | undefined) ?? 'running',
      populated: populated > 1 ? fail(['vm', 'populated'], 'more than 100%') : populated,
    },
    main_loop: { handlers },
    guest: {
      workloads,
      userspace: { quantum_ns: quantum, tolerance_ns: durationAt(['guest', 'userspace', 'tolerance'], us.tolerance, 1_000_000) },
      slice_ns: slice,
      ping_reply_cost_ns: durationAt(['guest', 'ping_reply_cost'], guestRaw.ping_reply_cost, 20_000),
    },
    devices: { net, blk },
    faults,
    migration,
    expect,
    expect_slow: (expectRaw.slow_handlers as string[] | undefined) ?? [],
    expect_migration_status: (expectRaw.migration_status as string | undefined) ?? null,
    fingerprint: (r.fingerprint as string | undefined) ?? null,
  };
}
