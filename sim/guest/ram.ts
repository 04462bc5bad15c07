// Guest RAM as pages, with a KVM-style dirty log. A page holds no bytes, only
// a content version (0: never written, a zero page), so a 1 TiB guest (2^28
// pages of 4 KiB) is a 1 GiB Uint32Array plus a 32 MiB bitmap. The dirty log
// is a word bitmap laid out as KVM's (bit i = page i, little-endian words), so
// migration_bitmap_sync reads it exactly as it reads KVM_GET_DIRTY_LOG's.
// It is the simulation's GuestMemory (memory.ts).
// Leaves out: memory regions and slots (one flat slot from guest address 0).
import { bitmapNew, setRange } from '../util/bitmap.ts';
import type { GuestMemory } from './memory.ts';

/**
 * Bytes of host memory GuestRam keeps per page: a 4-byte content version and
 * a dirty-log bit (measured: 4.18 B per page of RSS for a 64 GiB guest).
 */
export const RAM_BYTES_PER_PAGE = 4 + 1 / 8;

export class GuestRam implements GuestMemory {
  readonly pages: number;
  /** Content version of each page; the destination keeps its own copy. */
  readonly versions: Uint32Array;
  /** KVM dirty log (KVM_MEM_LOG_DIRTY_PAGES): bit set when a page is written. */
  readonly dirtyLog: Uint32Array;
  /** Whether writes are logged (migration turns it on: memory_global_dirty_log_start). */
  logging = false;
  writes = 0;
  /** Pages [0, populatedPages) held data at start. */
  private populatedPages = 0;
  private readonly counterRanges: [number, number][] = [];

  constructor(readonly bytes: number, readonly pageSize: number) {
    if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new RangeError(`guest memory ${bytes} is not a positive size`);
    if (pageSize <= 0 || (pageSize & (pageSize - 1)) !== 0) {
      throw new RangeError(`page size ${pageSize} is not a power of two`);
    }
    this.pages = Math.ceil(bytes / pageSize);
    this.versions = new Uint32Array(this.pages);
    this.dirtyLog = bitmapNew(this.pages);
  }

  /**
   * A page never written holds only zeroes; so does a page of a byte-counter
   * range (migration-test's increment) that started as zeroes, each time its
   * byte wraps to zero (every 256 writes).
   */
  isZeroPage(page: number): boolean {
    const v = this.versions[page]!;
    if (v === 0) return true;
    if ((v & 255) !== 0 || page < this.populatedPages) return false;
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

  /** Guest writes set the log's bits directly: nothing to fetch once the running vCPUs are caught up. */
  logSync(): void {
    this.onLogSync?.();
  }

  /** Gives the first pages content (a booted guest's data); the rest stay zero pages. */
  populate(pages: number): void {
    this.populatedPages = Math.min(pages, this.pages);
    this.versions.fill(1, 0, this.populatedPages);
  }

  /** The guest writes page: its content changes and, when logging, it is marked dirty. */
  write(page: number): void {
    this.versions[page] = (this.versions[page]! + 1) >>> 0 || 1;
    if (this.logging) {
      const w = page >>> 5;
      this.dirtyLog[w] = this.dirtyLog[w]! | (1 << (page & 31));
    }
    this.writes++;
  }

  /**
   * write() for pages[0..count), in order. One tight loop, so the cache
   * misses of random pages overlap instead of waiting one by one.
   */
  writeMany(pages: Uint32Array, count: number): void {
    const versions = this.versions;
    if (this.logging) {
      const log = this.dirtyLog;
      for (let i = 0; i < count; i++) {
        const page = pages[i]!;
        versions[page] = (versions[page]! + 1) >>> 0 || 1;
        const w = page >>> 5;
        log[w] = log[w]! | (1 << (page & 31));
      }
    } else {
      for (let i = 0; i < count; i++) {
        const page = pages[i]!;
        versions[page] = (versions[page]! + 1) >>> 0 || 1;
      }
    }
    this.writes += count;
  }

  /**
   * Each page of [first, first + count) written `rounds` times: the same
   * versions, dirty bits and write count as rounds x count calls of write(),
   * at the cost of count.
   */
  writeRounds(first: number, count: number, rounds: number): void {
    if (rounds <= 0 || count <= 0) return;
    const versions = this.versions;
    // write() cycles a version through 1 .. 2^32-1 (0 only before the first write).
    const cycle = 2 ** 32 - 1;
    for (let p = first, end = first + count; p < end; p++) versions[p] = ((versions[p]! - 1 + rounds) % cycle) + 1;
    if (this.logging) setRange(this.dirtyLog, first, count);
    this.writes += count * rounds;
  }

  /**
   * `writes` writes that land all over [first, first + count), more than the
   * pages can tell apart: each page is written once and every write counted
   * (a page written twice between two syncs is as dirty as a page written once).
   */
  writeSaturated(first: number, count: number, writes: number): void {
    this.writeRounds(first, count, 1);
    this.writes += writes - count;
  }

  /** Writes count consecutive pages from first (wrapping at the end of RAM). */
  writeRange(first: number, count: number): void {
    for (let i = 0; i < count; i++) this.write((first + i) % this.pages);
  }
}
