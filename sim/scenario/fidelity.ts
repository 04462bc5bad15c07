// The `fidelity` section: how close the simulation should come to real QEMU
// on this scenario (`latsim qemu compare`, the fidelity suite of
// scenarios/fidelity/). The simulation itself ignores it. Each metric's
// tolerance is relative (a share of the simulated value), absolute (in the
// metric's unit), or both, and the metric is within it when either holds.
// The defaults are the fidelity goals: the outcome must match, dirty-sync-count
// within 1, ram.transferred and total-time within 10%, downtime within 25% or
// 5 ms. Metrics without a default (setup-time, expected-downtime, duplicate
// and normal pages) are compared and reported, but have no goal unless the
// file gives one.
import type { Fields, Path, Raw } from './fields.ts';
import { limit } from './limits.ts';
import { duration, int, obj, oneOfWords, percent, size, type Schema } from './schema-kit.ts';

/** An absolute tolerance of a time: up to an hour (a flush stall's downtime is tens of seconds). */
const TIME_TOLERANCE_LIMIT = limit.duration('0s', '1h');
/** An absolute tolerance of ram.transferred: up to 4 TiB (the largest guest is smaller). */
const SIZE_TOLERANCE_LIMIT = limit.size('0B', '4TiB');
/** An absolute tolerance of a count (syncs, pages). */
const COUNT_TOLERANCE_MAX = 2 ** 32;

export interface Tolerance {
  /** Largest |qemu - sim| / |sim| (a fraction), or null. */
  readonly relative: number | null;
  /** Largest |qemu - sim| in the metric's unit (count, bytes, ns), or null. */
  readonly absolute: number | null;
}

export type FidelityMetric =
  | 'dirty_sync_count'
  | 'ram_transferred'
  | 'duplicate'
  | 'normal'
  | 'total_time'
  | 'setup_time'
  | 'downtime'
  | 'expected_downtime';

export interface FidelitySpec {
  /** must-match: QEMU's migration status must be the simulation's; ignore: reported only. */
  readonly outcome: 'must-match' | 'ignore';
  /** Each metric's tolerance; null: compared, no goal. */
  readonly tolerances: Readonly<Record<FidelityMetric, Tolerance | null>>;
}

/** The unit a metric's absolute tolerance is written in. */
const KIND: Record<FidelityMetric, ['count' | 'size' | 'duration', string]> = {
  dirty_sync_count: ['count', 'dirty-sync-count'],
  ram_transferred: ['size', 'ram.transferred'],
  duplicate: ['count', 'ram.duplicate (zero pages)'],
  normal: ['count', 'ram.normal pages'],
  total_time: ['duration', 'total-time'],
  setup_time: ['duration', 'setup-time'],
  downtime: ['duration', 'downtime'],
  expected_downtime: ['duration', 'expected-downtime'],
};

/** The fidelity goals (what a scenario without the section is held to). */
export const DEFAULT_FIDELITY: FidelitySpec = {
  outcome: 'must-match',
  tolerances: {
    dirty_sync_count: { relative: null, absolute: 1 },
    ram_transferred: { relative: 0.1, absolute: null },
    duplicate: null,
    normal: null,
    total_time: { relative: 0.1, absolute: null },
    setup_time: null,
    downtime: { relative: 0.25, absolute: 5_000_000 },
    expected_downtime: null,
  },
};

function absoluteSchema(kind: 'count' | 'size' | 'duration', what: string): Schema {
  const d = `largest absolute difference in ${what}`;
  return kind === 'count' ? int(0, COUNT_TOLERANCE_MAX, d) : kind === 'size' ? size(d, SIZE_TOLERANCE_LIMIT) : duration(d, TIME_TOLERANCE_LIMIT);
}

export function fidelitySchema(): Schema {
  const props: Record<string, Schema> = {
    outcome: oneOfWords(['must-match', 'ignore'], 'must-match: QEMU\'s migration status must equal the simulation\'s (default)'),
  };
  for (const [key, [kind, what]] of Object.entries(KIND)) {
    const abs = absoluteSchema(kind, what);
    const rel = percent(`largest relative difference in ${what}, as a share of the simulated value`);
    props[key] = {
      oneOf: [rel, abs, obj({ relative: rel, absolute: abs }, 'within either bound')],
      'x-expected': `a percentage like "10%", ${kind === 'count' ? 'a count' : kind === 'size' ? 'a size like "1MiB"' : 'a duration like "5ms"'}, or {relative, absolute}`,
      description: `tolerance of ${what}`,
    };
  }
  return obj(props, 'latsim qemu compare and the fidelity suite: how close the simulation must come to QEMU (ignored by the simulation)');
}

/** Reads the section (absent: the goals). */
export function checkFidelity(raw: unknown, f: Fields): FidelitySpec {
  if (raw === undefined || raw === null) return DEFAULT_FIDELITY;
  const r = raw as Raw;
  const tolerances = { ...DEFAULT_FIDELITY.tolerances };
  for (const [key, [kind]] of Object.entries(KIND) as [FidelityMetric, [string, string]][]) {
    const v = r[key];
    if (v === undefined) continue;
    const path: Path = ['fidelity', key];
    const abs = (x: unknown, p: Path): number =>
      kind === 'count' ? (x as number) : kind === 'size' ? f.size(p, x, 0, SIZE_TOLERANCE_LIMIT) : f.duration(p, x, 0, TIME_TOLERANCE_LIMIT);
    if (typeof v === 'object' && v !== null) {
      const o = v as Raw;
      if (o.relative === undefined && o.absolute === undefined) f.fail(path, 'give relative, absolute or both');
      tolerances[key] = {
        relative: o.relative === undefined ? null : f.percent(o.relative, 0),
        absolute: o.absolute === undefined ? null : abs(o.absolute, [...path, 'absolute']),
      };
    } else if (typeof v === 'string' && v.trim().endsWith('%')) {
      tolerances[key] = { relative: f.percent(v, 0), absolute: null };
    } else {
      tolerances[key] = { relative: null, absolute: abs(v, path) };
    }
  }
  return { outcome: (r.outcome as FidelitySpec['outcome'] | undefined) ?? 'must-match', tolerances };
}

/** Whether a QEMU figure is within a tolerance of the simulated one (null: no goal). */
export function withinTolerance(t: Tolerance | null, sim: number, qemu: number): boolean | null {
  if (!t) return null;
  const diff = Math.abs(qemu - sim);
  if (t.absolute !== null && diff <= t.absolute) return true;
  if (t.relative !== null && (sim === 0 ? diff === 0 : diff / Math.abs(sim) <= t.relative)) return true;
  return false;
}
