// A fuzz seed's knobs as a scenario file: YAML text with a comment header, so
// a fuzzed scenario goes through the same schema and checks as a hand-written
// one and can be saved as it is. Two phases: safety (the knobs' faults on,
// the run as long as the duration knob) and liveness (faults off, a dirty
// rate the link can outrun, and a generous duration, so migration must
// complete). Runs stay small: 64-512 MiB of guest memory, at most 120 s of
// simulated time. multifd (its channels and zero-page-detection) and xbzrle
// (its cache size, down to a cache that misses) are drawn in both phases.
// Postcopy (when the migration runs from its thread) starts
// after 0-2 passes or at a time, with or without preempt; a link-break (safety
// phase only) cuts the stream at any point, pre-copy, switch or postcopy.
// How KVM tracks dirty pages is drawn too: the dirty log, with
// or without manual protection, or the dirty ring (always with dirty-limit).
// Leaves out: running and judging the scenario (cli/fuzz/check.ts).
import { stringify } from 'yaml';
import type { Knobs } from './knobs.ts';

export type Phase = 'safety' | 'liveness';

/** Planted bugs of the migration model, for checking the checkers. */
export const PLANTS = ['sync-drops-new-bits', 'skip-final-flush', 'resend-queued-page'] as const;
export type Plant = (typeof PLANTS)[number];

/** Liveness: time for 2 full passes over memory at the slower of rate limit and link, plus 10 s, at most 120 s. */
export const LIVENESS_DURATION_MAX_S = 120;
/** Liveness: the guest dirties at most this share of what the migration may send. */
const LIVENESS_DIRTY_SHARE = 0.1;
const PAGE = 4096;
const MiB = 2 ** 20;

const MEMORY_MIB = [64, 128, 256, 512];
const PATTERNS = ['uniform', 'hotset', 'sequential', 'increment'];
const FAULTS = [null, 'stall', 'slow-flush', 'io-error', 'handler-cost'] as const;
const POLICIES = [['legacy'], ['flush-timeout'], ['flush-timeout', 'min-interval'], ['abort-on-downtime'], ['auto-converge'], ['dirty-limit']];
const RING_SIZES = [1024, 2048, 4096, 16384];
const BANDWIDTH_MIB_MAX = [128, 32, 64, 256];
const LINK = [['10Gbit/s', 10e9 / 8], ['1Gbit/s', 1e9 / 8], ['400Mbit/s', 400e6 / 8]] as const;
const ZERO_PAGE_DETECTION = ['multifd', 'legacy', 'none'];
const XBZRLE_CACHE = ['64MiB', '16MiB', '1MiB', '64KiB'];

export interface ScenarioText {
  readonly name: string;
  /** The scenario as the object its YAML stands for (what runs). */
  readonly doc: Record<string, unknown>;
  /** The scenario file (rendered when asked for: a run needs only doc). */
  readonly text: string;
  /** The scenario's duration. */
  readonly duration_ns: number;
  /**
   * Everything but its name, header and duration, as text: two scenarios with
   * the same model are the same run up to the shorter one's end.
   */
  readonly model: string;
}

export interface BuildOptions {
  readonly seed: number;
  readonly phase: Phase;
  readonly plant: Plant | null;
  /** Comment lines for the header (without "# "). */
  readonly header?: readonly string[];
  /** The scenario's name (default fuzz-<seed>-<phase>). */
  readonly name?: string;
  /** An expect section to add (a regression file's expected behaviour). */
  readonly expect?: Record<string, unknown>;
}

/** The scenario a seed's knobs describe, for one phase. */
export function buildScenario(k: Knobs, o: BuildOptions): ScenarioText {
  const liveness = o.phase === 'liveness';
  const name = o.name ?? `fuzz-${o.seed}-${o.phase}`;
  const memMiB = MEMORY_MIB[k.memory]!;
  const maxBw = BANDWIDTH_MIB_MAX[k.max_bandwidth]! * MiB;
  const [linkText, linkBw] = LINK[k.link_bandwidth]!;
  const startMs = k.migration_start_ms;
  const livenessS = Math.min(LIVENESS_DURATION_MAX_S, Math.ceil(startMs / 1000 + (2 * memMiB * MiB) / Math.min(maxBw, linkBw) + 10));
  const durationS = liveness ? livenessS : k.duration_s;
  const durationMs = durationS * 1000;

  // How KVM tracks dirty pages: the ring (dirty-limit needs it), manual protection, or the plain log.
  const policy = POLICIES[k.policy]!;
  const ring = k.ring_on === 1 || policy.includes('dirty-limit');
  const vm: Record<string, unknown> = { memory: `${memMiB}MiB`, vcpus: k.vcpus };
  if (ring) vm.dirty_ring_size = RING_SIZES[k.ring_size];
  else if (k.manual_on) vm.manual_dirty_log_protect = true;
  const doc: Record<string, unknown> = {
    name,
    seed: o.seed,
    duration: `${durationS}s`,
    vm,
  };

  // Synthetic main-loop work.
  if (k.handler_on) {
    doc.main_loop = { handlers: [{ name: 'fuzz.noisy-bh', type: 'bh', rate: `${k.handler_rate}/s`, cost: `${k.handler_cost_us}us` }] };
  }

  // The guest.
  const workload: Record<string, unknown> = { vcpus: 'all' };
  if (k.dirty_on) {
    let rate = k.dirty_rate;
    if (liveness) {
      const cap = Math.floor((LIVENESS_DIRTY_SHARE * Math.min(maxBw, linkBw)) / PAGE / k.vcpus);
      rate = Math.max(1, Math.min(rate, cap));
    }
    const dirty: Record<string, unknown> = { rate: `${rate}/s`, pattern: PATTERNS[k.dirty_pattern] };
    if (PATTERNS[k.dirty_pattern] === 'hotset') dirty.hot_set = `${Math.max(1, Math.floor((memMiB * k.hot_set_pct) / 100))}MiB`;
    workload.dirty = dirty;
  }
  if (k.exits_on) workload.exits = { rate: `${k.exit_rate}/s`, cost: `${k.exit_cost_us}us` };
  if (workload.dirty || workload.exits) doc.guest = { workloads: [workload] };

  // Devices.
  const devices: Record<string, unknown> = {};
  if (k.net_on) devices.net = [{ name: 'net0', host_notifier_cost: `${k.net_cost_us}us` }];
  if (k.blk_on) {
    devices.blk = [{
      name: 'disk0',
      flush: k.blk_flush_ms === 0 ? '100us' : `${k.blk_flush_ms}ms`,
      write: `${k.blk_write_us}us`,
      on_error: k.blk_on_error ? 'stop' : 'report',
      retry_interval: `${k.blk_retry_ms}ms`,
      io: { rate: `${k.blk_io_rate}/s`, write_fraction: 0.7, flush_every: 8 },
    }];
  }
  if (Object.keys(devices).length > 0) doc.devices = devices;

  // The fault, in the safety phase only, on a device that exists.
  const fault = FAULTS[k.fault]!;
  const faultDevice = fault === 'handler-cost' ? (k.net_on ? 'net0' : null) : k.blk_on ? 'disk0' : null;
  if (!liveness && fault && faultDevice) {
    const atMs = Math.min(startMs + k.fault_at_ms, durationMs - 1000);
    const f: Record<string, unknown> = { name: `fuzz-${fault}`, device: faultDevice, kind: fault, at: `${atMs}ms`, for: `${k.fault_for_ms}ms` };
    if (fault === 'slow-flush') f.latency = `${k.fault_latency_ms}ms`;
    if (fault === 'handler-cost') f.latency = `${Math.min(k.fault_latency_ms, 2000)}ms`;
    doc.faults = [f];
  }
  if (!liveness && k.break_on) {
    const atMs = Math.min(startMs + k.break_at_ms, durationMs - 1000);
    doc.faults = [...((doc.faults as unknown[] | undefined) ?? []), { name: 'fuzz-link-break', kind: 'link-break', at: `${atMs}ms`, for: `${k.break_for_ms}ms` }];
  }

  // Migration.
  const migration: Record<string, unknown> = {
    start: `${startMs}ms`,
    policy: policy.length === 1 ? policy[0] : policy,
    mode: k.mode ? 'main-loop' : 'thread',
    max_bandwidth: `${BANDWIDTH_MIB_MAX[k.max_bandwidth]}MiB/s`,
    downtime_limit: `${k.downtime_limit_ms}ms`,
    link: { bandwidth: linkText },
  };
  if (k.max_iterations > 0) migration.max_iterations = k.max_iterations;
  if (policy.includes('flush-timeout')) migration.flush_timeout = `${k.flush_timeout_ms}ms`;
  if (policy.includes('min-interval')) migration.min_interval = `${k.min_interval_ms}ms`;
  if (policy.includes('abort-on-downtime')) migration.abort_downtime = `${k.downtime_limit_ms + k.abort_extra_ms}ms`;
  if (policy.includes('auto-converge')) {
    migration.auto_converge = { initial: k.throttle_initial, increment: k.throttle_increment };
  }
  if (k.multifd_on && !k.mode) {
    migration.multifd = { channels: k.multifd_channels, zero_page_detection: ZERO_PAGE_DETECTION[k.zero_page_detection] };
  }
  if (k.xbzrle_on) migration.xbzrle = { cache_size: XBZRLE_CACHE[k.xbzrle_cache] };
  // QEMU refuses postcopy with multifd (migrate_caps_check): multifd wins the draw.
  if (k.postcopy_on && !k.mode && !migration.multifd) {
    const postcopy: Record<string, unknown> = k.postcopy_start < 3
      ? { start_after_passes: k.postcopy_start }
      : { start_at: `${Math.min(startMs + k.postcopy_at_ms, durationMs - 1)}ms` };
    if (k.postcopy_preempt) postcopy.preempt = true;
    postcopy.recover_after = `${k.recover_after_ms}ms`;
    migration.postcopy = postcopy;
  }
  if (policy.includes('dirty-limit')) {
    migration.dirty_limit = { vcpu_dirty_limit: k.vcpu_dirty_limit, period: `${k.dirty_limit_period_ms}ms` };
  }
  if (!ring && k.manual_on) migration.clear_bitmap_shift = k.clear_bitmap_shift;
  if (o.plant) migration.bug = o.plant;
  doc.migration = migration;
  if (o.expect) doc.expect = o.expect;

  const header = o.header ?? [`latsim fuzz seed ${o.seed}, ${o.phase} phase`];
  const { name: _name, duration: _duration, ...model } = doc;
  let text: string | null = null;
  return {
    name, doc, duration_ns: durationMs * 1e6, model: JSON.stringify(model),
    get text() {
      return (text ??= `${header.map((l) => (l ? `# ${l}` : '#')).join('\n')}\n${stringify(doc, { lineWidth: 0, flowCollectionPadding: true })}`);
    },
  };
}
