// Guest memory as migration sees it, whichever backend holds it: a number of
// pages with a KVM-style dirty log (a word bitmap, bit i = page i), a switch
// for dirty logging, and the content test RAM save needs (is the page all
// zeroes?). In simulation a page holds a content version (sim/guest/ram.ts);
// on KVM it is the mmap'd guest RAM (real/guest-memory.ts). migration_bitmap_sync
// and ram_save_iterate (sim/migration/ram.ts) are written against this only.
// With the dirty ring the guest's writes go to the per-vCPU rings instead
// (dirtyRing), and reaping them sets the log's bits; with manual protection
// (manualLog) the log is read without being cleared, and cleared range by
// range later.
// Leaves out: several RAMBlocks and memory slots, host pages larger than
// target pages.
import type { KvmDirtyRings } from './dirty-ring.ts';

/**
 * KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2: KVM_GET_DIRTY_LOG only reads the log;
 * KVM_CLEAR_DIRTY_LOG clears (and write-protects) what the last read saw.
 */
export interface ManualDirtyLog {
  /**
   * QEMU: kvm_physical_sync_dirty_bitmap (KVM_GET_DIRTY_LOG into the slot's
   * dirty_bmap) and cpu_physical_memory_sync_dirty_bitmap: the log's bits
   * join bitmap, the log keeps them. Returns the pages newly set in bitmap;
   * dropNew: the planted fault (the log's bits are lost).
   */
  getDirtyLog(bitmap: Uint32Array, dropNew: boolean): number;
  /** QEMU: kvm_log_clear_one_slot: KVM_CLEAR_DIRTY_LOG of the pages in [first, first + count) the last read saw. */
  clearDirtyLog(first: number, count: number): void;
}

export interface GuestMemory {
  readonly pages: number;
  readonly pageSize: number;
  /** The dirty log, laid out as KVM_GET_DIRTY_LOG fills it; consumed by migration_bitmap_sync. */
  readonly dirtyLog: Uint32Array;
  /** QEMU: memory_global_dirty_log_start / _stop: whether guest writes are logged. */
  logging: boolean;
  /** Page writes the guest has done (for reports). */
  readonly writes: number;
  /** True when the page holds only zero bytes (QEMU: buffer_is_zero in save_zero_page). */
  isZeroPage(page: number): boolean;
  /**
   * Optional word form of isZeroPage: the zero pages among the 32 pages from
   * first (a multiple of 32, all in RAM) as a bit mask, at the cost of a
   * word where the backend can tell pages never written.
   */
  zeroMask?(first: number): number;
  /**
   * QEMU: memory_global_dirty_log_sync: brings dirtyLog up to date (KVM_GET_DIRTY_LOG).
   * A no-op where guest writes set the bits directly.
   */
  logSync(): void;
  /** KVM's dirty rings, when the VM has them (-accel kvm,dirty-ring-size); null: the dirty log. */
  readonly dirtyRing: KvmDirtyRings | null;
  /** The log under manual protection, when the host offers it; null: KVM_GET_DIRTY_LOG clears as it reads. */
  readonly manualLog: ManualDirtyLog | null;
}

/**
 * Where RAM save puts a page: the destination's memory in simulation, the
 * migration stream on KVM. The sink reads the page's content from the source
 * memory it was made for, as it is at the moment of the call.
 */
export interface PageSink {
  /** QEMU: ram_save_target_page: a zero page (header only) or a normal page (header and bytes). */
  savePage(page: number, zero: boolean): void;
  /**
   * Optional bulk form: saves pages [first, first + count), all dirty, and
   * returns how many of them were zero pages. Same effect as savePage on each.
   */
  saveRun?(first: number, count: number): number;
  /**
   * Optional: the page's bytes are the same as what the destination holds
   * (XBZRLE found nothing to send); in simulation its content version there
   * catches up with the source's. Nothing is sent.
   */
  unchanged?(page: number): void;
  /** The destination's time to load the pages saved since the last call (a model of its cost), then 0 again. */
  takeLoadCostNs?(): number;
}
