// Page content versions kept where they differ from what a caller can tell
// without them (an initial image, a received bitmap): a sparse map from
// page to a 32-bit version. Guest RAM (sim/guest/ram.ts) keeps the versions
// of the pages the guest wrote in one, and the destination's copy
// (sim/migration/page-versions.ts) the pages where it differs from the
// source's initial image, so memory grows with what was written, not with
// the guest's size.
// RAM is cut into chunks of 2^16 pages (256 MiB of 4 KiB pages), each with
// its own table: open addressing with linear probing, each key beside its
// value, deletion shifting back (no tombstones). Migration goes through
// memory in address order, so one chunk's table at a time is in use and
// stays in the cache, where one table for all would take a cache miss per
// page. A chunk whose table outgrows a share of its pages (an eighth, unless
// the owner says otherwise) turns dense (a
// version per page, its other pages filled in by the owner), which is
// smaller from there on.
import { bitmapNew, testBit } from './bitmap.ts';

/** log2 of the pages per chunk. */
export const CHUNK_SHIFT = 16;
/** A free slot's key: keys are the page's offset in its chunk + 1, so that a new (zeroed) table is empty as it is. */
const EMPTY = 0;
/** A chunk's first table, in slots (a power of two). */
const TABLE_MIN = 256;
/** The bytes of a chunk's first table: what a chunk with any entry costs at least. */
export const TABLE_MIN_BYTES = TABLE_MIN * 8;
/** The most bytes an entry takes: its 8-byte slot, in a table that grows at a load of a quarter. */
export const ENTRY_BYTES_MAX = 32;
const NO_TABLE = new Uint32Array(0);

/**
 * Gives a chunk turning dense the versions of its pages not listed:
 * `dense[i]` is page `first + i`. The listed pages are copied over them next.
 */
export type DenseFill = (dense: Uint32Array, first: number) => void;

export class VersionTable {
  readonly pages: number;
  readonly shift: number;
  readonly chunkPages: number;
  /** Pages with an entry in their chunk's table (never set in a dense chunk). */
  readonly listed: Uint32Array;
  /**
   * Each chunk's table (slot i: key at [2i], the page's offset + 1, and
   * version at [2i + 1]), or its dense versions (dense[c] set); hot loops
   * read it directly (array(c) is the same).
   */
  readonly tables: Uint32Array[];
  /** 1 for a dense chunk. */
  readonly dense: Uint8Array;
  private readonly counts: Int32Array;
  private total = 0;
  private denseChunks = 0;

  /**
   * chunkShift: log2 of the pages per chunk (tests use small chunks);
   * denseShift: a chunk turns dense once its table would list more than
   * 2^-denseShift of its pages.
   */
  constructor(pages: number, private readonly fill: DenseFill, chunkShift = CHUNK_SHIFT, private readonly denseShift = 3) {
    if (pages >= 0xffffffff) throw new RangeError(`${pages} pages: page numbers must stay below 2^32 - 1`);
    if (chunkShift < 5) throw new RangeError(`chunks of 2^${chunkShift} pages: at least a word (2^5) each`);
    this.pages = pages;
    this.shift = chunkShift;
    this.chunkPages = 2 ** chunkShift;
    this.listed = bitmapNew(pages);
    const chunks = Math.ceil(pages / this.chunkPages);
    this.tables = new Array<Uint32Array>(chunks).fill(NO_TABLE);
    this.counts = new Int32Array(chunks);
    this.dense = new Uint8Array(chunks);
  }

  /** Every chunk keeps a version per page from now on (while none has entries yet: a guest small enough for it). */
  allDense(): void {
    for (let c = 0; c < this.tables.length; c++) if (this.dense[c] === 0) this.toDense(c);
  }

  get chunks(): number {
    return this.tables.length;
  }

  /** Pages listed in the tables of the chunks not dense. */
  get entries(): number {
    return this.total;
  }

  /** Chunks that keep a version per page. */
  get denseCount(): number {
    return this.denseChunks;
  }

  /** Bytes of the listed bitmap, the chunks' tables and dense arrays. */
  get bytes(): number {
    return this.listed.byteLength + this.tableBytes;
  }

  /** Bytes of the chunks' tables and dense arrays. */
  get tableBytes(): number {
    let n = 0;
    for (const t of this.tables) n += t.byteLength;
    return n;
  }

  isDense(c: number): boolean {
    return this.dense[c] === 1;
  }

  /** Chunk c's array: its dense versions (isDense), else its table (key at [2i], the page's offset + 1; version at [2i + 1]). */
  array(c: number): Uint32Array {
    return this.tables[c]!;
  }

  /**
   * Where page's version is in array(page >>> shift): its offset in a
   * dense chunk, its table slot's version for a listed page; -1 when the
   * table has no entry for it.
   */
  slot(page: number): number {
    const c = page >>> this.shift;
    const off = page & (this.chunkPages - 1);
    if (this.dense[c] === 1) return off;
    if (!testBit(this.listed, page)) return -1;
    return this.slotOf(c, off) + 1;
  }

  /** The version of a page in a dense chunk or listed; `none` for the others. */
  get(page: number, none: number): number {
    const i = this.slot(page);
    return i < 0 ? none : this.tables[page >>> this.shift]![i]!;
  }

  /** Page holds v: its entry in a dense chunk, its table entry updated, or a new entry (the chunk may turn dense). */
  put(page: number, v: number): void {
    const i = this.slot(page);
    const c = page >>> this.shift;
    if (i >= 0) {
      this.tables[c]![i] = v;
      return;
    }
    const n = this.counts[c]!;
    if ((n + 1) << this.denseShift > this.chunkPages) {
      this.toDense(c);
      this.tables[c]![page & (this.chunkPages - 1)] = v;
      return;
    }
    this.listed[page >>> 5] = this.listed[page >>> 5]! | (1 << (page & 31));
    if (4 * (n + 1) > this.tables[c]!.length) this.resize(c, Math.max(TABLE_MIN, this.tables[c]!.length));
    this.insert(this.tables[c]!, (page & (this.chunkPages - 1)) + 1, v);
    this.counts[c] = n + 1;
    this.total++;
  }

  /** A listed page's entry goes (a page of a dense chunk keeps its version). */
  remove(page: number): void {
    if (!testBit(this.listed, page)) return;
    const c = page >>> this.shift;
    const t = this.tables[c]!;
    const mask = t.length - 1;
    const slots = t.length >>> 1;
    let gap = this.slotOf(c, page & (this.chunkPages - 1));
    let i = gap;
    for (;;) {
      i = (i + 2) & mask;
      const k = t[i]!;
      if (k === EMPTY) break;
      // An entry may fill the gap unless its home slot lies after the gap, up to it (cyclically).
      const home = VersionTable.home(k, slots);
      if (((i - home) & mask) >= ((i - gap) & mask)) {
        t[gap] = k;
        t[gap + 1] = t[i + 1]!;
        gap = i;
      }
    }
    t[gap] = EMPTY;
    this.listed[page >>> 5] = this.listed[page >>> 5]! & ~(1 << (page & 31));
    this.counts[c]!--;
    this.total--;
  }

  /** A copy that goes its own way from here (a snapshot). */
  clone(fill: DenseFill = this.fill): VersionTable {
    const t = new VersionTable(this.pages, fill, this.shift, this.denseShift);
    t.listed.set(this.listed);
    for (let c = 0; c < this.tables.length; c++) t.tables[c] = this.tables[c]!.length > 0 ? this.tables[c]!.slice() : NO_TABLE;
    t.counts.set(this.counts);
    t.dense.set(this.dense);
    t.total = this.total;
    t.denseChunks = this.denseChunks;
    return t;
  }

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
    let i = VersionTable.home(key, t.length >>> 1);
    while (t[i] !== key) i = (i + 2) & mask;
    return i;
  }

  /** Adds a key not in table, which has room. */
  private insert(t: Uint32Array, key: number, v: number): void {
    const mask = t.length - 1;
    let i = VersionTable.home(key, t.length >>> 1);
    while (t[i] !== EMPTY) i = (i + 2) & mask;
    t[i] = key;
    t[i + 1] = v;
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
    this.fill(d, first);
    const t = this.tables[c]!;
    for (let i = 0; i < t.length; i += 2) if (t[i] !== EMPTY) d[t[i]! - 1] = t[i + 1]!;
    this.listed.fill(0, first >>> 5, Math.ceil((first + d.length) / 32));
    this.tables[c] = d;
    this.dense[c] = 1;
    this.total -= this.counts[c]!;
    this.counts[c] = 0;
    this.denseChunks++;
  }
}
