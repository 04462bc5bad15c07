// The destination's copy of guest RAM, as content versions (sim/guest/ram.ts),
// kept as differences from the source's initial image: a page the
// destination received holds the version the source started with (1 for
// the populated pages, 0 for the rest) unless a table of exceptions says
// otherwise; a page it never received holds 0 (nothing), again unless the
// table says otherwise. Most pages a migration sends went out unchanged
// since the guest started (the first pass over a booted guest), so a 1 TiB
// destination costs two bitmaps and a table of the pages the guest had
// rewritten, not 1 GiB of versions. The table is open addressing with
// linear probing, each key beside its value (deletion shifts back, no
// tombstones); once it holds more
// than an eighth of the pages the copy turns dense (one version per page),
// which is smaller from there on. Either form gives the same answers.
// The comparisons work a word (32 pages) at a time: the pages the source
// never rewrote (GuestRam.modified clear) and the table does not name
// differ only where the destination lacks a populated page.
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

/** A free slot's key: keys are page + 1, so that a new (zeroed) table is empty as it is. */
const EMPTY = 0;
/** The table's first capacity, in entries (a power of two). */
const TABLE_MIN = 1024;

export class PageVersions {
  readonly pages: number;
  /** Pages received (set() once, or saved with a word). */
  private readonly received: Uint32Array;
  /** Pages whose version is in the table (or, dense, every page: the bitmap is then unused). */
  private readonly listed: Uint32Array;
  /** Slot i: the page + 1 at [2i] (EMPTY: none), its version at [2i + 1]. */
  private table: Uint32Array;
  /** Slots in the table (a power of two). */
  private capacity = TABLE_MIN;
  private count = 0;
  private shift: number;
  /** Every page's version, once the table outgrew an eighth of the pages; null until then. */
  private dense: Uint32Array | null = null;

  /** tableMax: exceptions above which the copy turns dense (default pages / 8). */
  constructor(private readonly src: SourceImage, private readonly tableMax = Math.floor(src.pages / 8)) {
    if (src.pages >= 0xffffffff) throw new RangeError(`${src.pages} pages: page numbers must stay below 2^32 - 1`);
    this.pages = src.pages;
    this.received = bitmapNew(this.pages);
    this.listed = bitmapNew(this.pages);
    this.table = new Uint32Array(2 * TABLE_MIN);
    this.shift = 32 - Math.log2(TABLE_MIN);
  }

  /** Pages whose version differs from what the initial image and the received bitmap say (0 once dense). */
  get exceptions(): number {
    return this.count;
  }

  /** True once the copy keeps a version per page. */
  get isDense(): boolean {
    return this.dense !== null;
  }

  /** Bytes this copy holds now: its two bitmaps and tableBytes. */
  get bytes(): number {
    return this.received.byteLength + this.listed.byteLength + this.tableBytes;
  }

  /** Bytes of the table, or of the dense array once there is one. */
  get tableBytes(): number {
    return this.table.byteLength + (this.dense?.byteLength ?? 0);
  }

  /** Every page's version, as one array (for tests and reports; a dense copy costs 4 bytes per page). */
  toArray(): Uint32Array {
    const a = new Uint32Array(this.pages);
    for (let p = 0; p < this.pages; p++) a[p] = this.get(p);
    return a;
  }

  /** The destination's version of page. */
  get(page: number): number {
    if (this.dense !== null) return this.dense[page]!;
    if (testBit(this.listed, page)) return this.table[this.slotOf(page) + 1]!;
    return testBit(this.received, page) ? this.initial(page) : 0;
  }

  /** Page arrives with version v. */
  set(page: number, v: number): void {
    if (this.dense !== null) {
      this.dense[page] = v;
      return;
    }
    const w = page >>> 5;
    const bit = 1 << (page & 31);
    this.received[w] = this.received[w]! | bit;
    this.note(page, w, bit, v);
  }

  /**
   * The 32 pages of word w arrive as the source has them now. A word the
   * source never rewrote and the table does not name costs two stores.
   */
  copyWord(w: number): void {
    const src = this.src;
    const base = w * 32;
    if (this.dense !== null) {
      this.dense.set(src.versions.subarray(base, base + 32), base);
      return;
    }
    this.received[w] = -1;
    let todo = src.modified[w]! | this.listed[w]!;
    if (todo === 0) return;
    const sv = src.versions;
    while (todo !== 0) {
      const i = 31 - Math.clz32(todo & -todo);
      todo &= todo - 1;
      this.note(base + i, w, 1 << i, sv[base + i]!);
      if (this.dense !== null) {
        // The table turned dense on the way: the rest of the word directly.
        (this.dense as Uint32Array).set(sv.subarray(base, base + 32), base);
        return;
      }
    }
  }

  /**
   * The pages of word w where this copy and versions differ, as a mask,
   * versions being the source's, or a copy of them taken earlier
   * (src.modified is then a superset of what was modified by that time).
   */
  diffMask(w: number, versions: Uint32Array = this.src.versions): number {
    const base = w * 32;
    if (this.dense !== null) {
      const d = this.dense;
      let mask = 0;
      for (let i = 0, last = Math.min(32, this.pages - base); i < last; i++) if (d[base + i] !== versions[base + i]) mask |= 1 << i;
      return mask;
    }
    const listed = this.listed[w]!;
    const received = this.received[w]!;
    const populated = populatedMask(w, this.src.populatedPages);
    let todo = this.src.modified[w]! | listed;
    // The other pages hold their initial version at the source, and here once received.
    let mask = ~received & populated & ~todo;
    while (todo !== 0) {
      const i = 31 - Math.clz32(todo & -todo);
      todo &= todo - 1;
      const mine = (listed >>> i) & 1 ? this.table[this.slotOf(base + i) + 1]! : (received & populated) >>> i & 1;
      if (mine !== versions[base + i]) mask |= 1 << i;
    }
    return mask;
  }

  /** The first page where this copy and versions differ, outside skip's bits; -1 when none does. */
  firstDifference(versions: Uint32Array = this.src.versions, skip: Uint32Array | null = null): number {
    const words = this.received.length;
    const modified = this.src.modified;
    const listed = this.listed;
    const received = this.received;
    // Words wholly populated: nothing to look at where no page was rewritten and all were received.
    const full = Math.min(words, Math.floor(this.src.populatedPages / 32));
    for (let w = 0; w < words; w++) {
      if (w < full && this.dense === null && (modified[w]! | listed[w]!) === 0 && received[w] === -1) continue;
      let d = this.diffMask(w, versions);
      if (skip !== null) d &= ~skip[w]!;
      if (d !== 0) return w * 32 + 31 - Math.clz32(d & -d);
    }
    return -1;
  }

  private initial(page: number): number {
    return (populatedMask(page >>> 5, this.src.populatedPages) >>> (page & 31)) & 1;
  }

  /** Page (bit of word w) now holds v, received: listed if that is not what the bitmaps say. */
  private note(page: number, w: number, bit: number, v: number): void {
    const isListed = (this.listed[w]! & bit) !== 0;
    if (v === ((populatedMask(w, this.src.populatedPages) & bit) !== 0 ? 1 : 0)) {
      if (isListed) {
        this.remove(page);
        this.listed[w] = this.listed[w]! & ~bit;
      }
      return;
    }
    if (isListed) {
      this.table[this.slotOf(page) + 1] = v;
      return;
    }
    if (this.count >= this.tableMax) {
      this.toDense();
      this.dense![page] = v;
      return;
    }
    this.listed[w] = this.listed[w]! | bit;
    if (2 * (this.count + 1) > this.capacity) this.resize(2 * this.capacity);
    this.insert(page + 1, v);
  }

  // --- the table ---------------------------------------------------------

  /** The home slot of a key (page + 1), as an index into table. */
  private home(key: number): number {
    return (Math.imul(key, 0x9e3779b1) >>> this.shift) << 1;
  }

  /** The index into table of a listed page's slot. */
  private slotOf(page: number): number {
    const t = this.table;
    const mask = 2 * this.capacity - 1;
    const key = page + 1;
    let i = this.home(key);
    while (t[i] !== key) i = (i + 2) & mask;
    return i;
  }

  /** Adds a key (page + 1) not in the table, which has room. */
  private insert(key: number, v: number): void {
    const t = this.table;
    const mask = 2 * this.capacity - 1;
    let i = this.home(key);
    while (t[i] !== EMPTY) i = (i + 2) & mask;
    t[i] = key;
    t[i + 1] = v;
    this.count++;
  }

  /** Removes a listed page, moving later entries of its probe run back into the gap. */
  private remove(page: number): void {
    const t = this.table;
    const mask = 2 * this.capacity - 1;
    let gap = this.slotOf(page);
    let i = gap;
    for (;;) {
      i = (i + 2) & mask;
      const k = t[i]!;
      if (k === EMPTY) break;
      // An entry may fill the gap unless its home slot lies after the gap, up to it (cyclically).
      const home = this.home(k);
      if (((i - home) & mask) >= ((i - gap) & mask)) {
        t[gap] = k;
        t[gap + 1] = t[i + 1]!;
        gap = i;
      }
    }
    t[gap] = EMPTY;
    this.count--;
  }

  private resize(capacity: number): void {
    const old = this.table;
    this.table = new Uint32Array(2 * capacity);
    this.capacity = capacity;
    this.shift = 32 - Math.log2(capacity);
    this.count = 0;
    for (let i = 0; i < old.length; i += 2) if (old[i] !== EMPTY) this.insert(old[i]!, old[i + 1]!);
  }

  /** Every page's version in one array; the table is done with (its bitmaps stay, unused). */
  private toDense(): void {
    const d = new Uint32Array(this.pages);
    const populated = this.src.populatedPages;
    for (let w = 0, words = this.received.length; w < words; w++) {
      const have = this.received[w]! & populatedMask(w, populated);
      if (have === 0) continue;
      const base = w * 32;
      for (let i = 0; i < 32; i++) if ((have >>> i) & 1) d[base + i] = 1;
    }
    const t = this.table;
    for (let i = 0; i < t.length; i += 2) if (t[i] !== EMPTY) d[t[i]! - 1] = t[i + 1]!;
    this.dense = d;
    this.table = new Uint32Array(0);
    this.capacity = 0;
    this.count = 0;
  }
}
