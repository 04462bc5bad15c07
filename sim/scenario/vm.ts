// The `vm` section: guest RAM, target page size, vCPU count, the initial run
// state, how much of RAM holds data at start, and how KVM tracks dirty pages:
// the dirty log (KVM_GET_DIRTY_LOG, with or without manual protection's
// KVM_CLEAR_DIRTY_LOG) or the dirty ring of `-accel kvm,dirty-ring-size=`.
import type { RunState } from '../runstate.ts';
import type { QemuProfile } from './qemu.ts';
import { type Fields, type Path, type Raw } from './fields.ts';
import { limit } from './limits.ts';
import { int, obj, oneOfWords, percent, size, type Schema } from './schema-kit.ts';

export interface VmSpec {
  readonly memory_bytes: number;
  readonly page_size: number;
  readonly vcpus: number;
  readonly run_state: RunState;
  /** Fraction of pages holding data at start (the rest are zero pages). */
  readonly populated: number;
  /**
   * Bytes the firmware and the boot leave holding data at start, besides the
   * populated share (the simulation's guest has no firmware; a real one has
   * SeaBIOS, option ROMs and tables in its low memory). The real backends
   * have their own and ignore it.
   */
  readonly firmware_bytes: number;
  /**
   * QEMU: `-accel kvm,dirty-ring-size=`: entries of each vCPU's KVM dirty
   * ring (KVM_CAP_DIRTY_LOG_RING); 0: the dirty log (QEMU's default).
   */
  readonly dirty_ring_size: number;
  /**
   * The host offers KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 (Linux 5.3 on; QEMU 4.1
   * on then uses it): KVM_GET_DIRTY_LOG only reads the log, and migration
   * clears it chunk by chunk (clear_bmap) just before sending a chunk's first
   * page. latsim's default is the log without it.
   */
  readonly manual_dirty_log_protect: boolean;
}

/** Guest RAM when the scenario gives none (QEMU's default -m is 128 MiB; 1 GiB is a more useful guest). */
export const DEFAULT_MEMORY_BYTES = 2 ** 30;
/** x86's TARGET_PAGE_SIZE. */
export const DEFAULT_PAGE_SIZE = 4096;
/** Page numbers stay below 2^32, as the bitmaps require. */
const PAGES_MAX = 2 ** 32;
/**
 * Guest RAM: up to 4 TiB (QEMU runs larger guests, but past a few TiB the
 * model's 8.25 B per page is tens of GiB of the host; --max-memory judges
 * what fits this machine).
 */
export const MEMORY_LIMIT = limit.size('1B', '4TiB');
/** A page: up to a 1 GiB huge page. */
const PAGE_SIZE_LIMIT = limit.size('1B', '1GiB');
/**
 * Dirty-ring entries per vCPU: a power of two from 1024 (QEMU's suggested
 * minimum) to 65536 (KVM_DIRTY_RING_MAX_ENTRIES, 1 MiB of 16-byte entries).
 */
export const DIRTY_RING_SIZE_MIN = 1024;
export const DIRTY_RING_SIZE_MAX = 65536;

export function vmSchema(): Schema {
  return obj({
    memory: size('guest RAM', MEMORY_LIMIT),
    page_size: size('target page size (a power of two, default 4KiB)', PAGE_SIZE_LIMIT),
    vcpus: int(1, 1024, 'vCPU count'),
    run_state: oneOfWords(['running', 'paused', 'prelaunch'], 'initial run state'),
    populated: percent('share of guest memory holding data at start; the rest are zero pages (default 100%)'),
    firmware: size('data the firmware leaves in low memory at start, besides populated (QEMU pc with SeaBIOS: about 470KiB; default 0; the real backends have their own)', MEMORY_LIMIT),
    dirty_ring_size: int(0, DIRTY_RING_SIZE_MAX,
      `QEMU's -accel kvm,dirty-ring-size: entries per vCPU of the KVM dirty ring, a power of two from ${DIRTY_RING_SIZE_MIN} to ${DIRTY_RING_SIZE_MAX} (QEMU 6.1 on); 0 or absent: the dirty log`),
    manual_dirty_log_protect: {
      type: 'boolean', 'x-expected': 'true or false',
      description: 'the host offers KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2: the dirty log is cleared chunk by chunk before sending (QEMU 4.1 on; default false)',
    },
  }, 'the virtual machine');
}

export function checkVm(vm: Raw, profile: QemuProfile, f: Fields): VmSpec {
  const page_size = f.size(['vm', 'page_size'], vm.page_size, DEFAULT_PAGE_SIZE, PAGE_SIZE_LIMIT);
  if (page_size <= 0 || (page_size & (page_size - 1)) !== 0) {
    f.fail(['vm', 'page_size'], `page size ${String(vm.page_size)} is not a power of two between 1 B and 1 GiB`);
  }
  const memory_bytes = f.size(['vm', 'memory'], vm.memory, DEFAULT_MEMORY_BYTES, MEMORY_LIMIT);
  if (memory_bytes < page_size) f.fail(['vm', 'memory'], 'memory must hold at least one page');
  if (Math.ceil(memory_bytes / page_size) > PAGES_MAX) f.fail(['vm', 'memory'], 'memory holds more than 2^32 pages');
  const populated = f.percent(vm.populated, 1);
  if (populated > 1) f.fail(['vm', 'populated'], 'more than 100%');
  const firmware_bytes = f.size(['vm', 'firmware'], vm.firmware, 0, MEMORY_LIMIT);
  if (firmware_bytes > memory_bytes) f.fail(['vm', 'firmware'], 'more than the guest\'s memory');
  const ring = (vm.dirty_ring_size as number | undefined) ?? 0;
  if (ring !== 0) {
    if (ring < DIRTY_RING_SIZE_MIN || (ring & (ring - 1)) !== 0) {
      f.fail(['vm', 'dirty_ring_size'], `${ring} is not a power of two from ${DIRTY_RING_SIZE_MIN} to ${DIRTY_RING_SIZE_MAX} (or 0 for the dirty log)`);
    }
    if (!profile.dirty_ring) f.fail(['vm', 'dirty_ring_size'], `the KVM dirty ring came with QEMU 6.1; this scenario follows QEMU ${profile.version}`);
  }
  const manual = (vm.manual_dirty_log_protect as boolean | undefined) ?? false;
  if (manual && !profile.manual_dirty_log) {
    f.fail(['vm', 'manual_dirty_log_protect'], `KVM_CLEAR_DIRTY_LOG came with QEMU 4.1; this scenario follows QEMU ${profile.version}`);
  }
  if (manual && ring !== 0) {
    f.fail(['vm', 'manual_dirty_log_protect'], 'QEMU does not use manual protection with the dirty ring: drop one of dirty_ring_size and manual_dirty_log_protect');
  }
  return {
    memory_bytes,
    page_size,
    vcpus: (vm.vcpus as number | undefined) ?? 1,
    run_state: (vm.run_state as RunState | undefined) ?? 'running',
    populated,
    firmware_bytes,
    dirty_ring_size: ring,
    manual_dirty_log_protect: manual,
  };
}

/** Checks that a vCPU index names one of the VM's vCPUs. */
export function vcpuChecker(vcpus: number, fail: Fields['fail']): (path: Path, v: number | undefined, dflt?: number) => number {
  return (path, v, dflt = 0) => {
    const i = v ?? dflt;
    return i < vcpus ? i : fail(path, `vCPU ${i} does not exist (the VM has ${vcpus})`);
  };
}
