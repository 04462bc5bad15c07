// Guest RAM as pages, with a KVM-style dirty log. A page holds no bytes, only
// a content version: a page never written holds its initial version (1 for
// the pages populate gave data, 0, a zero page, for the others); the
// versions of the pages written since (the modified bitmap) are kept in a
// VersionTable (sim/util/version-table.ts), a table per chunk of 2^16
// pages, dense once a chunk has 1/32 of its pages written. So a 1 TiB
// guest (2^28 pages of 4 KiB) is three 32 MiB bitmaps (the dirty log, the
// modified pages, the table's listed pages) plus what its guest wrote, not
// a 1 GiB array whose every page the first write to it must fault in; and
// the destination can keep only what differs from the initial image
// (sim/migration/page-versions.ts). The dirty log is a word bitmap laid out
// as KVM's (bit i = page i, little-endian words), so migration_bitmap_sync
// reads it exactly as it reads KVM_GET_DIRTY_LOG's.
// It is the simulation's GuestMemory (memory.ts). With the dirty ring a
// logged write goes to the writing vCPU's ring (SimDirtyRings) and reaching
// the log is the reap's business; with manual protection the log keeps its
// bits when read and loses them chunk by chunk (KVM_CLEAR_DIRTY_LOG). While a
// PageGate is set (a postcopy destination, whose missing pages userfaultfd
// guards), a write to a missing page does not land: it is held until the vCPU
// that made it has waited for the page (sim/guest/guest.ts).
// Leaves out: memory regions and slots (one flat slot from guest address 0).
import type { Co, Notifier } from '../platform.ts';
import { bitmapNew, popcount32, setBit, setRange, testBit, wordMaskBelow } from '../util/bitmap.ts';
import { CHUNK_SHIFT, ENTRY_BYTES_MAX, TABLE_MIN_BYTES, VersionTable } from '../util/version-table.ts';
import type { GuestMemory, ManualDirtyLog } from './memory.ts';
import { SimDirtyRings } from './dirty-ring.ts';

/**
 * Pages the guest may not touch yet: on a postcopy destination the pages not
 * placed so far (QEMU registers guest RAM with userfaultfd). Whoever keeps
 * the missing pages (postcopy) provides it.
 */
export interface PageGate {
  /** Bit set: the page is missing. Up to date after refresh(). */
  readonly missing: Uint32Array;
  /** Places what has arrived by now. */
  refresh(): void;
  /**
   * The userfault: vcpu waits until page is there, asking for it. Returns
   * false, the page still missing, when interrupt became ready first (a kick:
   * the vCPU leaves the wait as KVM lets it since Linux 6.3).
   */
  fault(vcpu: number, page: number, interrupt: Notifier): Co<boolean>;
}

/** Writes to one missing page, held until it is there. */
export interface HeldWrite {
  readonly page: number;
  readonly writes: number;
  /** The vCPU that made them (its dirty ring logs them when they land). */
  readonly vcpu: number;
}

/**
 * What a copy of guest RAM is compared with (GuestRam, or a snapshot of it):
 * its versions, and what it started with.
 */
export interface RamImage {
  readonly pages: number;
  /** Bit set: the page may have been written since its initial version (never cleared). */
  readonly modified: Uint32Array;
  /** Pages [0, populatedPages) start at version 1, the others at 0. */
  readonly populatedPages: number;
  /** The page's content version. */
  version(page: number): number;
  /** Writes the versions of pages [first, first + count) into out from at (count: at most a word, in one chunk). */
  versionsInto(first: number, count: number, out: Uint32Array, at: number): void;
}

/**
 * Guests of up to this many pages (64 GiB of 4 KiB pages: a 64 MiB array)
 * keep every page's version from the start; larger ones only the written
 * pages', until a chunk has 1/32 of its pages written. (Measured on a
 * 64 GiB guest migrating while it writes 5,000 random pages a second: 0.18
 * s with every version, 0.21 s with the written ones.)
 */
export const DENSE_PAGES_MAX = 2 ** 24;

/**
 * A chunk of guest RAM turns dense once 2^-5 of its pages are written (the
 * destination's copy waits for an eighth): a chunk the guest writes that
 * much will likely be written more, and a dense chunk takes a write at the
 * cost of an index, where the tables' hashing misses the cache (bench guest,
 * 4 M random writes/s: 6.4 M writes/s at 1/32, 3.7 M at 1/8), while a 1 TiB
 * guest's first pass still writes too few pages a chunk to turn any dense
 * (665 MiB of RSS).
 */
export const GUEST_DENSE_SHIFT = 5;

/** write() cycles a version through 1 .. 2^32-1 (0 only before the first write). */
const VERSION_CYCLE = 2 ** 32 - 1;

/** Version v after `writes` more writes. */
function stepVersion(v: number, writes: number): number {
  return writes === 1 ? (v + 1) >>> 0 || 1 : ((v - 1 + writes) % VERSION_CYCLE) + 1;
}

/**
 * Bytes of host memory GuestRam keeps per page, whatever the guest writes: a
 * dirty-log bit, a modified bit and the version table's listed bit.
 */
export const RAM_BYTES_PER_PAGE = 3 / 8;
/** Bytes per page the guest wrote, in a guest above DENSE_PAGES_MAX: an entry of the version table. */
export const RAM_BYTES_PER_WRITTEN_PAGE = ENTRY_BYTES_MAX;

/**
 * The most bytes GuestRam's versions take for a guest of `pages` pages
 * whose workloads write at most `written` distinct pages: 4 bytes per page
 * up to DENSE_PAGES_MAX; above it the table's entries, each chunk written
 * at least its first table, and at most 8 bytes per page (a chunk turning
 * dense, and the table it replaces).
 */
export function versionBytesMax(pages: number, written: number): number {
  if (pages <= DENSE_PAGES_MAX) return 4 * pages;
  const n = Math.min(pages, written);
  const chunks = Math.ceil(pages / 2 ** CHUNK_SHIFT);
  return Math.min(n * RAM_BYTES_PER_WRITTEN_PAGE + Math.min(n, chunks) * TABLE_MIN_BYTES, 8 * pages);
}

/** Options of GuestRam: how KVM tracks dirty pages. */
export interface GuestRamOptions {
  /** vCPUs and entries per vCPU of the dirty ring; 0 entries: the dirty log. */
  readonly vcpus?: number;
  readonly dirtyRingSize?: number;
  /** KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 with KVM_DIRTY_LOG_INITIALLY_SET. */
  readonly manualProtect?: boolean;
  /** Guests of up to this many pages keep every version from the start (default DENSE_PAGES_MAX; tests lower it). */
  readonly densePagesMax?: number;
}

export class GuestRam implements GuestMemory, ManualDirtyLog, RamImage {
  readonly pages: number;
  /** Content versions of the pages written (modified); the destination keeps its own copy. */
  private readonly table: VersionTable;
  /** KVM dirty log (KVM_MEM_LOG_DIRTY_PAGES): bit set when a page is written. */
  readonly dirtyLog: Uint32Array;
  /** Bit set once a page is written: its version may differ from the initial image's (populate); never cleared. */
  readonly modified: Uint32Array;
  writes = 0;
  /** Set while pages are missing (postcopy on the destination); null: every page is there. */
  gate: PageGate | null = null;
  /** Writes to missing pages not taken yet (takeHeld), in order. */
  private held: HeldWrite[] = [];
  readonly dirtyRing: SimDirtyRings | null;
  readonly manualLog: ManualDirtyLog | null;
  /** QEMU: KVMSlot.dirty_bmap under manual protection: what the last KVM_GET_DIRTY_LOG returned. */
  private readonly slotBitmap: Uint32Array | null;
  private logOn = false;
  private populated = 0;
  private readonly counterRanges: [number, number][] = [];
  /** Other dirty logs merged in at every sync (QEMU: memory listeners' log_sync, e.g. vhost_log_sync). */
  private readonly logSyncListeners: (() => void)[] = [];

  constructor(readonly bytes: number, readonly pageSize: number, o: GuestRamOptions = {}) {
    if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new RangeError(`guest memory ${bytes} is not a positive size`);
    if (pageSize <= 0 || (pageSize & (pageSize - 1)) !== 0) {
      throw new RangeError(`page size ${pageSize} is not a power of two`);
    }
    this.pages = Math.ceil(bytes / pageSize);
    // A chunk turning dense: its pages not written hold their initial version.
    this.table = new VersionTable(this.pages, (d, first) => {
      if (first < this.populated) d.fill(1, 0, Math.min(d.length, this.populated - first));
    }, undefined, GUEST_DENSE_SHIFT);
    // A guest this small has every version in a flat array from the start: its
    // writes and reads cost an index, where the tables' hashing would only cost.
    if (this.pages <= (o.densePagesMax ?? DENSE_PAGES_MAX)) this.table.allDense();
    this.dirtyLog = bitmapNew(this.pages);
    this.modified = bitmapNew(this.pages);
    const ring = o.dirtyRingSize ?? 0;
    this.dirtyRing = ring > 0 ? new SimDirtyRings(o.vcpus ?? 1, ring, this.pages) : null;
    this.slotBitmap = o.manualProtect === true ? bitmapNew(this.pages) : null;
    this.manualLog = this.slotBitmap ? this : null;
  }

  /** Whether writes are logged (migration turns it on: memory_global_dirty_log_start). */
  get logging(): boolean {
    return this.logOn;
  }

  /**
   * QEMU: kvm_log_start/stop: KVM_MEM_LOG_DIRTY_PAGES on the slot. Starting
   * write-protects every page: the rings start empty; with
   * KVM_DIRTY_LOG_INITIALLY_SET (manual protection) the log starts all set.
   */
  set logging(on: boolean) {
    if (on === this.logOn) return;
    // The vCPUs' writes up to now were made before the switch.
    this.onLogSwitch?.(on);
    this.logOn = on;
    this.dirtyRing?.clear();
    if (on && this.slotBitmap) {
      setRange(this.dirtyLog, 0, this.pages);
      this.slotBitmap.fill(0);
    }
  }

  /** Writes by vcpu are logged in its dirty ring (the ring exists and the slot logs). */
  get ringActive(): boolean {
    return this.logOn && this.dirtyRing !== null;
  }

  getDirtyLog(bitmap: Uint32Array, dropNew: boolean): number {
    const log = this.dirtyLog;
    const slot = this.slotBitmap!;
    if (dropNew) {
      log.fill(0);
      slot.fill(0);
      return 0;
    }
    let n = 0;
    for (let w = 0; w < log.length; w++) {
      const b = log[w]!;
      slot[w] = b;
      if (b !== 0) {
        const a = bitmap[w]!;
        bitmap[w] = a | b;
        n += popcount32(b & ~a);
      }
    }
    return n;
  }

  clearDirtyLog(first: number, count: number): void {
    const log = this.dirtyLog;
    const slot = this.slotBitmap!;
    // Chunks start on a 64-page boundary (CLEAR_BITMAP_SHIFT_MIN), so whole words.
    const w0 = first >>> 5;
    const w1 = Math.min(log.length, Math.ceil((first + count) / 32));
    for (let w = w0; w < w1; w++) {
      const m = slot[w]!;
      if (m !== 0) {
        log[w] = log[w]! & ~m;
        slot[w] = 0;
      }
    }
  }

  /**
   * A page never written holds only zeroes; so does a page of a byte-counter
   * range (migration-test's increment) that started as zeroes, each time its
   * byte wraps to zero (every 256 writes).
   */
  isZeroPage(page: number): boolean {
    const v = this.version(page);
    if (v === 0) return true;
    return (v & 255) === 0 && page >= this.populated && this.isByteCounterPage(page);
  }

  /** The page's content version. */
  version(page: number): number {
    const t = this.table;
    const c = page >>> t.shift;
    if (t.dense[c] === 1) return t.tables[c]![page & (t.chunkPages - 1)]!;
    if (!testBit(t.listed, page)) return page < this.populated ? 1 : 0;
    return t.tables[c]![t.slot(page)]!;
  }

  versionsInto(first: number, count: number, out: Uint32Array, at: number): void {
    const t = this.table;
    const c = first >>> t.shift;
    if (t.dense[c] === 1) {
      const off = first & (t.chunkPages - 1);
      out.set(t.tables[c]!.subarray(off, off + count), at);
      return;
    }
    for (let i = 0; i < count; i++) out[at + i] = this.version(first + i);
  }

  /** Every page's version, as one array (tests and reports: 4 bytes per page). */
  toArray(): Uint32Array {
    const a = new Uint32Array(this.pages);
    a.fill(1, 0, this.populated);
    for (let w = 0; w < this.modified.length; w++) {
      let todo = this.modified[w]!;
      while (todo !== 0) {
        const i = 31 - Math.clz32(todo & -todo);
        todo &= todo - 1;
        a[w * 32 + i] = this.version(w * 32 + i);
      }
    }
    return a;
  }

  /**
   * The RAM as it is now, apart: its versions stay what they are while the
   * guest goes on writing (postcopy's view of the source at the switch).
   */
  snapshot(): RamImage {
    const table = this.table.clone();
    const populated = this.populated;
    return {
      pages: this.pages,
      modified: this.modified.slice(),
      populatedPages: populated,
      version: (page: number): number => table.get(page, page < populated ? 1 : 0),
      versionsInto(first: number, count: number, out: Uint32Array, at: number): void {
        for (let i = 0; i < count; i++) out[at + i] = table.get(first + i, first + i < populated ? 1 : 0);
      },
    };
  }

  /** Bytes the versions of the written pages take now (the version table). */
  get versionBytes(): number {
    return this.table.bytes;
  }

  /** The pages never written among the 32 from first (a multiple of 32, all in RAM), as a bit mask. */
  unwrittenMask(first: number): number {
    // A word never written holds the initial image: zero pages past the populated ones.
    const m = this.modified[first >>> 5]!;
    const initial = ~wordMaskBelow(first >>> 5, this.populated);
    if (m === 0) return initial;
    // A page written holds 0 again only through the version cycle (never, in practice).
    let mask = initial & ~m;
    let todo = m;
    while (todo !== 0) {
      const i = 31 - Math.clz32(todo & -todo);
      todo &= todo - 1;
      if (this.version(first + i) === 0) mask |= 1 << i;
    }
    return mask;
  }

  /**
   * The zero pages among the 32 pages from first (a multiple of 32, all in
   * RAM) as a bit mask, isZeroPage for each: the pages never written
   * (unwrittenMask, when the caller has it), and byte counters back at zero.
   */
  zeroMask(first: number, unwritten = this.unwrittenMask(first)): number {
    let mask = unwritten;
    // A page may hold zeroes again only in a byte-counter range past the populated pages.
    if (mask !== -1 && this.counterRanges.length > 0 && first + 32 > this.populated) {
      for (let i = 0; i < 32; i++) if ((mask & (1 << i)) === 0 && this.isZeroPage(first + i)) mask |= 1 << i;
    }
    return mask;
  }

  /** True when the page is one of a byte-counter range (its writes change one byte). */
  isByteCounterPage(page: number): boolean {
    for (const [from, to] of this.counterRanges) if (page >= from && page < to) return true;
    return false;
  }

  /** Pages [first, first + count) hold one byte counter each (the increment workload). */
  addByteCounterRange(first: number, count: number): void {
    this.counterRanges.push([first, first + count]);
  }

  /**
   * Called by logSync: the vCPUs in guest mode do the writes of what they
   * have run so far (they are advanced in bulk, sim/guest/guest.ts).
   */
  onLogSync: (() => void) | null = null;

  /**
   * Called as logging is switched on or off, before it changes: the vCPUs in
   * guest mode do the writes of what they have run so far, and with dirty
   * rings, a vCPU running in bulk stops to bound its next run by its ring.
   */
  onLogSwitch: ((on: boolean) => void) | null = null;

  /**
   * Guest writes set the log's bits directly: nothing to fetch from KVM once
   * the running vCPUs are caught up. Logs kept outside KVM (a vhost
   * worker's) are merged in here, as memory_global_dirty_log_sync calls
   * every listener's log_sync.
   */
  logSync(): void {
    this.onLogSync?.();
    for (const l of this.logSyncListeners) l();
  }

  /** QEMU: memory_listener_register for a listener with log_sync (vhost_dev_init). */
  addLogSyncListener(fn: () => void): void {
    this.logSyncListeners.push(fn);
  }

  /**
   * A write from the host side into guest memory (a vhost worker copying a
   * received packet into a guest buffer): the content changes, KVM's dirty
   * log does not see it; the writer logs it itself.
   */
  hostWrite(page: number): void {
    this.bump(page, 1);
  }

  /**
   * Page's content changes `writes` times: its version steps through
   * 1 .. 2^32-1 (0 only before the first write), and it is modified.
   */
  private bump(page: number, writes: number): void {
    const t = this.table;
    const c = page >>> t.shift;
    const a = t.tables[c]!;
    setBit(this.modified, page);
    let i: number;
    if (t.dense[c] === 1) i = page & (t.chunkPages - 1);
    else if (testBit(t.listed, page)) i = t.slot(page);
    else {
      t.put(page, stepVersion(page < this.populated ? 1 : 0, writes));
      return;
    }
    a[i] = stepVersion(a[i]!, writes);
  }

  /** Pages [0, populatedPages) held data at start (version 1, populate); the others were zero pages. */
  get populatedPages(): number {
    return this.populated;
  }

  /** Gives the first pages content (a booted guest's data), before any write; the rest stay zero pages. */
  populate(pages: number): void {
    if (this.writes > 0 || this.table.entries > 0) throw new RangeError('populate() comes before any write');
    this.populated = Math.min(pages, this.pages);
    const t = this.table;
    for (let c = 0; c < t.chunks && c * t.chunkPages < this.populated; c++) {
      if (t.dense[c] === 1) t.tables[c]!.fill(1, 0, this.populated - c * t.chunkPages);
    }
  }

  /**
   * vcpu writes page: its content changes and, when logging, it is marked
   * dirty (in vcpu's dirty ring when the VM has rings).
   */
  write(page: number, vcpu = 0): void {
    if (this.gate !== null && testBit(this.gate.missing, page)) {
      this.held.push({ page, writes: 1, vcpu });
      return;
    }
    this.bump(page, 1);
    if (this.logOn) {
      if (this.dirtyRing) this.dirtyRing.write(vcpu, page);
      else {
        const w = page >>> 5;
        this.dirtyLog[w] = this.dirtyLog[w]! | (1 << (page & 31));
      }
    }
    this.writes++;
  }

  /**
   * write() for pages[0..count), in order. One tight loop, so the cache
   * misses of random pages overlap instead of waiting one by one.
   */
  writeMany(pages: Uint32Array, count: number, vcpu = 0): void {
    if (this.gate !== null) {
      for (let i = 0; i < count; i++) this.write(pages[i]!, vcpu);
      return;
    }
    // bump(page, 1), with a dense chunk's step inline.
    const t = this.table;
    const tables = t.tables;
    const dense = t.dense;
    const shift = t.shift;
    const offMask = t.chunkPages - 1;
    const mod = this.modified;
    for (let i = 0; i < count; i++) {
      const page = pages[i]!;
      const c = page >>> shift;
      if (dense[c] === 1) {
        mod[page >>> 5] = mod[page >>> 5]! | (1 << (page & 31));
        const a = tables[c]!;
        const o = page & offMask;
        a[o] = (a[o]! + 1) >>> 0 || 1;
      } else {
        this.bump(page, 1);
      }
    }
    const ring = this.logOn ? this.dirtyRing : null;
    if (ring) {
      for (let i = 0; i < count; i++) ring.write(vcpu, pages[i]!);
    } else if (this.logOn) {
      const log = this.dirtyLog;
      for (let i = 0; i < count; i++) {
        const page = pages[i]!;
        log[page >>> 5] = log[page >>> 5]! | (1 << (page & 31));
      }
    }
    this.writes += count;
  }

  /**
   * Each page of [first, first + count) written `rounds` times: the same
   * versions, dirty bits and write count as rounds x count calls of write(),
   * at the cost of count.
   */
  writeRounds(first: number, count: number, rounds: number, vcpu = 0): void {
    if (rounds <= 0 || count <= 0) return;
    if (this.gate !== null) {
      const missing = this.gate.missing;
      for (let p = first, end = first + count; p < end; p++) {
        if (testBit(missing, p)) this.held.push({ page: p, writes: rounds, vcpu });
        else this.land(p, rounds, vcpu);
      }
      return;
    }
    for (let p = first, end = first + count; p < end; p++) this.bump(p, rounds);
    if (this.logOn) {
      // A page's later rounds push nothing: its first write left it writable.
      if (this.dirtyRing) for (let p = first, end = first + count; p < end; p++) this.dirtyRing.write(vcpu, p);
      else setRange(this.dirtyLog, first, count);
    }
    this.writes += count * rounds;
  }

  /**
   * `writes` writes that land all over [first, first + count), more than the
   * pages can tell apart: each page is written once and every write counted
   * (a page written twice between two syncs is as dirty as a page written once).
   */
  writeSaturated(first: number, count: number, writes: number, vcpu = 0): void {
    this.writeRounds(first, count, 1, vcpu);
    this.writes += writes - count;
  }

  /** The held writes since the last call, in order (the vCPU that made them waits for their pages). */
  takeHeld(): HeldWrite[] {
    const held = this.held;
    if (held.length > 0) this.held = [];
    return held;
  }

  /** writes writes to page land, the gate left aside (a held write once its page is there). */
  land(page: number, writes: number, vcpu = 0): void {
    this.bump(page, writes);
    if (this.logOn) {
      if (this.dirtyRing) this.dirtyRing.write(vcpu, page);
      else {
        const w = page >>> 5;
        this.dirtyLog[w] = this.dirtyLog[w]! | (1 << (page & 31));
      }
    }
    this.writes += writes;
  }

  /** Writes count consecutive pages from first (wrapping at the end of RAM). */
  writeRange(first: number, count: number, vcpu = 0): void {
    for (let i = 0; i < count; i++) this.write((first + i) % this.pages, vcpu);
  }
}
