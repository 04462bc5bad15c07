// The `vm` section: guest RAM, target page size, vCPU count, the initial run
// state and how much of RAM holds data at start.
import type { RunState } from '../runstate.ts';
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

export function vmSchema(): Schema {
  return obj({
    memory: size('guest RAM', MEMORY_LIMIT),
    page_size: size('target page size (a power of two, default 4KiB)', PAGE_SIZE_LIMIT),
    vcpus: int(1, 1024, 'vCPU count'),
    run_state: oneOfWords(['running', 'paused', 'prelaunch'], 'initial run state'),
    populated: percent('share of guest memory holding data at start; the rest are zero pages (default 100%)'),
    firmware: size('data the firmware leaves in low memory at start, besides populated (QEMU pc with SeaBIOS: about 470KiB; default 0; the real backends have their own)', MEMORY_LIMIT),
  }, 'the virtual machine');
}

export function checkVm(vm: Raw, f: Fields): VmSpec {
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
  return {
    memory_bytes,
    page_size,
    vcpus: (vm.vcpus as number | undefined) ?? 1,
    run_state: (vm.run_state as RunState | undefined) ?? 'running',
    populated,
    firmware_bytes,
  };
}

/** Checks that a vCPU index names one of the VM's vCPUs. */
export function vcpuChecker(vcpus: number, fail: Fields['fail']): (path: Path, v: number | undefined, dflt?: number) => number {
  return (path, v, dflt = 0) => {
    const i = v ?? dflt;
    return i < vcpus ? i : fail(path, `vCPU ${i} does not exist (the VM has ${vcpus})`);
  };
}
