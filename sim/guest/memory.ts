// Guest memory as migration sees it, whichever backend holds it: a number of
// pages with a KVM-style dirty log (a word bitmap, bit i = page i), a switch
// for dirty logging, and the content test RAM save needs (is the page all
// zeroes?). In simulation a page holds a content version (sim/guest/ram.ts);
// on KVM it is the mmap'd guest RAM (real/guest-memory.ts). migration_bitmap_sync
// and ram_save_iterate (sim/migration/ram.ts) are written against this only.
// Leaves out: several RAMBlocks and memory slots, host pages larger than
// target pages.

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
   * QEMU: memory_global_dirty_log_sync: brings dirtyLog up to date (KVM_GET_DIRTY_LOG).
   * A no-op where guest writes set the bits directly.
   */
  logSync(): void;
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
