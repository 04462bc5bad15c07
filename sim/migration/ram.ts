// RAM save, as QEMU's migration/ram.c does it: a migration bitmap with every
// page set at setup, migration_bitmap_sync moving the KVM dirty log into it
// (word-wise xchg, OR, popcount of the newly set bits), and page sending that
// walks the bitmap from where it stopped, clearing each bit and putting the
// page on the wire: a zero page as a header plus one byte, a normal page as a
// header plus its bytes. Auto-converge raises the vCPU throttle when the guest
// dirties faster than half what the link moves (migration_trigger_throttle).
// Each page costs the migration thread CPU as on the scenario's host: a
// zero page the full buffer_is_zero scan, a normal page its copy into the
// stream; the sync costs KVM_GET_DIRTY_LOG / KVM_CLEAR_DIRTY_LOG time per GiB
// under the BQL. Under manual dirty-log protection (QEMU 4.1 on) the sync only
// reads the log (KVM_GET_DIRTY_LOG) and marks every clear_bmap chunk; a
// chunk's log is cleared (KVM_CLEAR_DIRTY_LOG, on the migration thread)
// just before its first page is sent. With the dirty ring the caller reaps
// the rings into the log first (kvm_dirty_ring_flush) and the sync pays only
// its walk of the bitmap. Dirty-limit is triggered as auto-converge is
// (QEMU 8.1's migration_trigger_throttle). Written against GuestMemory and
// PageSink, so the same code runs on the simulation's content versions and on
// KVM's guest RAM, dirty log and dirty rings.
// With xbzrle, once the first pass is complete, normal pages go through the
// XBZRLE cache (xbzrle.ts). With multifd the walk queues pages for the
// channels instead of sending them (multifd.ts): it goes on from where it
// stopped also in the last stage, and a wrap of the scan is a multifd sync
// where the QEMU version syncs per round.
// Postcopy (postcopy.ts) puts its own sink in place at the switch, sends
// requested pages ahead of the scan, and reloads the bitmap on recovery.
// Leaves out: multiple RAMBlocks, compression.
import type { GuestMemory, PageSink } from '../guest/memory.ts';
import type { Co } from '../platform.ts';
import { invariant } from '../invariant.ts';
import { HOST_COSTS_DEFAULT, type HostCosts } from '../scenario/qemu.ts';
import type { MigrationSpec } from '../scenario/scenario.ts';
import { bitmapNew, bitmapWords, countSetBits, findNextBit, popcount32, setRange, syncDirtyLog, testAndClearBit } from '../util/bitmap.ts';
import type { MigrationLink } from './link.ts';
import { MULTIFD_FLUSH_BYTES, type MultifdSend } from './multifd.ts';
import { XBZRLE_HEADER_BYTES, type Xbzrle } from './xbzrle.ts';

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
  /** The longest the sync held the BQL without a break (the dirty ring's flush drops it while it kicks the vCPUs). */
  readonly bql_hold_ns: number;
}

/** What a sync may do besides syncing: throttle the guest, and what to record. */
export interface SyncHooks {
  /** Auto-converge: applies a new cpu-throttle-percentage. */
  readonly setThrottle?: (pct: number) => void;
  /** QEMU 8.1 dirty-limit: migration_dirty_limit_guest. */
  readonly dirtyLimitGuest?: () => void;
  /** How long the sync has held the BQL without a break, this instant included. */
  readonly bqlHoldNs?: number;
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
  /** QEMU: ram_counters.transferred: bytes of RAM in the stream (device state is not RAM). */
  transferred = 0;
  dirtyPagesRate = 0;
  throttlePct = 0;
  /** Every auto-converge step: when, and the percentage it set. */
  readonly throttleSteps: { at_ns: number; pct: number }[] = [];
  /** QEMU: ram_counters.remaining as the last sync left it (expected-downtime's numerator). */
  remainingAtSync = 0;
  readonly syncs: SyncRecord[] = [];
  private cursor = 0;
  /** Bytes, migration-thread CPU time and destination load time of the pages the last takePages took. */
  private takenBytes = 0;
  private takenCpuNs = 0;
  private takenDestNs = 0;
  /** Pages the last savePagesNow took. */
  takenPages = 0;
  private periodStartNs = 0;
  private periodDirty = 0;
  private periodXferStart = 0;
  private dirtyRateHighCount = 0;
  private lastSyncNs = 0;
  /** QEMU: rs->last_stage: ram_save_complete's pass (XBZRLE neither caches misses nor updates its copies). */
  private lastStage = false;
  /** QEMU: rs->target_page_count and its value at the last rate update (pages sent by ram_save_iterate). */
  private targetPageCount = 0;
  private targetPageCountPrev = 0;
  /** QEMU: RAMBlock.clear_bmap (manual protection): chunks whose log is still to clear before their next page is sent. */
  private readonly clearBmap: Uint32Array | null;
  private readonly clearShift: number;
  /** KVM_CLEAR_DIRTY_LOG calls (one per chunk), and their migration-thread time not yet handed to the link. */
  logClears = 0;
  private clearCpuNs = 0;

  constructor(
    readonly ram: GuestMemory,
    private sink: PageSink,
    private readonly spec: MigrationSpec,
    private readonly host: HostCosts = HOST_COSTS_DEFAULT,
    /** The multifd channels, when the capability is on. */
    readonly multifd: MultifdSend | null = null,
    /** The XBZRLE cache, when the capability is on (its pages bypass it under multifd, as in QEMU). */
    readonly xbzrle: Xbzrle | null = null,
  ) {
    this.bitmap = bitmapNew(ram.pages);
    multifd?.bind(this);
    this.clearShift = spec.clear_bitmap_shift;
    this.clearBmap = ram.manualLog ? new Uint32Array(bitmapWords(Math.ceil(ram.pages / 2 ** this.clearShift))) : null;
  }

  get pageBytes(): number {
    return this.ram.pageSize + this.spec.page_header_bytes;
  }

  /**
   * QEMU: ram_save_setup -> ram_init_bitmaps: every page dirty, dirty logging
   * on. The sync that follows (migration_bitmap_sync_precopy, counted in
   * dirty-sync-count) is the caller's.
   */
  setup(nowNs: number, transferred: number): void {
    setRange(this.bitmap, 0, this.ram.pages);
    this.dirtyPages = this.ram.pages;
    this.ram.dirtyLog.fill(0);
    this.ram.logging = true; // QEMU: memory_global_dirty_log_start
    this.periodStartNs = nowNs;
    this.periodXferStart = transferred;
  }

  /**
   * CPU time of one sync under the BQL: the dirty-log ioctls per GiB of guest
   * memory (only KVM_GET_DIRTY_LOG's read under manual protection; none with
   * the dirty ring, whose reap the caller pays), and the word loop.
   */
  syncCostNs(): number {
    const gib = (this.ram.pages * this.ram.pageSize) / 2 ** 30;
    const perGib = this.ram.dirtyRing ? 0 : this.ram.manualLog ? this.host.dirty_log_get_ns_per_gib : this.host.dirty_sync_ns_per_gib;
    return Math.round(this.bitmap.length * SYNC_NS_PER_WORD + gib * perGib);
  }

  /**
   * QEMU: migration_bitmap_sync (migration/ram.c). Returns the pages it
   * added. Every DIRTY_RATE_PERIOD_NS it updates dirty-pages-rate and, with
   * auto-converge or dirty-limit (the hooks given), decides on throttling.
   */
  sync(nowNs: number, transferred: number, hooks: SyncHooks = {}): number {
    this.lastSyncNs = nowNs;
    this.ram.logSync(); // QEMU: memory_global_dirty_log_sync
    const dropNew = this.spec.bug === 'sync-drops-new-bits';
    let added: number;
    if (this.ram.manualLog) {
      added = this.ram.manualLog.getDirtyLog(this.bitmap, dropNew);
      // QEMU: clear_bmap_set over the whole block: the log is cleared chunk by chunk before sending.
      this.clearBmap!.fill(0xffffffff);
    } else {
      added = syncDirtyLog(this.ram.dirtyLog, this.bitmap, 0, this.ram.pages, { dropNew });
    }
    this.dirtyPages += added;
    this.dirtySyncCount++;
    this.remainingAtSync = this.remainingBytes();
    this.periodDirty += added;
    this.pagesSinceSync = 0;
    if (nowNs >= this.periodStartNs + DIRTY_RATE_PERIOD_NS) {
      const periodNs = nowNs - this.periodStartNs;
      this.dirtyPagesRate = Math.round((this.periodDirty * 1e9) / periodNs);
      this.xbzrle?.updateRates(this.targetPageCount - this.targetPageCountPrev);
      this.targetPageCountPrev = this.targetPageCount;
      if (hooks.setThrottle || hooks.dirtyLimitGuest) this.triggerThrottle(transferred - this.periodXferStart, hooks);
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
      bql_hold_ns: hooks.bqlHoldNs ?? 0,
    });
    return added;
  }

  /**
   * QEMU: migration_trigger_throttle + mig_throttle_guest_down (migration/ram.c),
   * and QEMU 8.1's dirty-limit branch (migration_dirty_limit_guest).
   */
  private triggerThrottle(bytesXferPeriod: number, hooks: SyncHooks): void {
    const ac = this.spec.auto_converge;
    const bytesDirtyPeriod = this.periodDirty * this.ram.pageSize;
    if (bytesDirtyPeriod > (bytesXferPeriod * ac.trigger) / 100) {
      if (++this.dirtyRateHighCount >= 2) {
        this.dirtyRateHighCount = 0;
        if (hooks.setThrottle) {
          this.throttlePct = this.throttlePct === 0 ? ac.initial : Math.min(ac.max, this.throttlePct + ac.increment);
          this.throttleSteps.push({ at_ns: this.lastSyncNs, pct: this.throttlePct });
          hooks.setThrottle(this.throttlePct);
        } else {
          hooks.dirtyLimitGuest?.();
        }
      }
    }
  }

  /**
   * QEMU: migration_clear_memory_region_dirty_bitmap_range: before a page of
   * [first, first + count) is sent, the log of each of their chunks still
   * marked in clear_bmap is cleared (KVM_CLEAR_DIRTY_LOG), at its cost on
   * the migration thread.
   */
  private clearChunks(first: number, count: number): void {
    const chunk = 2 ** this.clearShift;
    const pages = this.ram.pages;
    for (let c = Math.floor(first / chunk), end = first + count; c * chunk < end; c++) {
      if (!testAndClearBit(this.clearBmap!, c)) continue;
      const from = c * chunk;
      const n = Math.min(chunk, pages - from);
      this.ram.manualLog!.clearDirtyLog(from, n);
      this.logClears++;
      this.clearCpuNs += ((n * this.ram.pageSize) / 2 ** 30) * this.host.dirty_log_clear_ns_per_gib;
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
  *savePages(link: MigrationLink, maxBytes: number, blocking = true): Co<number> {
    if (this.multifd) return yield* this.saveMultifd(link, maxBytes, this.multifd);
    const rest = this.savePagesNow(link, maxBytes, blocking);
    if (rest !== null) yield* rest;
    return this.takenPages;
  }

  /**
   * savePages without multifd, as far as it goes without the thread giving
   * way (MigrationLink.sendNow): takes the pages (takenPages) and writes
   * them; returns what is left of the write, to run with yield*, or null.
   */
  savePagesNow(link: MigrationLink, maxBytes: number, blocking = true): Co<void> | null {
    const sent = this.takePages(maxBytes);
    this.takenPages = sent;
    this.pagesSinceSync += sent;
    this.transferred += this.takenBytes;
    return link.sendNow(this.takenBytes, { cpuNs: this.takenCpuNs, destNs: this.takenDestNs, blocking });
  }

  /**
   * The page loop of savePages, outside the generator (it runs faster as a
   * plain function): clears the bits of the pages it hands to the sink,
   * counts them, and leaves the bytes they take on the wire in takenBytes.
   */
  private takePages(maxBytes: number): number {
    const pages = this.ram.pages;
    const ram = this.ram;
    const sink = this.sink;
    const header = this.spec.page_header_bytes;
    const full = this.ram.pageSize + header;
    const bitmap = this.bitmap;
    // Bits of the last word that are pages (a word's bits past the end never count).
    const lastWord = (pages - 1) >>> 5;
    const lastMask = (pages & 31) === 0 ? -1 : (1 << (pages & 31)) - 1;
    let bytes = 0;
    let sent = 0;
    let page = this.cursor;
    const duplicateBefore = this.duplicate;
    // XBZRLE, once started, sees every normal page: no whole-word runs then.
    const xb = this.xbzrle?.started ? this.xbzrle : null;
    while (bytes < maxBytes) {
      page = findNextBit(bitmap, page, pages);
      if (page >= pages) {
        // End of the pass: the next one starts from page 0 after a sync.
        page = 0;
        // QEMU: find_dirty_block sets xbzrle_started once the scan wraps.
        if (this.xbzrle) this.xbzrle.started = true;
        break;
      }
      // The dirty pages of this word from page on, in order, one at a time
      // as long as bytes < maxBytes: one bitmap read and write per word.
      const w = page >>> 5;
      const base = w * 32;
      // QEMU: migration_bitmap_clear_dirty clears the chunk's log before any of its pages is sent.
      if (this.clearBmap) this.clearChunks(base, 32);
      let word = bitmap[w]!;
      let todo = word & (-1 << (page & 31));
      if (w === lastWord) todo &= lastMask;
      let normal = 0;
      let duplicate = 0;
      /** Pages XBZRLE sent encoded, or not at all (unchanged). */
      let encoded = 0;
      const words = todo === -1 && !xb && sink.saveRun && w !== lastWord ? this.wholeWords(w, lastWord, bytes, maxBytes) : 0;
      if (words > 0) {
        // Whole dirty words whose every page the budget covers (the first
        // pass): handed to the sink as one run.
        const count = 32 * words;
        if (this.clearBmap) this.clearChunks(base, count);
        duplicate = sink.saveRun!(base, count);
        normal = count - duplicate;
        bytes += duplicate * (header + ZERO_PAGE_BYTES) + normal * full;
        bitmap.fill(0, w, w + words);
        word = 0;
        page = base + count - 1;
      } else if (todo === -1 && !xb && bytes + 31 * full < maxBytes) {
        // All 32 pages dirty, and the budget lasts for all of them whatever
        // their kind: the plain loop, as in the first pass.
        const end = base + 32;
        for (let p = base; p < end; p++) {
          const zero = ram.isZeroPage(p);
          if (zero) duplicate++;
          sink.savePage(p, zero);
        }
        normal = 32 - duplicate;
        bytes += duplicate * (header + ZERO_PAGE_BYTES) + normal * full;
        word = 0;
        page = base + 31;
      } else {
        do {
          const bit = 31 - Math.clz32(todo & -todo);
          todo &= todo - 1;
          word &= ~(1 << bit);
          page = base + bit;
          const zero = ram.isZeroPage(page);
          if (xb) {
            const b = this.saveXbzrle(xb, page, zero);
            bytes += b < 0 ? full : b;
            if (zero) duplicate++;
            else if (b < 0) normal++;
            else encoded++;
            continue;
          }
          if (zero) {
            duplicate++;
            bytes += header + ZERO_PAGE_BYTES;
          } else {
            normal++;
            bytes += full;
          }
          sink.savePage(page, zero);
        } while (todo !== 0 && bytes < maxBytes);
      }
      bitmap[w] = word;
      const taken = normal + duplicate + encoded;
      this.dirtyPages -= taken;
      this.normal += normal;
      this.duplicate += duplicate;
      sent += taken;
      page++;
    }
    this.cursor = page;
    this.takenBytes = bytes;
    const zeros = this.duplicate - duplicateBefore;
    // With XBZRLE every normal page's CPU time is the cache's (a miss's copy included).
    const normalCpuNs = xb ? xb.takeCpuNs() : (sent - zeros) * this.host.page_send_ns;
    this.takenCpuNs = Math.round(zeros * this.host.zero_page_scan_ns + normalCpuNs + this.clearCpuNs);
    this.clearCpuNs = 0;
    this.takenDestNs = sink.takeLoadCostNs?.() ?? 0;
    if (!this.lastStage) this.targetPageCount += sent;
    return sent;
  }

  /**
   * How many whole dirty words from word w the page loop would send every
   * page of, before lastWord: it sends a page while the bytes before it are
   * under maxBytes, so a word goes whole when its first 31 pages leave room.
   * Each word's cost is counted from its zero pages (GuestMemory.zeroMask),
   * so a first pass over memory never written goes word by word to the end
   * of the budget; without zeroMask every page is taken as a normal one.
   */
  private wholeWords(w: number, lastWord: number, bytes: number, maxBytes: number): number {
    const ram = this.ram;
    const full = this.pageBytes;
    const zero = this.spec.page_header_bytes + ZERO_PAGE_BYTES;
    const bitmap = this.bitmap;
    let words = 0;
    for (let x = w; x < lastWord && bitmap[x] === 0xffffffff; x++) {
      const zeros = ram.zeroMask ? ram.zeroMask(x * 32) : 0;
      const first31 = popcount32(zeros & 0x7fffffff);
      if (!(bytes + first31 * zero + (31 - first31) * full < maxBytes)) break;
      const all = first31 + (zeros >>> 31);
      bytes += all * zero + (32 - all) * full;
      words++;
    }
    return words;
  }

  /**
   * QEMU: ram_save_target_page -> save_zero_page / save_xbzrle_page /
   * save_normal_page once XBZRLE has started. Returns the bytes the page
   * takes on the wire, or -1 for a normal page whole (a miss or an
   * overflow, whose CPU time is the cache's). An unchanged page takes none.
   */
  private saveXbzrle(xb: Xbzrle, page: number, zero: boolean): number {
    const header = this.spec.page_header_bytes;
    if (zero) {
      xb.cacheZeroPage(page, this.dirtySyncCount);
      this.sink.savePage(page, true);
      return header + ZERO_PAGE_BYTES;
    }
    const len = xb.savePage(page, this.dirtySyncCount, this.lastStage);
    if (len === 0) {
      this.sink.unchanged?.(page);
      return 0;
    }
    this.sink.savePage(page, false);
    return len > 0 ? header + XBZRLE_HEADER_BYTES + len : -1;
  }

  /**
   * The multifd form of savePages (QEMU: ram_save_target_page ->
   * ram_save_multifd_page): queues dirty pages for the channels until about
   * maxBytes of them are queued or the scan wraps (a per-round sync). Zero
   * pages under zero-page-detection legacy are the migration thread's, on
   * the main stream. Returns the pages taken.
   */
  private *saveMultifd(link: MigrationLink, maxBytes: number, mf: MultifdSend): Co<number> {
    const pages = this.ram.pages;
    const bitmap = this.bitmap;
    const legacy = mf.detection === 'legacy';
    const header = this.spec.page_header_bytes;
    const full = this.ram.pageSize + header;
    let bytes = 0;
    let sent = 0;
    let zeros = 0;
    // Main-stream zero pages go out before anything that yields (their destination cost is theirs).
    const sendZeros = function* (this: RamState): Co<void> {
      if (zeros === 0) return;
      const zeroBytes = zeros * (header + ZERO_PAGE_BYTES);
      this.transferred += zeroBytes;
      const destNs = this.sink.takeLoadCostNs?.() ?? 0;
      const cpuNs = Math.round(zeros * this.host.zero_page_scan_ns);
      zeros = 0;
      yield* link.send(zeroBytes, { cpuNs, destNs });
    }.bind(this);
    while (bytes < maxBytes) {
      const page = findNextBit(bitmap, this.cursor, pages);
      if (page >= pages) {
        this.cursor = 0;
        yield* sendZeros();
        // QEMU 8.0 on: find_dirty_block syncs the channels when the scan wraps.
        if (mf.syncPerRound) yield* this.multifdFlush(link);
        break;
      }
      // Manual protection: the chunk's log is cleared before its first page leaves (migration_bitmap_clear_dirty).
      if (this.clearBmap) this.clearChunks(page, 1);
      bitmap[page >>> 5] = bitmap[page >>> 5]! & ~(1 << (page & 31));
      this.dirtyPages--;
      sent++;
      this.cursor = page + 1;
      if (legacy && this.ram.isZeroPage(page)) {
        // QEMU: save_zero_page on the migration thread.
        mf.noteSent(page);
        this.sink.savePage(page, true);
        this.duplicate++;
        zeros++;
        bytes += header + ZERO_PAGE_BYTES;
        continue;
      }
      bytes += full;
      if (mf.queuePage(page)) {
        yield* sendZeros();
        yield* mf.sendPages();
      }
    }
    yield* sendZeros();
    if (this.clearCpuNs > 0) {
      // KVM_CLEAR_DIRTY_LOG of the chunks the walk reached, on the migration thread.
      const cpuNs = Math.round(this.clearCpuNs);
      this.clearCpuNs = 0;
      yield* link.send(0, { cpuNs });
    }
    this.pagesSinceSync += sent;
    return sent;
  }

  /** QEMU: multifd_send_sync_main, then (per round, 8.0 on) RAM_SAVE_FLAG_MULTIFD_FLUSH on the main stream. */
  private *multifdFlush(link: MigrationLink, complete = false): Co<void> {
    const mf = this.multifd!;
    // Planted bug for the checker: only the completion syncs the channels.
    if (!complete && this.spec.bug === 'multifd-skips-sync') return;
    yield* mf.syncMain();
    if (!mf.syncPerRound) return;
    this.transferred += MULTIFD_FLUSH_BYTES;
    yield* link.send(MULTIFD_FLUSH_BYTES);
  }

  /**
   * The multifd sync of ram_save_setup (`setup`), of the end of
   * ram_save_iterate where the version syncs per section (`iterate`), and of
   * ram_save_complete (`complete`); nothing without multifd.
   */
  *multifdSync(link: MigrationLink, at: 'setup' | 'iterate' | 'complete'): Co<void> {
    const mf = this.multifd;
    if (!mf || (at === 'iterate' && mf.syncPerRound)) return;
    yield* this.multifdFlush(link, at === 'complete');
  }

  /** Where pages go from now on (postcopy's sink after the switch). */
  setSink(sink: PageSink): void {
    this.sink = sink;
  }

  /**
   * QEMU: get_queued_page + ram_save_host_page for one page the destination
   * asked for (postcopy): sent on link if still dirty, else skipped (already
   * sent: get_queued_page_not_dirty). With moveScan the background scan goes
   * on from the page after it (the migration thread's pss, QEMU 7.2).
   * Returns whether the page was sent.
   */
  *saveQueuedPage(link: MigrationLink, page: number, moveScan: boolean): Co<boolean> {
    if (!testAndClearBit(this.bitmap, page)) return false;
    const zero = this.ram.isZeroPage(page);
    this.sink.savePage(page, zero);
    this.dirtyPages--;
    if (zero) this.duplicate++;
    else this.normal++;
    const bytes = zero ? this.spec.page_header_bytes + ZERO_PAGE_BYTES : this.pageBytes;
    this.transferred += bytes;
    if (moveScan) this.cursor = page + 1 < this.ram.pages ? page + 1 : 0;
    const cpuNs = zero ? this.host.zero_page_scan_ns : this.host.page_send_ns;
    yield* link.send(bytes, { cpuNs, destNs: this.sink.takeLoadCostNs?.() ?? 0 });
    return true;
  }

  /** The scan starts over from page 0 (QEMU: last_page = 0 at the postcopy switch). */
  restartScan(): void {
    this.cursor = 0;
  }

  /**
   * QEMU: ram_dirty_bitmap_reload + ram_state_resume_prepare (postcopy
   * recovery): the destination's received bitmap, complemented, is the
   * dirty bitmap (pages lost in flight are dirty again); the scan restarts.
   */
  reloadBitmap(notReceived: Uint32Array): void {
    this.bitmap.set(notReceived);
    this.dirtyPages = countSetBits(this.bitmap, this.ram.pages);
    this.cursor = 0;
  }

  /** Sends every dirty page (the final pass), in chunks of chunkBytes. */
  *saveAll(link: MigrationLink, chunkBytes: number, blocking = true): Co<void> {
    this.lastStage = true;
    if (this.multifd) {
      // QEMU: ram_save_complete scans on from where the last iteration stopped.
      let idle = 0;
      while (this.dirtyPages > 0) {
        const sent = yield* this.saveMultifd(link, chunkBytes, this.multifd);
        idle = sent > 0 ? 0 : idle + 1;
        invariant(idle < 2, `${this.dirtyPages} dirty pages counted but none in the migration bitmap`);
      }
      yield* this.multifdSync(link, 'complete');
      return;
    }
    this.cursor = 0;
    while (this.dirtyPages > 0) {
      const from = this.cursor;
      const sent = yield* this.savePages(link, chunkBytes, blocking);
      invariant(sent > 0 || from !== 0, `${this.dirtyPages} dirty pages counted but none in the migration bitmap`);
    }
  }

  /** QEMU: memory_global_dirty_log_stop; multifd_save_cleanup ends the channel threads. */
  cleanup(): void {
    this.ram.logging = false;
    this.multifd?.terminate();
  }
}
