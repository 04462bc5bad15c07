// RAM save, as QEMU's migration/ram.c does it: a migration bitmap with every
// page set at setup, migration_bitmap_sync moving the KVM dirty log into it
// (word-wise xchg, OR, popcount of the newly set bits), and page sending that
// walks the bitmap from where it stopped, clearing each bit and putting the
// page on the wire: a zero page as a header plus one byte, a normal page as a
// header plus its bytes. Auto-converge raises the vCPU throttle when the guest
// dirties faster than half what the link moves (migration_trigger_throttle).
// Leaves out: multiple RAMBlocks, postcopy, XBZRLE, compression, multifd.
import type { GuestRam } from '../guest/ram.ts';
import type { Co } from '../platform.ts';
import { invariant } from '../invariant.ts';
import type { MigrationSpec } from '../scenario.ts';
import { bitmapNew, findNextBit, setRange, syncDirtyLog } from './bitmap.ts';
import type { Destination } from './destination.ts';
import type { MigrationLink } from './link.ts';

/** QEMU: the period over which dirty-pages-rate is computed (1 s). */
export const DIRTY_RATE_PERIOD_NS = 1_000_000_000;
/** Bytes sent for a zero page besides its header. */
export const ZERO_PAGE_BYTES = 1;
/** Modelled CPU cost of the sync per bitmap word (xchg, OR, popcount). */
export const SYNC_NS_PER_WORD = 0.5;

export interface SyncRecord {
  readonly n: number;
  readonly at_ns: number;
  /** Pages dirty in the migration bitmap after the sync. */
  readonly dirty_pages: number;
  /** Pages the sync added. */
  readonly new_dirty: number;
  readonly remaining_bytes: number;
  readonly transferred_bytes: number;
}

export class RamState {
  readonly bitmap: Uint32Array;
  /** QEMU: RAMState.migration_dirty_pages */
  dirtyPages = 0;
  dirtySyncCount = 0;
  normal = 0;
  duplicate = 0;
  /** Pages sent since the last sync. */
  pagesSinceSync = 0;
  dirtyPagesRate = 0;
  throttlePct = 0;
  readonly syncs: SyncRecord[] = [];
  private cursor = 0;
  private periodStartNs = 0;
  private periodDirty = 0;
  private periodXferStart = 0;
  private dirtyRateHighCount = 0;

  constructor(
    readonly ram: GuestRam,
    private readonly dest: Destination,
    private readonly spec: MigrationSpec,
  ) {
    this.bitmap = bitmapNew(ram.pages);
  }

  get pageBytes(): number {
    return this.ram.pageSize + this.spec.page_header_bytes;
  }

  /** QEMU: ram_save_setup -> ram_init_bitmaps: every page dirty, dirty logging on. */
  setup(nowNs: number, transferred: number): void {
    setRange(this.bitmap, 0, this.ram.pages);
    this.dirtyPages = this.ram.pages;
    this.ram.dirtyLog.fill(0);
    this.ram.logging = true; // QEMU: memory_global_dirty_log_start
    this.periodStartNs = nowNs;
    this.periodXferStart = transferred;
  }

  /** Modelled CPU time of one sync. */
  syncCostNs(): number {
    return Math.round(this.bitmap.length * SYNC_NS_PER_WORD);
  }

  /**
   * QEMU: migration_bitmap_sync (migration/ram.c). Returns the pages it
   * added. Every DIRTY_RATE_PERIOD_NS it updates dirty-pages-rate and, with
   * auto-converge, decides on throttling; setThrottle applies a new value.
   */
  sync(nowNs: number, transferred: number, autoConverge: boolean, setThrottle: (pct: number) => void): number {
    const added = syncDirtyLog(this.ram.dirtyLog, this.bitmap, 0, this.ram.pages, {
      dropNew: this.spec.bug === 'sync-drops-new-bits',
    });
    this.dirtyPages += added;
    this.dirtySyncCount++;
    this.periodDirty += added;
    this.pagesSinceSync = 0;
    if (nowNs >= this.periodStartNs + DIRTY_RATE_PERIOD_NS) {
      const periodNs = nowNs - this.periodStartNs;
      this.dirtyPagesRate = Math.round((this.periodDirty * 1e9) / periodNs);
      if (autoConverge) this.triggerThrottle(transferred - this.periodXferStart, setThrottle);
      this.periodStartNs = nowNs;
      this.periodDirty = 0;
      this.periodXferStart = transferred;
    }
    this.syncs.push({
      n: this.dirtySyncCount,
      at_ns: nowNs,
      dirty_pages: this.dirtyPages,
      new_dirty: added,
      remaining_bytes: this.remainingBytes(),
      transferred_bytes: transferred,
    });
    return added;
  }

  /** QEMU: migration_trigger_throttle + mig_throttle_guest_down (migration/ram.c) */
  private triggerThrottle(bytesXferPeriod: number, setThrottle: (pct: number) => void): void {
    const ac = this.spec.auto_converge;
    const bytesDirtyPeriod = this.periodDirty * this.ram.pageSize;
    if (bytesDirtyPeriod > (bytesXferPeriod * ac.trigger) / 100) {
      if (++this.dirtyRateHighCount >= 2) {
        this.dirtyRateHighCount = 0;
        this.throttlePct = this.throttlePct === 0 ? ac.initial : Math.min(ac.max, this.throttlePct + ac.increment);
        setThrottle(this.throttlePct);
      }
    }
  }

  /** Bytes still to send for the dirty pages (QEMU's remaining). */
  remainingBytes(): number {
    return this.dirtyPages * this.ram.pageSize;
  }

  /**
   * QEMU: ram_find_and_save_block, repeated: sends dirty pages until about
   * maxBytes went on the wire or the pass over the bitmap ends. Returns the
   * pages sent (0: no dirty page left in this pass).
   */
  *savePages(link: MigrationLink, maxBytes: number): Co<number> {
    const pages = this.ram.pages;
    const versions = this.ram.versions;
    const header = this.spec.page_header_bytes;
    const full = this.ram.pageSize + header;
    let bytes = 0;
    let sent = 0;
    let page = this.cursor;
    while (bytes < maxBytes) {
      page = findNextBit(this.bitmap, page, pages);
      if (page >= pages) {
        // End of the pass: the next one starts from page 0 after a sync.
        page = 0;
        break;
      }
      const w = page >>> 5;
      this.bitmap[w] = this.bitmap[w]! & ~(1 << (page & 31));
      this.dirtyPages--;
      const v = versions[page]!;
      if (v === 0) {
        this.duplicate++;
        bytes += header + ZERO_PAGE_BYTES;
      } else {
        this.normal++;
        bytes += full;
      }
      this.dest.receive(page, v);
      sent++;
      page++;
    }
    this.cursor = page;
    this.pagesSinceSync += sent;
    yield* link.send(bytes);
    return sent;
  }

  /** Sends every dirty page (the final pass), in chunks of chunkBytes. */
  *saveAll(link: MigrationLink, chunkBytes: number): Co<void> {
    this.cursor = 0;
    while (this.dirtyPages > 0) {
      const from = this.cursor;
      const sent = yield* this.savePages(link, chunkBytes);
      invariant(sent > 0 || from !== 0, `${this.dirtyPages} dirty pages counted but none in the migration bitmap`);
    }
  }

  /** QEMU: memory_global_dirty_log_stop */
  cleanup(): void {
    this.ram.logging = false;
  }
}
