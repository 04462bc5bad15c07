// The `guest` section: what the vCPUs run (page dirtying at a rate and in a
// pattern, exits to userspace that take the BQL), guest userspace's need for
// uninterrupted run time, the model's time slice and the ping reply cost.
import type { Dist } from '../util/dist.ts';
import { fixed, items, section, type Fields, type Path, type Raw } from './fields.ts';
import { COST_LIMIT, limit } from './limits.ts';
import { dist, duration, int, list, obj, oneOfWords, percent, rate, size, type Schema } from './schema-kit.ts';
import { MEMORY_LIMIT, type VmSpec } from './vm.ts';

export type DirtyPattern = 'uniform' | 'hotset' | 'sequential' | 'increment';

export interface WorkloadSpec {
  readonly vcpus: readonly number[];
  readonly dirty: {
    readonly rate: number;
    readonly pattern: DirtyPattern;
    /** First page and page count of the range the workload writes. */
    readonly first_page: number;
    readonly pages: number;
    readonly hot_pages: number;
    /** Fraction of writes that go outside the hot set (hotset pattern). */
    readonly cold_fraction: number;
  } | null;
  readonly exits: { readonly rate: number; readonly cost: Dist; readonly kind: 'pio' | 'mmio' } | null;
}

export interface GuestSpec {
  readonly workloads: readonly WorkloadSpec[];
  readonly userspace: { readonly quantum_ns: number; readonly tolerance_ns: number };
  /**
   * The longest stretch of guest code the model runs at once when nothing
   * observes the vCPU sooner (an exit, an interrupt, a kick, the throttle, a
   * dirty-log sync end a stretch): only the model's event count depends on it.
   */
  readonly slice_ns: number;
  /** Guest kernel time to answer a ping once its vCPU runs. */
  readonly ping_reply_cost_ns: number;
}

/** Hot set when none is given: 64 pages. */
const DEFAULT_HOT_PAGES = 64;
/** Share of hotset writes outside the hot set when none is given. */
const DEFAULT_COLD_FRACTION = 0.05;
/** A PIO/MMIO exit's handler time under the BQL when none is given. */
const DEFAULT_EXIT_COST_NS = 20_000;

/** Workloads a scenario may declare at most, and vCPU indices per workload (the vCPU limit). */
export const WORKLOADS_MAX = 256;
const VCPUS_MAX = 1024;
/**
 * Pages a vCPU writes per second: at most 1e8 (400 GB/s of 4 KiB pages,
 * beyond any memory bus). Writes beyond what the range can absorb saturate
 * (sim/guest/dirtier.ts), so the cost of a slice is bounded by pages anyway.
 */
const DIRTY_RATE_LIMIT = limit.rate('0/s', '1e8/s');
/** Offsets and lengths within guest memory. */
const OFFSET_LIMIT = limit.size('0B', MEMORY_LIMIT.maxText);
/** Exits to userspace: each one a round trip of a few microseconds at least. */
const EXIT_RATE_LIMIT = limit.rate('0/s', '1e6/s');
/** Userspace needs at least 10 us per unit of progress: each unit is a sample kept for the report. */
const QUANTUM_LIMIT = limit.duration('10us', '1h');
const TOLERANCE_LIMIT = limit.duration('0s', '1h');
/** The model's slice: from 10 us (events) to 100 ms (writes drawn at once). */
const SLICE_LIMIT = limit.duration('10us', '100ms');
/** Stretches end at whatever observes the vCPU; this bounds the rest. */
const SLICE_DEFAULT_NS = 100_000_000;
const PING_REPLY_COST_LIMIT = limit.duration('0s', '1s');

export function guestSchema(): Schema {
  const workload = obj({
    vcpus: { oneOf: [list(int(0, 1023, 'vCPU index'), 'vCPU indices, each once', VCPUS_MAX, 'vCPUs'), { const: 'all' }], description: 'vCPUs running this workload ("all" or indices)', 'x-expected': '"all" or a list of vCPU indices' },
    dirty: obj({
      rate: rate('pages written per second, per vCPU', DIRTY_RATE_LIMIT),
      pattern: oneOfWords(['uniform', 'hotset', 'sequential', 'increment'], 'which pages get written'),
      start: size('start of the written range in guest memory', OFFSET_LIMIT),
      size: size('length of the written range (default: all memory)', MEMORY_LIMIT),
      hot_set: size('size of the hot set (hotset pattern)', OFFSET_LIMIT),
      cold: percent('share of writes outside the hot set (hotset pattern)'),
    }, 'page dirtying', ['rate', 'pattern']),
    exits: obj({
      rate: rate('exits to userspace per second, greater than zero', EXIT_RATE_LIMIT),
      cost: dist('handler time under the BQL', COST_LIMIT),
      kind: oneOfWords(['pio', 'mmio'], 'exit kind'),
    }, 'PIO/MMIO exits that take the BQL', ['rate']),
  }, 'what vCPUs run', ['vcpus']);
  return obj({
    workloads: list(workload, 'workloads', WORKLOADS_MAX, 'workloads'),
    userspace: obj({
      quantum: duration('uninterrupted run time guest userspace needs for one unit of progress', QUANTUM_LIMIT),
      tolerance: duration('stalls up to this do not interrupt a run', TOLERANCE_LIMIT),
    }, 'guest userspace'),
    slice: duration('longest stretch of guest code the model runs at once when nothing observes the vCPU (default 100ms)', SLICE_LIMIT),
    ping_reply_cost: duration('guest kernel time to answer a ping', PING_REPLY_COST_LIMIT),
  }, 'the guest');
}

type VcpuAt = (path: Path, v: number | undefined, dflt?: number) => number;

export function checkGuest(guest: Raw, vm: VmSpec, vcpuAt: VcpuAt, f: Fields): GuestSpec {
  const { memory_bytes: memory, page_size: pageSize } = vm;
  const workloads: WorkloadSpec[] = items(guest, 'workloads').map((w, i) => {
    const path = ['guest', 'workloads', i];
    const vcpus = w.vcpus === 'all' ? [...Array(vm.vcpus).keys()] : (w.vcpus as number[]);
    vcpus.forEach((v, j) => vcpuAt([...path, 'vcpus', j], v));
    f.distinct([...path, 'vcpus'], vcpus, 'vCPU');
    let dirty: WorkloadSpec['dirty'] = null;
    if (w.dirty) {
      const d = w.dirty as Raw;
      const dp = [...path, 'dirty'];
      const start = f.size([...dp, 'start'], d.start, 0, OFFSET_LIMIT);
      const bytes = f.size([...dp, 'size'], d.size, memory - start, MEMORY_LIMIT);
      if (start + bytes > memory) f.fail([...dp, 'size'], 'the range goes past the end of guest memory');
      const rangePages = Math.floor(bytes / pageSize);
      if (rangePages < 1) f.fail([...dp, 'size'], 'the range holds no whole page');
      const hot = Math.floor(f.size([...dp, 'hot_set'], d.hot_set, Math.min(bytes, DEFAULT_HOT_PAGES * pageSize), OFFSET_LIMIT) / pageSize);
      if (hot > rangePages) f.fail([...dp, 'hot_set'], 'the hot set is larger than the range');
      const cold = f.percent(d.cold, DEFAULT_COLD_FRACTION);
      if (cold > 1) f.fail([...dp, 'cold'], 'cold share above 100%');
      dirty = {
        rate: f.rate([...dp, 'rate'], d.rate, 0, DIRTY_RATE_LIMIT),
        pattern: d.pattern as DirtyPattern,
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
        rate: f.positive([...ep, 'rate'], f.rate([...ep, 'rate'], e.rate, 0, EXIT_RATE_LIMIT), 'exit rate'),
        cost: f.dist([...ep, 'cost'], e.cost, fixed(DEFAULT_EXIT_COST_NS), COST_LIMIT),
        kind: (e.kind as 'pio' | 'mmio' | undefined) ?? 'pio',
      };
    }
    return { vcpus, dirty, exits };
  });
  const us = section(guest, 'userspace');
  const quantum = f.duration(['guest', 'userspace', 'quantum'], us.quantum, 10_000_000, QUANTUM_LIMIT);
  const slice = f.duration(['guest', 'slice'], guest.slice, SLICE_DEFAULT_NS, SLICE_LIMIT);
  return {
    workloads,
    userspace: { quantum_ns: quantum, tolerance_ns: f.duration(['guest', 'userspace', 'tolerance'], us.tolerance, 1_000_000, TOLERANCE_LIMIT) },
    slice_ns: slice,
    ping_reply_cost_ns: f.duration(['guest', 'ping_reply_cost'], guest.ping_reply_cost, 20_000, PING_REPLY_COST_LIMIT),
  };
}
