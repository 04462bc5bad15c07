// XBZRLE (QEMU 1.2 on: migration/xbzrle.c, page_cache.c, save_xbzrle_page
// in ram.c). Once the first pass over the dirty bitmap is complete
// (xbzrle_enabled in 7.2, xbzrle_started in 9.2), a normal page the
// migration thread sends is looked up in a page cache of xbzrle-cache-size:
// a miss sends the page whole and caches it, unless its slot holds another
// page used in the last CACHED_PAGE_LIFETIME syncs (QEMU's cache is direct
// mapped, slot = page number mod slots, not LRU); a hit sends only the
// difference from the cached copy, XBZRLE-encoded (runs of unchanged and
// changed bytes, their lengths as ULEB128), and the cached copy becomes the
// page; an encoding that would not fit in a page is an overflow and the page
// goes whole; a page with no change is not sent at all. In the last stage
// (ram_save_complete) misses are not cached and the cache is not updated.
// Zero pages update their cache slot (xbzrle_cache_zero_page).
//
// The encoded size. A simulated page holds a content version, one per write
// (sim/guest/ram.ts), so what changed between the cached copy and the page is
// the writes in between. The model's rule, deterministic: each write changes
// one 64-byte line of the page (a cache line, what a CPU store dirties), the
// line a hash of the page and the write's version; the changed lines, merged
// where adjacent, are the encoding's runs. A page written more than 4 times
// per line since its cached copy counts as changed in every line (an
// overflow). A page of migration-test's byte counter (the `increment`
// pattern) changes one byte, the counter's, which is the same again after 256
// writes: then the page is unchanged. The cost of a hit is
// qemu.host.xbzrle_encode on the migration thread; a miss copies the page into
// the cache (qemu.host.page_send) besides sending it.
// Leaves out: multifd (whose pages bypass XBZRLE, as in QEMU), postcopy,
// xbzrle-cache-size changes during the migration, the destination's decode
// cost (its load of the page is the usual dest_page).
import { HOST_COSTS_DEFAULT, type HostCosts } from '../scenario/qemu.ts';

/** QEMU: CACHED_PAGE_LIFETIME (migration/page_cache.c): a slot used in the last 2 syncs is not taken over. */
export const CACHED_PAGE_LIFETIME = 2;
/** Bytes one guest write changes (the model's rule): a cache line. */
export const XBZRLE_WRITE_BYTES = 64;
/** Writes per line beyond which the model counts every line of a page as changed. */
export const XBZRLE_WRITES_PER_LINE_MAX = 4;
/** QEMU: the ENCODING_FLAG_XBZRLE byte and the be16 encoded length after the page header. */
export const XBZRLE_HEADER_BYTES = 3;

/** savePage's outcomes besides an encoded length (> 0) or 0 (unchanged, not sent). */
export const XBZRLE_MISS = -1;
export const XBZRLE_MISS_CACHED = -2;
export const XBZRLE_OVERFLOW = -3;

/** What the cache reads of the simulated guest: content versions, and which pages are byte counters. */
export interface GuestPages {
  readonly pages: number;
  readonly pageSize: number;
  /** The page's content version (GuestRam.version). */
  version(page: number): number;
  isByteCounterPage(page: number): boolean;
}

/** Host bytes per cache slot: its page number and age (Float64) and its content version. */
export const XBZRLE_BYTES_PER_SLOT = 8 + 8 + 4;

/** QEMU: max_num_items, the cache's slots; never more than the guest's pages rounded up to a power of two (more would stay empty). */
export function cacheSlots(cacheSize: number, pageSize: number, pages: number): number {
  return Math.max(1, Math.min(Math.floor(cacheSize / pageSize), 2 ** Math.ceil(Math.log2(Math.max(1, pages)))));
}

/** QEMU: PageCache (migration/page_cache.c): direct-mapped slots holding a page's content (here its version). */
export class PageCache {
  readonly slots: number;
  private readonly addr: Float64Array;
  private readonly age: Float64Array;
  private readonly data: Uint32Array;

  constructor(cacheSize: number, pageSize: number, pages: number) {
    this.slots = cacheSlots(cacheSize, pageSize, pages);
    this.addr = new Float64Array(this.slots).fill(-1);
    this.age = new Float64Array(this.slots);
    this.data = new Uint32Array(this.slots);
  }

  private pos(page: number): number {
    return page % this.slots;
  }

  /** QEMU: cache_is_cached: a hit renews the slot's age. */
  isCached(page: number, age: number): boolean {
    const i = this.pos(page);
    if (this.addr[i] !== page) return false;
    this.age[i] = age;
    return true;
  }

  /** QEMU: get_cached_data. */
  get(page: number): number {
    return this.data[this.pos(page)]!;
  }

  /** QEMU: the memcpy into the cached copy after an encoding. */
  update(page: number, version: number): void {
    this.data[this.pos(page)] = version;
  }

  /** QEMU: cache_insert: false when the slot holds another page still fresh. */
  insert(page: number, version: number, age: number): boolean {
    const i = this.pos(page);
    const a = this.addr[i]!;
    if (a >= 0 && a !== page && this.age[i]! + CACHED_PAGE_LIFETIME > age) return false;
    this.addr[i] = page;
    this.age[i] = age;
    this.data[i] = version;
    return true;
  }
}

/** Bytes of n as ULEB128 (QEMU: uleb128_encode_small and its wider forms). */
function ulebBytes(n: number): number {
  let b = 1;
  while (n >= 128) {
    n = Math.floor(n / 128);
    b++;
  }
  return b;
}

/** Which line of a page a write changes (the model's rule): a hash of the page and the write's version. */
function lineOf(page: number, version: number, lines: number): number {
  let h = Math.imul(page ^ 0x5bd1e995, 0x9e3779b1) ^ Math.imul(version, 0x85ebca6b);
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return (h >>> 0) % lines;
}

/** A page's version cycles through 1 .. 2^32-1 (0 only before its first write: sim/guest/ram.ts). */
const VERSION_CYCLE = 2 ** 32 - 1;

/** Writes from version `from` to version `to`. */
function writesBetween(from: number, to: number): number {
  return to >= from ? to - from : to - from + VERSION_CYCLE;
}

/**
 * QEMU: xbzrle_encode_buffer's length for a page whose cached copy is at
 * version `from` and which is now at `to`, under the model's rule (header
 * comment): 0 unchanged, -1 when it would not fit in a page.
 */
export function encodedLength(page: number, from: number, to: number, pageSize: number, byteCounter: boolean): number {
  if (from === to) return 0;
  // One changed byte (the counter's, the page's first), or none once it wrapped back.
  if (byteCounter) return (from & 255) === (to & 255) ? 0 : ulebBytes(0) + ulebBytes(1) + 1;
  const lineBytes = Math.min(XBZRLE_WRITE_BYTES, pageSize);
  const lines = Math.max(1, Math.floor(pageSize / lineBytes));
  const writes = writesBetween(from, to);
  if (writes > XBZRLE_WRITES_PER_LINE_MAX * lines) return -1;
  const changed = new Uint8Array(lines);
  for (let j = 1; j <= writes; j++) changed[lineOf(page, ((from - 1 + j) % VERSION_CYCLE) + 1, lines)] = 1;
  let len = 0;
  let zrun = 0;
  let nzrun = 0;
  for (let i = 0; i < lines; i++) {
    if (changed[i]) {
      nzrun += lineBytes;
      continue;
    }
    if (nzrun > 0) {
      len += ulebBytes(zrun) + ulebBytes(nzrun) + nzrun;
      zrun = 0;
      nzrun = 0;
    }
    zrun += lineBytes;
  }
  // The last zero run is not encoded.
  if (nzrun > 0) len += ulebBytes(zrun) + ulebBytes(nzrun) + nzrun;
  return len > pageSize ? -1 : len;
}

/** The xbzrle-cache counters of query-migrate (XBZRLECacheStats). */
export interface XbzrleStats {
  readonly cache_size: number;
  readonly bytes: number;
  readonly pages: number;
  readonly cache_miss: number;
  readonly cache_miss_rate: number;
  readonly encoding_rate: number;
  readonly overflow: number;
}

/** QEMU: XBZRLE and xbzrle_counters (migration/ram.c). */
export class Xbzrle {
  readonly cache: PageCache;
  /** QEMU 9.2: rs->xbzrle_started (7.2: xbzrle_enabled): the first pass is complete. */
  started = false;
  /** QEMU: xbzrle_counters. bytes: encoded bytes without the page header; an overflow counts a whole page. */
  pages = 0;
  bytes = 0;
  cacheMiss = 0;
  overflow = 0;
  cacheMissRate = 0;
  encodingRate = 0;
  /** CPU time of the pages handled since the last takeCpuNs. */
  private cpuNs = 0;
  private missPrev = 0;
  private pagesPrev = 0;
  private bytesPrev = 0;

  constructor(
    readonly cacheSize: number,
    private readonly ram: GuestPages,
    private readonly host: HostCosts = HOST_COSTS_DEFAULT,
  ) {
    this.cache = new PageCache(cacheSize, ram.pageSize, ram.pages);
  }

  /**
   * QEMU: save_xbzrle_page, for a normal page. Returns the encoded length
   * (> 0: send that), 0 (unchanged: send nothing), or XBZRLE_MISS,
   * XBZRLE_MISS_CACHED, XBZRLE_OVERFLOW (send the page whole). `age` is the
   * dirty-sync count; `lastStage`: ram_save_complete's pass.
   */
  savePage(page: number, age: number, lastStage: boolean): number {
    const version = this.ram.version(page);
    if (!this.cache.isCached(page, age)) {
      this.cacheMiss++;
      const cached = !lastStage && this.cache.insert(page, version, age);
      // A cached miss copies the page into the cache too.
      this.cpuNs += cached ? 2 * this.host.page_send_ns : this.host.page_send_ns;
      return cached ? XBZRLE_MISS_CACHED : XBZRLE_MISS;
    }
    this.pages++;
    this.cpuNs += this.host.xbzrle_encode_ns;
    const len = encodedLength(page, this.cache.get(page), version, this.ram.pageSize, this.ram.isByteCounterPage(page));
    if (!lastStage && len !== 0) this.cache.update(page, version);
    if (len === 0) return 0;
    if (len < 0) {
      this.overflow++;
      this.bytes += this.ram.pageSize;
      this.cpuNs += this.host.page_send_ns;
      return XBZRLE_OVERFLOW;
    }
    this.bytes += len + XBZRLE_HEADER_BYTES;
    return len;
  }

  /** QEMU: xbzrle_cache_zero_page: a page sent as zero updates its slot, once started. */
  cacheZeroPage(page: number, age: number): void {
    if (this.started) this.cache.insert(page, this.ram.version(page), age);
  }

  /** The migration thread's CPU time for the pages handled since the last call. */
  takeCpuNs(): number {
    const ns = this.cpuNs;
    this.cpuNs = 0;
    return ns;
  }

  /** QEMU: the xbzrle part of migration_update_rates: rates over the pages sent since the last update. */
  updateRates(pagesSent: number): void {
    if (pagesSent <= 0) return;
    this.cacheMissRate = (this.cacheMiss - this.missPrev) / pagesSent;
    this.missPrev = this.cacheMiss;
    const encoded = this.bytes - this.bytesPrev;
    const unencoded = (this.pages - this.pagesPrev) * this.ram.pageSize;
    this.encodingRate = this.pages === this.pagesPrev || encoded === 0 ? 0 : unencoded / encoded;
    this.pagesPrev = this.pages;
    this.bytesPrev = this.bytes;
  }

  stats(): XbzrleStats {
    return {
      cache_size: this.cacheSize, bytes: this.bytes, pages: this.pages, cache_miss: this.cacheMiss,
      cache_miss_rate: this.cacheMissRate, encoding_rate: this.encodingRate, overflow: this.overflow,
    };
  }
}
