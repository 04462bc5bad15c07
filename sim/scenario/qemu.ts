// The `qemu` section: which QEMU the scenario's behaviour follows (a version
// profile), and the costs of the host that QEMU runs on (what `latsim qemu
// calibrate` measures: scanning a page for zeroes, sending a page, syncing the
// dirty log or reaping the dirty ring, the destination's first touch of a
// page, its load of a page and its check of a zero page it holds, the
// guest's fastest dirtying). A profile chooses the defaults and the behaviours that changed
// over QEMU's history; docs/fidelity.md has the same table in words.
// Leaves out: versions between the profiles (a scenario names the nearest).
import type { Fields, Raw } from './fields.ts';
import { bandwidth, duration, int, obj, rate, type Schema } from './schema-kit.ts';
import { limit } from './limits.ts';

/** The modelled QEMU versions, oldest first. */
export const QEMU_VERSIONS = ['1.1', '2.12', '5.2', '7.2', '9.2'] as const;
export type QemuVersion = (typeof QEMU_VERSIONS)[number];
/** The newest modelled version: the default. */
export const QEMU_VERSION_DEFAULT: QemuVersion = '9.2';

/** What a version does, where QEMU changed over time. */
export interface QemuProfile {
  readonly version: QemuVersion;
  /** migrate_fd_put_ready on the buffered file's 100 ms main-loop timer (< 1.3), or the migration thread. */
  readonly mode: 'main-loop' | 'thread';
  /** MAX_THROTTLE: the max-bandwidth default, bytes/s. */
  readonly max_bandwidth: number;
  /** DEFAULT_MIGRATE_SET_DOWNTIME, ns. */
  readonly downtime_limit_ns: number;
  /**
   * How precopy decides to complete. `expected-time` (1.1's ram_save_live):
   * the log is synced on every call and the migration completes when
   * remaining / (bandwidth of this call) <= downtime-limit. `threshold`
   * (1.3 on): sync when remaining < threshold_size, complete when nothing is
   * pending or pending < threshold_size.
   */
  readonly convergence: 'expected-time' | 'threshold';
  /** When the `device` status is entered: at the completion decision (the talk's proposal), never (only with pause-before-switchover, not modelled), or after the VM stopped. */
  readonly device_status: 'at-completion' | 'never' | 'after-stop';
  /** cpu_throttle_dirty_sync_timer: a bitmap sync at least every 5 s while auto-converge runs (9.2). */
  readonly periodic_sync: boolean;
  /** Auto-converge exists (1.6 on; its cpu-throttle-* parameters from 2.5). */
  readonly auto_converge: boolean;
  /** bdrv_co_flush skips a node with nothing written since its last flush (write_gen, 2.7 on). */
  readonly flush_skips_clean: boolean;
  /** The buffered file writes to a non-blocking socket: the main loop pays the copy, not the wire (1.1). */
  readonly nonblocking_socket: boolean;
  /** XBZRLE page encoding exists (the `xbzrle` capability, 1.2 on). */
  readonly xbzrle: boolean;
  /** The `multifd` capability exists (4.0 on; x-multifd before). */
  readonly multifd: boolean;
  /**
   * When the migration thread syncs with the multifd channels
   * (multifd_send_sync_main): at the end of every ram_save_iterate
   * (`per-section`, up to 7.2), or when the scan of the dirty bitmap wraps
   * (`per-round`, 8.0 on: multifd-flush-after-each-section off), and in both
   * at setup and at ram_save_complete.
   */
  readonly multifd_sync: 'per-section' | 'per-round';
  /** The zero-page-detection parameter exists, zero pages found by the channels by default (9.0 on). */
  readonly zero_page_detection: boolean;
  /** The postcopy-ram capability and migrate-start-postcopy (2.5 on). */
  readonly postcopy: boolean;
  /** A broken postcopy stream pauses (postcopy-paused) and migrate-recover resumes it (3.0 on); before, the migration fails. */
  readonly postcopy_recover: boolean;
  /** The postcopy-preempt capability (7.1 on). */
  readonly postcopy_preempt: boolean;
  /**
   * With postcopy-preempt the return-path thread itself sends a requested
   * page on the preempt channel (8.0 on); in 7.1-7.2 the migration thread
   * does, between the host pages of its background stream.
   */
  readonly postcopy_urgent_from_return_path: boolean;
  /**
   * What protects the block layer off the main loop. `bql`: no IOThreads
   * (-object iothread arrived in 2.0); everything runs under the BQL.
   * `aio-context` (2.0 to 8.1): each AioContext has a recursive lock that the
   * IOThread's handlers (virtio_blk_handle_vq, the linux-aio completion) and
   * any BQL holder reaching into the context (the drain, the dataplane stop)
   * take, dropped only inside AIO_WAIT_WHILE's aio_poll; a drained section
   * disables every external handler of the node's context
   * (aio_disable_external). `graph` (8.2 on): the AioContext lock is gone, the
   * graph lock (8.0) guards the node graph (requests read it; no modelled
   * path writes it during a drain), AIO_WAIT_WHILE_UNLOCKED polls, and a
   * drained section asks the device to detach its own host notifiers
   * (BlockDevOps.drained_begin).
   */
  readonly block_locking: 'bql' | 'aio-context' | 'graph';
  /** KVM_CLEAR_DIRTY_LOG with manual protection and migration's clear_bmap (4.1 on). */
  readonly manual_dirty_log: boolean;
  /** The KVM dirty ring, `-accel kvm,dirty-ring-size=` (6.1 on). */
  readonly dirty_ring: boolean;
  /** The `dirty-limit` migration capability with vcpu-dirty-limit and x-vcpu-dirty-limit-period (8.1 on). */
  readonly dirty_limit: boolean;
}

const MiB = 2 ** 20;

/** The profiles, one per modelled version. */
export const QEMU_PROFILES: Readonly<Record<QemuVersion, QemuProfile>> = {
  '1.1': {
    version: '1.1', mode: 'main-loop', max_bandwidth: 32 * MiB, downtime_limit_ns: 30_000_000,
    convergence: 'expected-time', device_status: 'at-completion', periodic_sync: false, auto_converge: false,
    flush_skips_clean: false, nonblocking_socket: true, block_locking: 'bql',
    xbzrle: false, multifd: false, multifd_sync: 'per-section', zero_page_detection: false,
    postcopy: false, postcopy_recover: false, postcopy_preempt: false, postcopy_urgent_from_return_path: false,
    manual_dirty_log: false, dirty_ring: false, dirty_limit: false,
  },
  '2.12': {
    version: '2.12', mode: 'thread', max_bandwidth: 32 * MiB, downtime_limit_ns: 300_000_000,
    convergence: 'threshold', device_status: 'never', periodic_sync: false, auto_converge: true,
    flush_skips_clean: true, nonblocking_socket: false, block_locking: 'aio-context',
    xbzrle: true, multifd: false, multifd_sync: 'per-section', zero_page_detection: false,
    postcopy: true, postcopy_recover: false, postcopy_preempt: false, postcopy_urgent_from_return_path: false,
    manual_dirty_log: false, dirty_ring: false, dirty_limit: false,
  },
  '5.2': {
    version: '5.2', mode: 'thread', max_bandwidth: 128 * MiB, downtime_limit_ns: 300_000_000,
    convergence: 'threshold', device_status: 'never', periodic_sync: false, auto_converge: true,
    flush_skips_clean: true, nonblocking_socket: false, block_locking: 'aio-context',
    xbzrle: true, multifd: true, multifd_sync: 'per-section', zero_page_detection: false,
    postcopy: true, postcopy_recover: true, postcopy_preempt: false, postcopy_urgent_from_return_path: false,
    manual_dirty_log: true, dirty_ring: false, dirty_limit: false,
  },
  '7.2': {
    version: '7.2', mode: 'thread', max_bandwidth: 128 * MiB, downtime_limit_ns: 300_000_000,
    convergence: 'threshold', device_status: 'never', periodic_sync: false, auto_converge: true,
    flush_skips_clean: true, nonblocking_socket: false, block_locking: 'aio-context',
    xbzrle: true, multifd: true, multifd_sync: 'per-section', zero_page_detection: false,
    postcopy: true, postcopy_recover: true, postcopy_preempt: true, postcopy_urgent_from_return_path: false,
    manual_dirty_log: true, dirty_ring: true, dirty_limit: false,
  },
  '9.2': {
    version: '9.2', mode: 'thread', max_bandwidth: 128 * MiB, downtime_limit_ns: 300_000_000,
    convergence: 'threshold', device_status: 'never', periodic_sync: true, auto_converge: true,
    flush_skips_clean: true, nonblocking_socket: false, block_locking: 'graph',
    xbzrle: true, multifd: true, multifd_sync: 'per-round', zero_page_detection: true,
    postcopy: true, postcopy_recover: true, postcopy_preempt: true, postcopy_urgent_from_return_path: true,
    manual_dirty_log: true, dirty_ring: true, dirty_limit: true,
  },
};

/** Host costs that QEMU pays per page and per sync (`latsim qemu calibrate` measures them). */
export interface HostCosts {
  /** buffer_is_zero over a zero page on the migration thread (save_zero_page), or on a multifd channel (9.0's multifd_send_zero_page_detect). */
  readonly zero_page_scan_ns: number;
  /** Copying a normal page into the stream (ram_save_page -> qemu_put_buffer; multifd: the channel thread's writev). */
  readonly page_send_ns: number;
  /** KVM_GET_DIRTY_LOG + KVM_CLEAR_DIRTY_LOG under the BQL, per GiB of guest memory. */
  readonly dirty_sync_ns_per_gib: number;
  /**
   * With manual protection (vm.manual_dirty_log_protect): KVM_GET_DIRTY_LOG
   * alone, a copy of the bitmap, under the BQL, per GiB of guest memory.
   */
  readonly dirty_log_get_ns_per_gib: number;
  /**
   * With manual protection: KVM_CLEAR_DIRTY_LOG of one clear_bmap chunk
   * (clearing its bits, write-protecting its pages), on the migration thread
   * without the BQL, per GiB of the chunk.
   */
  readonly dirty_log_clear_ns_per_gib: number;
  /**
   * The dirty ring: collecting one entry (kvm_dirty_ring_reap_one) and its
   * page's re-protection by KVM_RESET_DIRTY_RINGS, under the BQL.
   */
  readonly dirty_ring_reap_ns: number;
  /** The destination's first write to a page it never touched (fault and zeroing), per page. */
  readonly dest_first_touch_ns: number;
  /** The destination's load of a page it already has (ram_load's copy). */
  readonly dest_page_ns: number;
  /**
   * The destination's check of a zero page it holds in memory (QEMU 7.2:
   * ram_load_precopy -> ram_handle_compressed, whose buffer_is_zero reads
   * the page; preallocated or written before, that is 4 KiB of RAM). A page
   * it never touched reads the kernel's shared zero page instead, as the
   * source's scan of an idle guest does: zero_page_scan.
   */
  readonly dest_zero_page_ns: number;
  /** vm_stop and the device state's save and load: the downtime with nothing to send. */
  readonly downtime_floor_ns: number;
  /**
   * The set-up phase (status setup to active) besides its bitmap sync (QEMU
   * 7.2: qmp_migrate's connect, migrate_fd_connect starting the migration
   * thread, qemu_savevm_state_header, ram_save_setup's bitmaps,
   * memory_global_dirty_log_start and the RAM block list). The model spends
   * it before the sync. In total-time and setup-time.
   */
  readonly migration_setup_ns: number;
  /**
   * The fastest a vCPU of this guest dirties pages, per second. A workload
   * paced below it (a timer-paced guest) catches up after a throttle sleep, so
   * auto-converge cuts its rate less than in proportion; 0: each workload's
   * own rate (a CPU-bound guest, cut in proportion).
   */
  readonly guest_dirty_rate_max: number;
  /** Loopback TCP throughput (the calibrated link), bytes/s; 0: not measured. */
  readonly loopback: number;
  /**
   * XBZRLE-encoding a page against its cached copy on the migration thread
   * (xbzrle_encode_buffer's compare and the copies into the cache and the
   * encode buffer). Not calibrated: `latsim qemu calibrate` leaves the default.
   */
  readonly xbzrle_encode_ns: number;
  /** Host cores the multifd channel threads share; 0: one core each (as every other thread of the model). */
  readonly migration_cores: number;
  /**
   * The host's CPUs, shared by the source's vCPUs, its migration thread and
   * the destination QEMU (latsim qemu runs both on one host). While the VM
   * runs each vCPU holds one (the model's vCPUs never halt, as latsim's
   * QEMU guest payload spins between its ticks); when at most one is left,
   * the migration thread's page work and the destination's loading take
   * turns on it. 0: as many as they need (every thread its own core).
   */
  readonly cores: number;
}

export interface QemuSpec {
  readonly profile: QemuProfile;
  readonly host: HostCosts;
}

/**
 * Host costs when a scenario gives none: a current x86-64 server on bare
 * metal (buffer_is_zero with AVX2 over 4 KiB, a 4 KiB copy, a page fault that
 * zeroes a page); a vCPU's dirty rate has no ceiling. The fidelity suite
 * includes the costs `latsim qemu calibrate` measured on its own host
 * instead (under this machine kind's KVM each is several times larger).
 */
export const HOST_COSTS_DEFAULT: HostCosts = {
  zero_page_scan_ns: 100, page_send_ns: 300, dirty_sync_ns_per_gib: 500_000, dest_first_touch_ns: 1_000,
  dest_page_ns: 300, downtime_floor_ns: 2_000_000, guest_dirty_rate_max: 0, loopback: 0,
  // The set-up's own time is its sync's unless the host says (calibrated: milliseconds under KVM).
  migration_setup_ns: 0,
  // buffer_is_zero over a page in RAM: 4 KiB read at some 20 GB/s.
  dest_zero_page_ns: 200,
  xbzrle_encode_ns: 800, migration_cores: 0, cores: 0,
  // The same 500 us per GiB as dirty_sync_per_gib, split: the copy is a tenth, write-protecting the rest.
  dirty_log_get_ns_per_gib: 50_000, dirty_log_clear_ns_per_gib: 450_000,
  // An entry: a few loads and stores in QEMU, an rmap walk and a write-protect in KVM.
  dirty_ring_reap_ns: 150,
};

/** No modelled cost at all: a real backend pays its host's costs for real. */
export const HOST_COSTS_NONE: HostCosts = {
  zero_page_scan_ns: 0, page_send_ns: 0, dirty_sync_ns_per_gib: 0, dest_first_touch_ns: 0, dest_page_ns: 0,
  dest_zero_page_ns: 0, downtime_floor_ns: 0, guest_dirty_rate_max: 0, loopback: 0, xbzrle_encode_ns: 0, migration_cores: 0, cores: 0,
  migration_setup_ns: 0, dirty_log_get_ns_per_gib: 0, dirty_log_clear_ns_per_gib: 0, dirty_ring_reap_ns: 0,
};

/** A per-page or per-sync cost: up to a second (under emulation a page fault can take tens of us). */
const PAGE_COST_LIMIT = limit.duration('0s', '1s');
const SYNC_COST_LIMIT = limit.duration('0s', '10s');
const FLOOR_LIMIT = limit.duration('0s', '10s');
const GUEST_RATE_LIMIT = limit.rate('0/s', '1e8/s');
const LOOPBACK_LIMIT = limit.bandwidth('0bit/s', '1000Gbit/s');
/** Cores for the channel threads: as many as multifd-channels can ask for. */
const MIGRATION_CORES_MAX = 255;
/** The host's CPUs: up to 4096 (Linux's NR_CPUS on large x86-64 builds is 8192; hosts that size are rare). */
const HOST_CORES_MAX = 4096;

export function qemuSchema(): Schema {
  return obj({
    version: {
      enum: [...QEMU_VERSIONS, ...QEMU_VERSIONS.map(Number)],
      'x-expected': `one of ${QEMU_VERSIONS.join(', ')}`,
      description: `the QEMU version whose defaults and behaviours to follow (default ${QEMU_VERSION_DEFAULT}, the newest modelled)`,
    },
    host: obj({
      zero_page_scan: duration('migration thread time to find a page is all zeroes (multifd with zero-page-detection multifd: the channel thread\'s)', PAGE_COST_LIMIT),
      page_send: duration('migration thread time to copy a normal page into the stream (multifd: the channel thread\'s writev)', PAGE_COST_LIMIT),
      dirty_sync_per_gib: duration('KVM_GET_DIRTY_LOG + KVM_CLEAR_DIRTY_LOG time per GiB of guest memory, under the BQL', SYNC_COST_LIMIT),
      dirty_log_get_per_gib: duration('with vm.manual_dirty_log_protect: KVM_GET_DIRTY_LOG alone per GiB of guest memory, under the BQL (default 50us)', SYNC_COST_LIMIT),
      dirty_log_clear_per_gib: duration('with vm.manual_dirty_log_protect: KVM_CLEAR_DIRTY_LOG per GiB of a clear_bmap chunk, on the migration thread (default 450us)', SYNC_COST_LIMIT),
      dirty_ring_reap: duration('with vm.dirty_ring_size: collecting one dirty-ring entry and re-protecting its page, under the BQL (default 150ns)', PAGE_COST_LIMIT),
      dest_first_touch: duration('destination time to receive a page into memory it never touched', PAGE_COST_LIMIT),
      dest_page: duration('destination time to receive a page it already has', PAGE_COST_LIMIT),
      dest_zero_page: duration('destination time to check a zero page it holds in memory (preallocated, or written before): QEMU 7.2 ram_handle_compressed reads it with buffer_is_zero; a page it never touched costs zero_page_scan (default 200ns)', PAGE_COST_LIMIT),
      downtime_floor: duration('vm_stop and device state save/load: the downtime with nothing to send', FLOOR_LIMIT),
      migration_setup: duration('the set-up phase besides its bitmap sync: connecting, the migration thread\'s start, ram_save_setup\'s dirty-log start (QEMU 7.2; default 0s)', FLOOR_LIMIT),
      guest_dirty_rate_max: rate('the fastest a vCPU dirties pages; a workload paced below it catches up after throttling (default: CPU-bound)', GUEST_RATE_LIMIT),
      loopback: bandwidth('measured loopback TCP throughput', LOOPBACK_LIMIT),
      xbzrle_encode: duration('migration thread time to XBZRLE-encode a page against its cached copy (default 800ns)', PAGE_COST_LIMIT),
      migration_cores: int(0, MIGRATION_CORES_MAX, 'host cores the multifd channel threads share (default 0: one core each)'),
      cores: int(0, HOST_CORES_MAX, 'the host\'s CPUs, shared by the running vCPUs (one each), the migration thread and the destination QEMU: with at most one left over, the migration thread\'s page work and the destination\'s loading take turns (default 0: a core for every thread)'),
    }, 'costs of the host QEMU runs on (latsim qemu calibrate writes them)'),
  }, 'the QEMU this scenario follows');
}

export function checkQemu(q: Raw, f: Fields): QemuSpec {
  // A YAML 7.2 is a number; the profiles are named by the same text.
  const version = (q.version === undefined ? QEMU_VERSION_DEFAULT : String(q.version)) as QemuVersion;
  const h = (q.host ?? {}) as Raw;
  const d = HOST_COSTS_DEFAULT;
  const at = (k: string) => ['qemu', 'host', k];
  return {
    profile: QEMU_PROFILES[version],
    host: {
      zero_page_scan_ns: f.duration(at('zero_page_scan'), h.zero_page_scan, d.zero_page_scan_ns, PAGE_COST_LIMIT),
      page_send_ns: f.duration(at('page_send'), h.page_send, d.page_send_ns, PAGE_COST_LIMIT),
      dirty_sync_ns_per_gib: f.duration(at('dirty_sync_per_gib'), h.dirty_sync_per_gib, d.dirty_sync_ns_per_gib, SYNC_COST_LIMIT),
      dirty_log_get_ns_per_gib: f.duration(at('dirty_log_get_per_gib'), h.dirty_log_get_per_gib, d.dirty_log_get_ns_per_gib, SYNC_COST_LIMIT),
      dirty_log_clear_ns_per_gib: f.duration(at('dirty_log_clear_per_gib'), h.dirty_log_clear_per_gib, d.dirty_log_clear_ns_per_gib, SYNC_COST_LIMIT),
      dirty_ring_reap_ns: f.duration(at('dirty_ring_reap'), h.dirty_ring_reap, d.dirty_ring_reap_ns, PAGE_COST_LIMIT),
      dest_first_touch_ns: f.duration(at('dest_first_touch'), h.dest_first_touch, d.dest_first_touch_ns, PAGE_COST_LIMIT),
      dest_page_ns: f.duration(at('dest_page'), h.dest_page, d.dest_page_ns, PAGE_COST_LIMIT),
      dest_zero_page_ns: f.duration(at('dest_zero_page'), h.dest_zero_page, d.dest_zero_page_ns, PAGE_COST_LIMIT),
      downtime_floor_ns: f.duration(at('downtime_floor'), h.downtime_floor, d.downtime_floor_ns, FLOOR_LIMIT),
      migration_setup_ns: f.duration(at('migration_setup'), h.migration_setup, d.migration_setup_ns, FLOOR_LIMIT),
      guest_dirty_rate_max: f.rate(at('guest_dirty_rate_max'), h.guest_dirty_rate_max, d.guest_dirty_rate_max, GUEST_RATE_LIMIT),
      loopback: f.bandwidth(at('loopback'), h.loopback, d.loopback, LOOPBACK_LIMIT),
      xbzrle_encode_ns: f.duration(at('xbzrle_encode'), h.xbzrle_encode, d.xbzrle_encode_ns, PAGE_COST_LIMIT),
      migration_cores: (h.migration_cores as number | undefined) ?? d.migration_cores,
      cores: (h.cores as number | undefined) ?? d.cores,
    },
  };
}
