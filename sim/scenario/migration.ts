// The `migration` section: when it starts, the completion policy, where it
// runs (the migration thread, or the 2012 main-loop timer), QEMU's migration
// parameters (max-bandwidth, downtime-limit, the auto-converge throttle, the
// dirty-limit capability's vcpu-dirty-limit and x-vcpu-dirty-limit-period,
// x-clear-bitmap-shift), the link to the destination and whether the
// destination preallocates its RAM (-mem-prealloc), and postcopy (the
// postcopy-ram capability with when migrate-start-postcopy is issued,
// postcopy-preempt, max-postcopy-bandwidth and how soon management recovers a
// paused postcopy). The mode, max-bandwidth and downtime-limit defaults are
// the scenario's QEMU version profile's (qemu.ts); dirty-limit's are QEMU
// 8.1's; the others are QEMU 7.2's. `multifd` (multifd-channels sender
// threads, QEMU 4.0 on, with zero-page-detection from 9.0) and `xbzrle` (the
// page cache, 1.2 on) turn on QEMU's capabilities of those names by being there.
import { section, type Fields, type Raw } from './fields.ts';
import { INSTANT_LIMIT, limit } from './limits.ts';
import { bandwidth, bool, duration, int, list, obj, oneOfWords, size, type Schema } from './schema-kit.ts';
import type { QemuProfile } from './qemu.ts';
import type { VmSpec } from './vm.ts';
import type { FaultSpec } from './faults.ts';

export type MigrationPolicy = 'legacy' | 'flush-timeout' | 'min-interval' | 'abort-on-downtime' | 'auto-converge' | 'dirty-limit';

/** The `postcopy` subsection: its presence turns the postcopy-ram capability on. */
export interface PostcopySpec {
  /** migrate-start-postcopy once this many full passes over RAM are done (dirty-sync-count one more); -1: at start_at_ns. */
  readonly start_after_passes: number;
  /** migrate-start-postcopy at this time of the run; -1: after start_after_passes. */
  readonly start_at_ns: number;
  /** The postcopy-preempt capability (QEMU >= 7.1): requested pages on a channel of their own. */
  readonly preempt: boolean;
  /** max-postcopy-bandwidth (QEMU >= 3.0), bytes/s; 0: unlimited, QEMU's default. */
  readonly max_bandwidth: number;
  /** Management's delay from the link's return to migrate-recover and migrate -r (resume). */
  readonly recover_after_ns: number;
}

/** A link-break fault as the migration sees it: the stream and its return path are cut for a while. */
export interface LinkBreak {
  readonly name: string;
  readonly at_ns: number;
  readonly for_ns: number;
}

export interface MigrationSpec {
  readonly start_ns: number;
  readonly policy: readonly MigrationPolicy[];
  /** thread (QEMU >= 1.3) or main-loop (the 2012 buffered-file timer). */
  readonly mode: 'thread' | 'main-loop';
  readonly max_bandwidth: number;
  readonly downtime_limit_ns: number;
  readonly link: { readonly bandwidth: number; readonly latency_ns: number };
  /**
   * The destination QEMU runs with -mem-prealloc: every page of its RAM is
   * touched before the stream arrives (QEMU: touch_all_pages), so no page
   * costs a first touch and a zero page's check reads memory. Postcopy undoes
   * it (QEMU 7.2: postcopy_ram_incoming_init discards all of RAM at the advise).
   */
  readonly destination_prealloc: boolean;
  readonly max_iterations: number;
  readonly flush_timeout_ns: number;
  readonly min_interval_ns: number;
  readonly abort_downtime_ns: number;
  readonly auto_converge: { readonly initial: number; readonly increment: number; readonly max: number; readonly trigger: number };
  /**
   * QEMU 8.1: the dirty-limit capability's parameters: vcpu-dirty-limit, the
   * quota every vCPU is held to (MB/s), and x-vcpu-dirty-limit-period, how
   * often the dirty-rate calculation thread measures and adjusts.
   */
  readonly dirty_limit: { readonly vcpu_dirty_limit: number; readonly period_ns: number };
  /** QEMU: x-clear-bitmap-shift: a clear_bmap chunk is 2^shift pages (manual dirty-log protection). */
  readonly clear_bitmap_shift: number;
  readonly device_state_bytes: number;
  readonly page_header_bytes: number;
  /**
   * Real mode: how long the source waits for the stream to move (a write to
   * progress, the destination to answer) before it fails the migration and
   * resumes the guest. QEMU itself has no such timeout (it relies on TCP).
   */
  readonly stream_timeout_ns: number;
  /** Postcopy, when the scenario turns it on. */
  readonly postcopy: PostcopySpec | null;
  /** The scenario's link-break faults, in time order. */
  readonly link_breaks: readonly LinkBreak[];
  /** Planted faults for checking the checkers (tests only). */
  readonly bug: MigrationBug;
  /** The multifd capability with its parameters, or null (off). */
  readonly multifd: MultifdSpec | null;
  /** The xbzrle capability with its parameters, or null (off). */
  readonly xbzrle: XbzrleSpec | null;
}

/** QEMU: the zero-page-detection parameter (9.0 on): who finds zero pages, if anyone. */
export type ZeroPageDetection = 'none' | 'legacy' | 'multifd';
export const ZERO_PAGE_DETECTIONS: readonly ZeroPageDetection[] = ['none', 'legacy', 'multifd'];

export interface MultifdSpec {
  /** QEMU: multifd-channels. */
  readonly channels: number;
  /** `legacy`: the migration thread, before it queues a page; `multifd`: each channel, on its packet; `none`: zero pages go as normal pages. */
  readonly zero_page_detection: ZeroPageDetection;
}

export interface XbzrleSpec {
  /** QEMU: xbzrle-cache-size, bytes. */
  readonly cache_size: number;
}

/**
 * Planted faults: the sync drops the log's new bits; the final flush is
 * skipped; get_queued_page sends a requested page the background stream
 * already sent (its not-dirty check left out, so the destination places
 * the page twice).
 */
export const MIGRATION_BUGS = ['none', 'sync-drops-new-bits', 'skip-final-flush', 'resend-queued-page', 'multifd-skips-sync'] as const;
export type MigrationBug = (typeof MIGRATION_BUGS)[number];

const POLICIES: readonly MigrationPolicy[] = ['legacy', 'flush-timeout', 'min-interval', 'abort-on-downtime', 'auto-converge', 'dirty-limit'];

/** QEMU 7.2: MAX_THROTTLE, the max-bandwidth default (migration/migration.c); 32 MiB/s in QEMU 1.x. */
export const DEFAULT_MAX_BANDWIDTH = 128 * 2 ** 20;
/** QEMU 7.2: DEFAULT_MIGRATE_SET_DOWNTIME, 300 ms (migration/migration.c); 30 ms in QEMU 1.x. */
export const DEFAULT_DOWNTIME_LIMIT_NS = 300_000_000;
/** QEMU 7.2: DEFAULT_MIGRATE_CPU_THROTTLE_INITIAL / _INCREMENT, DEFAULT_MIGRATE_MAX_CPU_THROTTLE, DEFAULT_MIGRATE_THROTTLE_TRIGGER_THRESHOLD. */
export const DEFAULT_AUTO_CONVERGE = { initial: 20, increment: 10, max: 99, trigger: 50 } as const;
/** QEMU 8.1: DEFAULT_MIGRATE_VCPU_DIRTY_LIMIT (1 MB/s) and DEFAULT_MIGRATE_VCPU_DIRTY_LIMIT_PERIOD (1000 ms). */
export const DEFAULT_DIRTY_LIMIT = { vcpu_dirty_limit: 1, period_ns: 1_000_000_000 } as const;
/** QEMU: CLEAR_BITMAP_SHIFT_DEFAULT, _MIN and _MAX (migration/migration.h): 1 GiB chunks of 4 KiB pages. */
export const CLEAR_BITMAP_SHIFT_DEFAULT = 18;
const CLEAR_BITMAP_SHIFT_MIN = 6;
const CLEAR_BITMAP_SHIFT_MAX = 31;
/** vcpu-dirty-limit in MB/s: from QEMU's minimum, 1, to 1e6 (beyond the fastest vCPU's 400 GB/s). */
const VCPU_DIRTY_LIMIT_MAX = 1_000_000;

/** QEMU 7.2: DEFAULT_MIGRATE_MULTIFD_CHANNELS (migration/migration.c). */
export const DEFAULT_MULTIFD_CHANNELS = 2;
/** QEMU: multifd-channels is a uint8 in the QAPI schema, and must be at least 1. */
export const MULTIFD_CHANNELS_MAX = 255;
/** QEMU 7.2: DEFAULT_MIGRATE_XBZRLE_CACHE_SIZE, 64 MiB (migration/migration.c). */
export const DEFAULT_XBZRLE_CACHE_SIZE = 64 * 2 ** 20;
/** QEMU: MULTIFD_PACKET_SIZE (migration/multifd.h): the pages of one packet, 512 KiB. */
export const MULTIFD_PACKET_SIZE = 512 * 1024;

/** Real mode's stream timeout when the scenario gives none. */
export const DEFAULT_STREAM_TIMEOUT_NS = 10_000_000_000;

/** Rate limit and link: from 1 Kbit/s to 1 Tbit/s (today's fastest NICs are 800 Gbit/s). */
const BANDWIDTH_LIMIT = limit.bandwidth('1Kbit/s', '1000Gbit/s');
/** QEMU: MAX_MIGRATE_DOWNTIME_SECONDS, 2000 s (migration/options.c), the largest downtime-limit QEMU accepts. */
const DOWNTIME_LIMIT_LIMIT = limit.duration('1ns', '2000s');
const LINK_LATENCY_LIMIT = limit.duration('0s', '10s');
const TIMEOUT_LIMIT = limit.duration('1ns', '1h');
/** QEMU 8.1: x-vcpu-dirty-limit-period must be 1 to 1000 ms. */
const DIRTY_LIMIT_PERIOD_LIMIT = limit.duration('1ms', '1000ms');
const INTERVAL_LIMIT = limit.duration('0s', '1h');
/** Device state: up to 64 GiB (a VFIO GPU's state is gigabytes; a small VM's a few hundred KiB). */
const DEVICE_STATE_LIMIT = limit.size('0B', '64GiB');
const PAGE_HEADER_LIMIT = limit.size('0B', '64KiB');
/** The XBZRLE cache: a page to guest-memory sized (a larger one holds no more pages). */
const XBZRLE_CACHE_LIMIT = limit.size('1B', '4TiB');
/** Passes before migrate-start-postcopy: 0 (at once) to 1000. */
const POSTCOPY_PASSES_MAX = 1000;
/** Management's reaction to a recovered link: up to a day. */
const RECOVER_LIMIT = limit.duration('0s', '24h');
const POSTCOPY_BANDWIDTH_LIMIT = limit.bandwidth('1Kbit/s', '1000Gbit/s', 'unlimited');

/** QEMU 3.0-9.2: max-postcopy-bandwidth 0, the background stream unlimited. */
export const DEFAULT_MAX_POSTCOPY_BANDWIDTH = 0;
/** Management's reaction time to a link that came back (QEMU has no automatic recovery). */
export const DEFAULT_RECOVER_AFTER_NS = 1_000_000_000;

function postcopySchema(): Schema {
  return obj({
    start_after_passes: int(0, POSTCOPY_PASSES_MAX, 'issue migrate-start-postcopy once this many full passes over RAM are done (dirty-sync-count is one more); 0: at once'),
    start_at: duration('issue migrate-start-postcopy at this time of the run (at or after migration.start)', INSTANT_LIMIT),
    preempt: { type: 'boolean', 'x-expected': 'true or false', description: 'the postcopy-preempt capability (QEMU >= 7.1): requested pages on a channel of their own (default false)' },
    max_bandwidth: bandwidth('max-postcopy-bandwidth: the background stream\'s rate limit in postcopy (default 0: unlimited, QEMU >= 3.0)', POSTCOPY_BANDWIDTH_LIMIT),
    recover_after: duration('after a link-break ends, management issues migrate-recover and migrate -r (resume) this much later (default 1s)', RECOVER_LIMIT),
  }, 'postcopy (the postcopy-ram capability, QEMU >= 2.5): give start_after_passes or start_at');
}

export function migrationSchema(): Schema {
  return obj({
    start: duration('when migration starts', INSTANT_LIMIT),
    policy: {
      oneOf: [oneOfWords(POLICIES, 'policy'), list(oneOfWords(POLICIES, 'policy'), 'policies', POLICIES.length, 'policies')],
      'x-expected': `one of ${POLICIES.join(', ')}, or a list of them`,
      description: 'completion policy: one, or a non-empty list of different ones',
    },
    mode: oneOfWords(['thread', 'main-loop'], 'migration thread (QEMU >= 1.3) or main-loop timer (2012); default: the QEMU version\'s'),
    max_bandwidth: bandwidth('rate limit (default: the QEMU version\'s, 128MiB/s in 7.2, 32MiB/s in 1.1)', BANDWIDTH_LIMIT),
    downtime_limit: duration('downtime-limit (default: the QEMU version\'s, 300ms in 7.2, 30ms in 1.1; QEMU accepts up to 2000s)', DOWNTIME_LIMIT_LIMIT),
    link: obj({
      bandwidth: bandwidth('link bandwidth', BANDWIDTH_LIMIT),
      latency: duration('one-way latency', LINK_LATENCY_LIMIT),
    }, 'the link to the destination'),
    destination_prealloc: bool('the destination QEMU runs with -mem-prealloc: its RAM is all touched before the stream arrives, so no page costs qemu.host.dest_first_touch and a zero page costs dest_zero_page (default false: its RAM faults in as pages arrive; postcopy discards it at the advise, QEMU 7.2)'),
    max_iterations: int(0, 1_000_000, 'complete after this many dirty syncs regardless (0: no cap)'),
    flush_timeout: duration('flush-timeout policy: give up the completion after this', TIMEOUT_LIMIT),
    min_interval: duration('min-interval policy: no completion attempt this soon after a rollback', INTERVAL_LIMIT),
    abort_downtime: duration('abort-on-downtime policy: fail and resume the source past this downtime', TIMEOUT_LIMIT),
    auto_converge: obj({
      initial: int(1, 99, 'cpu-throttle-initial'),
      increment: int(1, 99, 'cpu-throttle-increment'),
      max: int(1, 99, 'max-cpu-throttle'),
      trigger: int(1, 100, 'throttle-trigger-threshold (percent)'),
    }, 'auto-converge parameters'),
    dirty_limit: obj({
      vcpu_dirty_limit: int(1, VCPU_DIRTY_LIMIT_MAX, 'vcpu-dirty-limit: the dirty rate (MB/s) each vCPU is held to (default 1, QEMU 8.1)'),
      period: duration('x-vcpu-dirty-limit-period: how often the dirty rate is measured and the throttle adjusted (default 1000ms)', DIRTY_LIMIT_PERIOD_LIMIT),
    }, 'dirty-limit policy parameters (the dirty-limit capability, QEMU 8.1)'),
    clear_bitmap_shift: int(CLEAR_BITMAP_SHIFT_MIN, CLEAR_BITMAP_SHIFT_MAX, 'x-clear-bitmap-shift: with vm.manual_dirty_log_protect the log is cleared in chunks of 2^shift pages (default 18)'),
    device_state: size('device state sent during downtime', DEVICE_STATE_LIMIT),
    page_header: size('bytes of header per page', PAGE_HEADER_LIMIT),
    stream_timeout: duration('real mode: fail the migration when the stream does not move for this long (default 10s)', TIMEOUT_LIMIT),
    postcopy: postcopySchema(),
    bug: oneOfWords(MIGRATION_BUGS, 'planted fault, to check the checkers'),
    multifd: obj({
      channels: int(1, MULTIFD_CHANNELS_MAX, `multifd-channels: sender threads, each with its own stream (default ${DEFAULT_MULTIFD_CHANNELS})`),
      zero_page_detection: oneOfWords(ZERO_PAGE_DETECTIONS,
        'zero-page-detection (QEMU 9.0 on; default multifd there): who finds zero pages; before 9.0 only legacy, the migration thread'),
    }, 'the multifd capability (QEMU 4.0 on): pages go in 512 KiB packets over multifd-channels streams'),
    xbzrle: obj({
      cache_size: size('xbzrle-cache-size: a power of two, at least a page (default 64MiB)', XBZRLE_CACHE_LIMIT),
    }, 'the xbzrle capability (QEMU 1.2 on): pages sent before are sent as their XBZRLE-encoded difference from a cached copy (not under multifd, whose pages bypass it, as in QEMU)'),
  }, 'live migration');
}

export function checkMigration(m: Raw, durationNs: number, profile: QemuProfile, vm: VmSpec, faults: readonly FaultSpec[], f: Fields): MigrationSpec {
  const start = f.duration(['migration', 'start'], m.start, 1_000_000_000, INSTANT_LIMIT);
  if (start >= durationNs) f.fail(['migration', 'start'], 'migration starts at or after the end of the run');
  const link = section(m, 'link');
  const ac = section(m, 'auto_converge');
  const dl = section(m, 'dirty_limit');
  const policy = (m.policy === undefined ? ['legacy'] : Array.isArray(m.policy) ? m.policy : [m.policy]) as MigrationPolicy[];
  if (policy.length === 0) f.fail(['migration', 'policy'], `an empty policy list: give one of ${POLICIES.join(', ')}, or a list of them`);
  f.distinct(['migration', 'policy'], policy, 'policy');
  if (policy.includes('legacy') && policy.length > 1) f.fail(['migration', 'policy'], 'legacy cannot be combined with other policies');
  if (policy.includes('min-interval') && !policy.includes('flush-timeout')) {
    f.fail(['migration', 'policy'], 'min-interval acts after a rollback: combine it with flush-timeout');
  }
  if (policy.includes('auto-converge') && !profile.auto_converge) {
    f.fail(['migration', 'policy'], `auto-converge came with QEMU 1.6; this scenario follows QEMU ${profile.version}`);
  }
  const mode = (m.mode as 'thread' | 'main-loop' | undefined) ?? profile.mode;
  const multifd = m.multifd === undefined ? null : checkMultifd(section(m, 'multifd'), mode, profile, vm, f);
  const xbzrle = m.xbzrle === undefined ? null : checkXbzrle(section(m, 'xbzrle'), profile, vm, f);
  if (policy.includes('dirty-limit')) {
    if (!profile.dirty_limit) f.fail(['migration', 'policy'], `the dirty-limit capability came with QEMU 8.1; this scenario follows QEMU ${profile.version}`);
    // QEMU: migrate_caps_check refuses both, and refuses dirty-limit without the ring.
    if (policy.includes('auto-converge')) f.fail(['migration', 'policy'], 'dirty-limit conflicts with auto-converge: QEMU takes one of them');
    if (vm.dirty_ring_size === 0) {
      f.fail(['migration', 'policy'], 'dirty-limit needs the KVM dirty ring: set vm.dirty_ring_size (QEMU: -accel kvm,dirty-ring-size=)');
    }
  }
  const acInitial = (ac.initial as number | undefined) ?? DEFAULT_AUTO_CONVERGE.initial;
  const acMax = (ac.max as number | undefined) ?? DEFAULT_AUTO_CONVERGE.max;
  if (acInitial > acMax) f.fail(['migration', 'auto_converge', 'initial'], 'initial throttle above max');
  const postcopy = m.postcopy === undefined ? null : checkPostcopy(section(m, 'postcopy'), start, durationNs, mode, profile, f);
  // QEMU 7.2-9.2 migrate_caps_check: "Postcopy is not yet compatible with multifd".
  if (postcopy && multifd) f.fail(['migration', 'postcopy'], 'postcopy is not compatible with multifd in QEMU (migrate_caps_check): give one of them', true);
  const linkBreaks = faults.filter((x) => x.kind === 'link-break').map((x) => ({ name: x.name, at_ns: x.at_ns, for_ns: x.for_ns }))
    .sort((a, b) => a.at_ns - b.at_ns);
  return {
    start_ns: start,
    policy,
    mode,
    max_bandwidth: f.bandwidth(['migration', 'max_bandwidth'], m.max_bandwidth, profile.max_bandwidth, BANDWIDTH_LIMIT),
    downtime_limit_ns: f.duration(['migration', 'downtime_limit'], m.downtime_limit, profile.downtime_limit_ns, DOWNTIME_LIMIT_LIMIT),
    link: {
      bandwidth: f.bandwidth(['migration', 'link', 'bandwidth'], link.bandwidth, 10e9 / 8, BANDWIDTH_LIMIT),
      latency_ns: f.duration(['migration', 'link', 'latency'], link.latency, 100_000, LINK_LATENCY_LIMIT),
    },
    destination_prealloc: (m.destination_prealloc as boolean | undefined) ?? false,
    max_iterations: (m.max_iterations as number | undefined) ?? 0,
    flush_timeout_ns: f.duration(['migration', 'flush_timeout'], m.flush_timeout, 1_000_000_000, TIMEOUT_LIMIT),
    min_interval_ns: f.duration(['migration', 'min_interval'], m.min_interval, 5_000_000_000, INTERVAL_LIMIT),
    abort_downtime_ns: f.duration(['migration', 'abort_downtime'], m.abort_downtime, 2_000_000_000, TIMEOUT_LIMIT),
    auto_converge: {
      initial: acInitial,
      increment: (ac.increment as number | undefined) ?? DEFAULT_AUTO_CONVERGE.increment,
      max: acMax,
      trigger: (ac.trigger as number | undefined) ?? DEFAULT_AUTO_CONVERGE.trigger,
    },
    dirty_limit: {
      vcpu_dirty_limit: (dl.vcpu_dirty_limit as number | undefined) ?? DEFAULT_DIRTY_LIMIT.vcpu_dirty_limit,
      period_ns: f.duration(['migration', 'dirty_limit', 'period'], dl.period, DEFAULT_DIRTY_LIMIT.period_ns, DIRTY_LIMIT_PERIOD_LIMIT),
    },
    clear_bitmap_shift: (m.clear_bitmap_shift as number | undefined) ?? CLEAR_BITMAP_SHIFT_DEFAULT,
    // QEMU's device state (vmstate of every device) of a small VM is a few hundred KiB.
    device_state_bytes: f.size(['migration', 'device_state'], m.device_state, 512 * 1024, DEVICE_STATE_LIMIT),
    // QEMU: the be64 page address with its RAM_SAVE_FLAG_* bits, before each page.
    page_header_bytes: f.size(['migration', 'page_header'], m.page_header, 8, PAGE_HEADER_LIMIT),
    stream_timeout_ns: f.duration(['migration', 'stream_timeout'], m.stream_timeout, DEFAULT_STREAM_TIMEOUT_NS, TIMEOUT_LIMIT),
    multifd,
    xbzrle,
    postcopy,
    link_breaks: linkBreaks,
    bug: (m.bug as MigrationBug | undefined) ?? 'none',
  };
}

/** The postcopy subsection: when migrate-start-postcopy comes, and what the QEMU version offers. */
function checkPostcopy(pc: Raw, startNs: number, durationNs: number, mode: string, profile: QemuProfile, f: Fields): PostcopySpec {
  const at = ['migration', 'postcopy'];
  if (!profile.postcopy) f.fail(at, `postcopy-ram came with QEMU 2.5; this scenario follows QEMU ${profile.version}`, true);
  if (mode !== 'thread') f.fail(at, 'postcopy runs from the migration thread: it needs mode thread', true);
  if ((pc.start_after_passes === undefined) === (pc.start_at === undefined)) {
    f.fail(at, 'give one of start_after_passes and start_at: when migrate-start-postcopy is issued', true);
  }
  let startAt = -1;
  if (pc.start_at !== undefined) {
    startAt = f.duration([...at, 'start_at'], pc.start_at, 0, INSTANT_LIMIT);
    if (startAt < startNs) f.fail([...at, 'start_at'], 'migrate-start-postcopy before the migration starts (QEMU refuses it)');
    if (startAt >= durationNs) f.fail([...at, 'start_at'], 'migrate-start-postcopy at or after the end of the run');
  }
  const preempt = (pc.preempt as boolean | undefined) ?? false;
  if (preempt && !profile.postcopy_preempt) {
    f.fail([...at, 'preempt'], `postcopy-preempt came with QEMU 7.1; this scenario follows QEMU ${profile.version}`);
  }
  return {
    start_after_passes: (pc.start_after_passes as number | undefined) ?? -1,
    start_at_ns: startAt,
    preempt,
    max_bandwidth: f.bandwidth([...at, 'max_bandwidth'], pc.max_bandwidth, DEFAULT_MAX_POSTCOPY_BANDWIDTH, POSTCOPY_BANDWIDTH_LIMIT),
    recover_after_ns: f.duration([...at, 'recover_after'], pc.recover_after, DEFAULT_RECOVER_AFTER_NS, RECOVER_LIMIT),
  };
}

function checkMultifd(mf: Raw, mode: MigrationSpec['mode'], profile: QemuProfile, vm: VmSpec, f: Fields): MultifdSpec {
  const at = ['migration', 'multifd'];
  if (!profile.multifd) f.fail(at, `multifd came with QEMU 4.0; this scenario follows QEMU ${profile.version}`);
  if (mode !== 'thread') f.fail(at, 'multifd channels are fed by the migration thread: it needs mode thread');
  if (vm.page_size > MULTIFD_PACKET_SIZE) f.fail(at, `a multifd packet holds 512 KiB of pages; the page size is larger (${vm.page_size} bytes)`);
  const zpd = mf.zero_page_detection as ZeroPageDetection | undefined;
  if (zpd !== undefined && zpd !== 'legacy' && !profile.zero_page_detection) {
    f.fail([...at, 'zero_page_detection'],
      `zero-page-detection ${zpd} came with QEMU 9.0; QEMU ${profile.version} finds zero pages on the migration thread (legacy)`);
  }
  return {
    channels: (mf.channels as number | undefined) ?? DEFAULT_MULTIFD_CHANNELS,
    zero_page_detection: zpd ?? (profile.zero_page_detection ? 'multifd' : 'legacy'),
  };
}

function checkXbzrle(x: Raw, profile: QemuProfile, vm: VmSpec, f: Fields): XbzrleSpec {
  const at = ['migration', 'xbzrle'];
  if (!profile.xbzrle) f.fail(at, `xbzrle came with QEMU 1.2; this scenario follows QEMU ${profile.version}`);
  const cacheSize = f.size([...at, 'cache_size'], x.cache_size, DEFAULT_XBZRLE_CACHE_SIZE, XBZRLE_CACHE_LIMIT);
  // QEMU: migrate_params_check: a power of two no less than the target page size.
  if (cacheSize < vm.page_size || !Number.isInteger(Math.log2(cacheSize))) {
    f.fail([...at, 'cache_size'], `${String(x.cache_size ?? cacheSize)} is not a power of two no less than the page size (${vm.page_size} bytes)`);
  }
  return { cache_size: cacheSize };
}
