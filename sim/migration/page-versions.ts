// The destination's copy of guest RAM, as content versions (sim/guest/ram.ts),
// kept as differences from the source's initial image: a page the
// destination received holds the version the source started with (1 for
// the populated pages, 0 for the rest) unless its chunk's table says
// otherwise; a page it never received holds 0 (nothing), again unless the
// table says otherwise. Most pages a migration sends went out unchanged
// since the guest started (the first pass over a booted guest), so a 1 TiB
// destination costs two bitmaps and tables of the pages the guest had
// rewritten, not 1 GiB of versions.
// The tables are a VersionTable (sim/util/version-table.ts): one per chunk
// of 2^16 pages, a chunk turning dense once it lists an eighth of its pages.
// The comparisons work a word (32 pages) at a time: the pages the source
// never rewrote (GuestRam.modified clear) and no table names differ only
// where the destination lacks a populated page.
// Leaves out: the bytes of pages (the model has none).
import { bitmapNew, testBit, wordMaskBelow as populatedMask } from '../util/bitmap.ts';
import { CHUNK_SHIFT, VersionTable } from '../util/version-table.ts';
import type { RamImage as SourceImage } from '../guest/ram.ts';

export { CHUNK_SHIFT };

export class PageVersions {
  readonly pages: number;
  /** Pages received (set() once, or saved with a word). */
  private readonly received: Uint32Array;
  /** The pages whose version is not what the initial image and the received bitmap say. */
  private readonly table: VersionTable;

  /** chunkShift: log2 of the pages per chunk (tests use small chunks). */
  constructor(private readonly src: SourceImage, chunkShift = CHUNK_SHIFT) {
    this.pages = src.pages;
    // A chunk turning dense: its received populated pages at 1, the others at 0.
    this.table = new VersionTable(src.pages, (d, first) => {
      const populated = src.populatedPages;
      for (let w = first >>> 5, end = Math.ceil((first + d.length) / 32); w < end; w++) {
        const have = this.received[w]! & populatedMask(w, populated);
        for (let i = 0; i < 32; i++) if ((have >>> i) & 1) d[w * 32 + i - first] = 1;
      }
    }, chunkShift);
    this.received = bitmapNew(this.pages);
  }

  /** Pages listed in the tables: their version is not what the initial image and the received bitmap say. */
  get exceptions(): number {
    return this.table.entries;
  }

  /** Chunks that keep a version per page. */
  get denseCount(): number {
    return this.table.denseCount;
  }

  /** Bytes this copy holds now: its two bitmaps and tableBytes. */
  get bytes(): number {
    return this.received.byteLength + this.table.bytes;
  }

  /** Bytes of the chunks' tables and dense arrays. */
  get tableBytes(): number {
    return this.table.tableBytes;
  }

  /** Every page's version, as one array (for tests and reports; a dense copy costs 4 bytes per page). */
  toArray(): Uint32Array {
    const a = new Uint32Array(this.pages);
    for (let p = 0; p < this.pages; p++) a[p] = this.get(p);
    return a;
  }

  /** The destination's version of page. */
  get(page: number): number {
    const i = this.table.slot(page);
    if (i >= 0) return this.table.array(page >>> this.table.shift)[i]!;
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
    const src = this.src;
    this.received[w] = -1;
    const c = base >>> this.table.shift;
    if (this.table.isDense(c)) {
      src.versionsInto(base, Math.min(32, this.pages - base), this.table.array(c), base & (this.table.chunkPages - 1));
      return;
    }
    let todo = src.modified[w]! | this.table.listed[w]!;
    while (todo !== 0) {
      const i = 31 - Math.clz32(todo & -todo);
      todo &= todo - 1;
      this.note(base + i, w, 1 << i, src.version(base + i));
    }
  }

  /**
   * The pages of word w where this copy and versions differ, as a mask,
   * versions being the source, or a snapshot of it taken earlier.
   */
  diffMask(w: number, versions: SourceImage = this.src): number {
    const base = w * 32;
    const t = this.table;
    const c = base >>> t.shift;
    const arr = t.array(c);
    let mask = 0;
    if (t.isDense(c)) {
      const off = base & (t.chunkPages - 1);
      for (let i = 0, last = Math.min(32, this.pages - base); i < last; i++) if (arr[off + i] !== versions.version(base + i)) mask |= 1 << i;
      return mask;
    }
    const listed = t.listed[w]!;
    const received = this.received[w]!;
    const populated = populatedMask(w, this.src.populatedPages);
    let todo = versions.modified[w]! | listed;
    // The other pages hold their initial version at the source, and here once received.
    mask = ~received & populated & ~todo;
    while (todo !== 0) {
      const i = 31 - Math.clz32(todo & -todo);
      todo &= todo - 1;
      const mine = (listed >>> i) & 1 ? arr[t.slot(base + i)]! : ((received & populated) >>> i) & 1;
      if (mine !== versions.version(base + i)) mask |= 1 << i;
    }
    return mask;
  }

  /**
   * The first page where this copy and versions differ, outside skip's
   * bits; -1 when none does. Chunk by chunk: the listed pages from the
   * chunk's table, the others from the bitmaps, a word at a time.
   */
  firstDifference(versions: SourceImage = this.src, skip: Uint32Array | null = null): number {
    const t = this.table;
    const modified = versions.modified;
    const listed = t.listed;
    const received = this.received;
    const populatedPages = this.src.populatedPages;
    const wordsPerChunk = t.chunkPages >>> 5;
    const totalWords = received.length;
    for (let c = 0; c < t.chunks; c++) {
      const firstWord = c * wordsPerChunk;
      const endWord = Math.min(totalWords, firstWord + wordsPerChunk);
      const base = c * t.chunkPages;
      let first = -1;
      if (t.isDense(c)) {
        for (let w = firstWord; w < endWord && first < 0; w++) {
          let d = this.diffMask(w, versions);
          if (skip !== null) d &= ~skip[w]!;
          if (d !== 0) first = w * 32 + 31 - Math.clz32(d & -d);
        }
        if (first >= 0) return first;
        continue;
      }
      // The listed pages: their versions are in the table (a zero key is a free slot).
      const table = t.array(c);
      for (let i = 0; i < table.length; i += 2) {
        const key = table[i]!;
        if (key === 0) continue;
        const page = base + key - 1;
        if (table[i + 1] !== versions.version(page) && (first < 0 || page < first) && (skip === null || !testBit(skip, page))) first = page;
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
          if (((mine >>> i) & 1) !== versions.version(w * 32 + i)) d |= 1 << i;
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
    const t = this.table;
    if (v === this.initial(w, bit) && !t.isDense(page >>> t.shift)) t.remove(page);
    else t.put(page, v);
  }
}
