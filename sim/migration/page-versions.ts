// The destination's copy of guest RAM, as content versions (sim/guest/ram.ts),
// kept as differences from the source's initial image: a page the
// destination received holds the version the source started with (1 for
// the populated pages, 0 for the rest) unless its chunk's table says
// otherwise; a page it never received holds 0 (nothing), again unless the
// table says otherwise. Most pages a migration sends went out unchanged
// since the guest started (the first pass over a booted guest), so a 1 TiB
// destination costs two bitmaps and tables of the pages the guest had
// rewritten, not 1 GiB of versions.
// RAM is cut into chunks of 2^16 pages (256 MiB of 4 KiB pages), each with
// its own table: open addressing with linear probing, each key beside its
// value, deletion shifting back (no tombstones). Migration sends pages in
// address order, so one chunk's table at a time is in use and stays in the
// cache, where one table for all would take a cache miss per page. A chunk
// whose table outgrows an eighth of its pages turns dense (a version per
// page), which is smaller from there on. Either form gives the same answers.
// The comparisons work a word (32 pages) at a time: the pages the source
// never rewrote (GuestRam.modified clear) and no table names differ only
// where the destination lacks a populated page.
// Leaves out: the bytes of pages (the model has none).
import { bitmapNew, testBit, wordMaskBelow as populatedMask } from '../util/bitmap.ts';

/** The source RAM the destination copies: its versions and what it started with. */
export interface SourceImage {
  readonly pages: number;
  readonly versions: Uint32Array;
  /** Bit set: the page may have been written since its initial version (never cleared). */
  readonly modified: Uint32Array;
  /** Pages [0, populatedPages) start at version 1, the others at 0. */
  readonly populatedPages: number;
}

/** log2 of the pages per chunk. */
export const CHUNK_SHIFT = 16;
/** A free slot's key: keys are the page's offset in its chunk + 1, so that a new (zeroed) table is empty as it is. */
const EMPTY = 0;
/** A chunk's first table, in slots (a power of two). */
const TABLE_MIN = 256;
const NO_TABLE = new Uint32Array(0);

export class PageVersions {
  readonly pages: number;
  /** Pages received (set() once, or saved with a word). */
  private readonly received: Uint32Array;
  /** Pages whose version is in their chunk's table (unused in a dense chunk). */
  private readonly listed: Uint32Array;
  private readonly shift: number;
  private readonly chunkPages: number;
  /** Each chunk's table (slot i: key at [2i], version at [2i + 1]), or its dense versions (dense[c] set). */
  private readonly tables: Uint32Array[];
  private readonly counts: Int32Array;
  private readonly dense: Uint8Array;
  private total = 0;
  private denseChunks = 0;

  /** chunkShift: log2 of the pages per chunk (tests use small chunks). */
  constructor(private readonly src: SourceImage, chunkShift = CHUNK_SHIFT) {
    if (src.pages >= 0xffffffff) throw new RangeError(`${src.pages} pages: page numbers must stay below 2^32 - 1`);
    if (chunkShift < 5) throw new RangeError(`chunks of 2^${chunkShift} pages: at least a word (2^5) each`);
    this.pages = src.pages;
    this.received = bitmapNew(this.pages);
    this.listed = bitmapNew(this.pages);
    this.shift = chunkShift;
    this.chunkPages = 2 ** chunkShift;
    const chunks = Math.ceil(this.pages / this.chunkPages);
    this.tables = new Array<Uint32Array>(chunks).fill(NO_TABLE);
    this.counts = new Int32Array(chunks);
    this.dense = new Uint8Array(chunks);
  }

  /** Pages listed in the tables: their version is not what the initial image and the received bitmap say. */
  get exceptions(): number {
    return this.total;
  }

  /** Chunks that keep a version per page. */
  get denseCount(): number {
    return this.denseChunks;
  }

  /** Bytes this copy holds now: its two bitmaps and tableBytes. */
  get bytes(): number {
    return this.received.byteLength + this.listed.byteLength + this.tableBytes;
  }

  /** Bytes of the chunks' tables and dense arrays. */
  get tableBytes(): number {
    let n = 0;
    for (const t of this.tables) n += t.byteLength;
    return n;
  }

  /** Every page's version, as one array (for tests and reports; a dense copy costs 4 bytes per page). */
  toArray(): Uint32Array {
    const a = new Uint32Array(this.pages);
    for (let p = 0; p < this.pages; p++) a[p] = this.get(p);
    return a;
  }

  /** The destination's version of page. */
  get(page: number): number {
    const c = page >>> this.shift;
    const off = page & (this.chunkPages - 1);
    if (this.dense[c] === 1) return this.tables[c]![off]!;
    if (testBit(this.listed, page)) return this.tables[c]![this.slotOf(c, off) + 1]!;
    return testBit(this.received, page) ? this.initial(page >>> 5, 1 << (page & 31)) : 0;
  }

  /** Page arrives with version v. */
  set(page: number, v: number): void {
    const w = page >>> 5;
    const bit = 1 << (page & 31);
    this.received[w] = this.received[w]! | bit;
    this.note(page, w, bit, v);
  }

  /**
   * The 32 pages of word w arrive as the source has them now. A word the
   * source never rewrote and no table names costs two stores.
   */
  copyWord(w: number): void {
    const base = w * 32;
    const c = base >>> this.shift;
    const sv = this.src.versions;
    this.received[w] = -1;
    if (this.dense[c] === 1) {
      const off = base & (this.chunkPages - 1);
      this.tables[c]!.set(sv.subarray(base, Math.min(base + 32, this.pages)), off);
      return;
    }
    let todo = this.src.modified[w]! | this.listed[w]!;
    while (todo !== 0) {
      const i = 31 - Math.clz32(todo & -todo);
      todo &= todo - 1;
      this.note(base + i, w, 1 << i, sv[base + i]!);
    }
  }

  /**
   * The pages of word w where this copy and versions differ, as a mask,
   * versions being the source's, or a copy of them taken earlier
   * (src.modified is then a superset of what was modified by that time).
   */
  diffMask(w: number, versions: Uint32Array = this.src.versions): number {
    const base = w * 32;
    const c = base >>> this.shift;
    const table = this.tables[c]!;
    let mask = 0;
    if (this.dense[c] === 1) {
      const off = base & (this.chunkPages - 1);
      for (let i = 0, last = Math.min(32, this.pages - base); i < last; i++) if (table[off + i] !== versions[base + i]) mask |= 1 << i;
      return mask;
    }
    const listed = this.listed[w]!;
    const received = this.received[w]!;
    const populated = populatedMask(w, this.src.populatedPages);
    let todo = this.src.modified[w]! | listed;
    // The other pages hold their initial version at the source, and here once received.
    mask = ~received & populated & ~todo;
    while (todo !== 0) {
      const i = 31 - Math.clz32(todo & -todo);
      todo &= todo - 1;
      const mine = (listed >>> i) & 1 ? table[this.slotOf(c, (base + i) & (this.chunkPages - 1)) + 1]! : ((received & populated) >>> i) & 1;
      if (mine !== versions[base + i]) mask |= 1 << i;
    }
    return mask;
  }

  /**
   * The first page where this copy and versions differ, outside skip's
   * bits; -1 when none does. Chunk by chunk: the listed pages from the
   * chunk's table, the others from the bitmaps, a word at a time.
   */
  firstDifference(versions: Uint32Array = this.src.versions, skip: Uint32Array | null = null): number {
    const modified = this.src.modified;
    const listed = this.listed;
    const received = this.received;
    const populatedPages = this.src.populatedPages;
    const wordsPerChunk = this.chunkPages >>> 5;
    const totalWords = received.length;
    for (let c = 0; c < this.tables.length; c++) {
      const firstWord = c * wordsPerChunk;
      const endWord = Math.min(totalWords, firstWord + wordsPerChunk);
      const base = c * this.chunkPages;
      const t = this.tables[c]!;
      let first = -1;
      if (this.dense[c] === 1) {
        for (let w = firstWord; w < endWord && first < 0; w++) {
          let d = this.diffMask(w, versions);
          if (skip !== null) d &= ~skip[w]!;
          if (d !== 0) first = w * 32 + 31 - Math.clz32(d & -d);
        }
        if (first >= 0) return first;
        continue;
      }
      // The listed pages: their versions are in the table.
      for (let i = 0; i < t.length; i += 2) {
        const key = t[i]!;
        if (key === EMPTY) continue;
        const page = base + key - 1;
        if (t[i + 1] !== versions[page] && (first < 0 || page < first) && (skip === null || !testBit(skip, page))) first = page;
      }
      // The others: at their initial version here once received, and at the source unless modified.
      for (let w = firstWord, end = first < 0 ? endWord : (first >>> 5) + 1; w < end; w++) {
        const populated = populatedMask(w, populatedPages);
        const others = ~listed[w]!;
        const mine = received[w]! & populated;
        let d = (mine ^ populated) & ~modified[w]! & others;
        let todo = modified[w]! & others;
        while (todo !== 0) {
          const i = 31 - Math.clz32(todo & -todo);
          todo &= todo - 1;
          if (((mine >>> i) & 1) !== versions[w * 32 + i]) d |= 1 << i;
        }
        if (skip !== null) d &= ~skip[w]!;
        if (d !== 0) {
          const page = w * 32 + 31 - Math.clz32(d & -d);
          return first < 0 || page < first ? page : first;
        }
      }
      if (first >= 0) return first;
    }
    return -1;
  }

  /** The initial version of the page that is bit of word w: 1 if populated, else 0. */
  private initial(w: number, bit: number): number {
    return (populatedMask(w, this.src.populatedPages) & bit) !== 0 ? 1 : 0;
  }

  /** Page (bit of word w) now holds v, received: listed if that is not what the bitmaps say. */
  private note(page: number, w: number, bit: number, v: number): void {
    const c = page >>> this.shift;
    const off = page & (this.chunkPages - 1);
    if (this.dense[c] === 1) {
      this.tables[c]![off] = v;
      return;
    }
    const isListed = (this.listed[w]! & bit) !== 0;
    if (v === this.initial(w, bit)) {
      if (isListed) {
        this.remove(c, off);
        this.listed[w] = this.listed[w]! & ~bit;
      }
      return;
    }
    if (isListed) {
      this.tables[c]![this.slotOf(c, off) + 1] = v;
      return;
    }
    const n = this.counts[c]!;
    if (8 * (n + 1) > this.chunkPages) {
      this.toDense(c);
      this.tables[c]![off] = v;
      return;
    }
    this.listed[w] = this.listed[w]! | bit;
    if (4 * (n + 1) > this.tables[c]!.length) this.resize(c, Math.max(TABLE_MIN, this.tables[c]!.length));
    this.insert(this.tables[c]!, off + 1, v);
    this.counts[c] = n + 1;
    this.total++;
  }

  // --- a chunk's table ---------------------------------------------------

  /** The home slot of a key in a table of `slots` slots (a power of two), as an index into the table. */
  private static home(key: number, slots: number): number {
    // Fibonacci hashing: the top log2(slots) bits of key * 2^32 / phi.
    return (Math.imul(key, 0x9e3779b1) >>> (Math.clz32(slots) + 1)) << 1;
  }

  /** The index into chunk c's table of the slot of a listed page (its offset in the chunk). */
  private slotOf(c: number, off: number): number {
    const t = this.tables[c]!;
    const mask = t.length - 1;
    const key = off + 1;
    let i = PageVersions.home(key, t.length >>> 1);
    while (t[i] !== key) i = (i + 2) & mask;
    return i;
  }

  /** Adds a key not in table, which has room. */
  private insert(t: Uint32Array, key: number, v: number): void {
    const mask = t.length - 1;
    let i = PageVersions.home(key, t.length >>> 1);
    while (t[i] !== EMPTY) i = (i + 2) & mask;
    t[i] = key;
    t[i + 1] = v;
  }

  /** Removes a listed page from chunk c, moving later entries of its probe run back into the gap. */
  private remove(c: number, off: number): void {
    const t = this.tables[c]!;
    const mask = t.length - 1;
    const slots = t.length >>> 1;
    let gap = this.slotOf(c, off);
    let i = gap;
    for (;;) {
      i = (i + 2) & mask;
      const k = t[i]!;
      if (k === EMPTY) break;
      // An entry may fill the gap unless its home slot lies after the gap, up to it (cyclically).
      const home = PageVersions.home(k, slots);
      if (((i - home) & mask) >= ((i - gap) & mask)) {
        t[gap] = k;
        t[gap + 1] = t[i + 1]!;
        gap = i;
      }
    }
    t[gap] = EMPTY;
    this.counts[c]!--;
    this.total--;
  }

  /** Gives chunk c a table of `slots` slots holding its entries. */
  private resize(c: number, slots: number): void {
    const old = this.tables[c]!;
    const t = new Uint32Array(2 * slots);
    for (let i = 0; i < old.length; i += 2) if (old[i] !== EMPTY) this.insert(t, old[i]!, old[i + 1]!);
    this.tables[c] = t;
  }

  /** Chunk c keeps a version per page from now on; its table is done with. */
  private toDense(c: number): void {
    const first = c * this.chunkPages;
    const d = new Uint32Array(Math.min(this.chunkPages, this.pages - first));
    const populated = this.src.populatedPages;
    for (let w = first >>> 5, end = Math.ceil((first + d.length) / 32); w < end; w++) {
      const have = this.received[w]! & populatedMask(w, populated);
      for (let i = 0; i < 32; i++) if ((have >>> i) & 1) d[w * 32 + i - first] = 1;
      this.listed[w] = 0;
    }
    const t = this.tables[c]!;
    for (let i = 0; i < t.length; i += 2) if (t[i] !== EMPTY) d[t[i]! - 1] = t[i + 1]!;
    this.tables[c] = d;
    this.dense[c] = 1;
    this.total -= this.counts[c]!;
    this.counts[c] = 0;
    this.denseChunks++;
  }
}
