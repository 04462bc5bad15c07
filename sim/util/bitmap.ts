// Word bitmaps for migration: the migration bitmap, the KVM dirty log, and
// migration_bitmap_sync's word-wise xchg / OR / popcount between them.
//
// A bitmap is a Uint32Array over little-endian memory: bit i is bit (i & 31)
// of word (i >>> 5). On x86-64 that is bit-for-bit the layout of QEMU's and
// KVM's `unsigned long` bitmaps (KVM_GET_DIRTY_LOG fills one), so a view of a
// buffer the kernel filled works with the same code. Bitmaps hold at most
// 2^32 bits (a 16 TiB guest of 4 KiB pages).
//
// Speed: plain typed-array loops run the sync of a 1 TiB guest's log about
// ten times slower than C (bench/bitmap.ts), so bitmapNew places bitmaps in
// one shared WebAssembly.Memory, and syncDirtyLog and countSetBits run a small
// SIMD module (sim/util/bitmap-simd.ts) when both bitmaps live there.
// Any other Uint32Array takes the plain loops: same results, slower. The
// memory grows by whole WebAssembly pages and never shrinks; bitmapFree
// returns a bitmap's bytes for reuse (QEMU's g_free of the bitmap).
//
// Left out: QEMU's DirtyMemoryBlocks chunking of the global dirty memory,
// RCU and atomics (one thread touches a bitmap at a time here), the VGA and
// CODE dirty clients, and host pages larger than target pages. (The
// clear_bmap that defers KVM_CLEAR_DIRTY_LOG is migration's, in
// sim/migration/ram.ts.)

import { arenaAlloc, arenaFree, BLOCK_WORDS, getArena, SIMD_MIN_WORDS } from './bitmap-simd.ts';

const WORD_BITS = 32;
const WORD_SHIFT = 5;
const WORD_MASK = 31;
const WORD_BYTES = 4;
/** Largest bitmap, in bits: page numbers stay below 2^32. */
export const BITMAP_BITS_MAX = 2 ** 32;

/** Bits per bitmap word (QEMU's BITS_PER_LONG is 64; the layout is the same on little-endian hosts). */
export const BITS_PER_WORD = WORD_BITS;

/** QEMU: BITS_TO_LONGS (include/qemu/bitops.h), counted in 32-bit words */
export function bitmapWords(pages: number): number {
  if (!Number.isSafeInteger(pages) || pages < 0 || pages > BITMAP_BITS_MAX) {
    throw new RangeError(`bitmapWords: pages must be an integer in [0, 2^32], got ${pages}`);
  }
  return Math.ceil(pages / WORD_BITS);
}

/**
 * QEMU: bitmap_new (include/qemu/bitmap.h); a zeroed bitmap of `pages` bits,
 * in the WebAssembly arena when it has room, else a plain Uint32Array.
 */
export function bitmapNew(pages: number): Uint32Array {
  const words = bitmapWords(pages);
  const arena = getArena();
  if (arena === null || words === 0) return new Uint32Array(words);
  return arenaAlloc(arena, words) ?? new Uint32Array(words);
}

/**
 * QEMU: g_free of a bitmap from bitmap_new (e.g. ram_save_cleanup, migration/ram.c).
 * Gives an arena bitmap's bytes back for reuse; neither it nor any view of it
 * may be used afterwards. A plain Uint32Array is left to the garbage collector.
 */
export function bitmapFree(bitmap: Uint32Array): void {
  const arena = getArena();
  if (arena === null || !arena.buffers.has(bitmap.buffer)) return;
  arenaFree(arena, bitmap);
}

/** True when the bitmap lives in the WebAssembly arena (so the SIMD paths can run on it). */
export function bitmapInArena(bitmap: Uint32Array): boolean {
  const arena = getArena();
  return arena !== null && arena.buffers.has(bitmap.buffer);
}

/** The bits of word w that are below bit n of the bitmap (bits 0 .. n - 1), as a mask. */
export function wordMaskBelow(w: number, n: number): number {
  const k = n - w * WORD_BITS;
  return k >= WORD_BITS ? -1 : k <= 0 ? 0 : (1 << k) - 1;
}

/** QEMU: ctpop32 (include/qemu/host-utils.h) */
export function popcount32(v: number): number {
  v = v - ((v >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
}

/** QEMU: bitmap_count_one (include/qemu/bitmap.h); counts the set bits in [0, nbits) */
export function countSetBits(bitmap: Uint32Array, nbits: number = bitmap.length * WORD_BITS): number {
  checkRange('countSetBits', bitmap, 0, nbits);
  const full = nbits >>> WORD_SHIFT;
  let n = 0;
  let w = 0;
  const arena = getArena();
  if (arena !== null && full >= SIMD_MIN_WORDS && arena.buffers.has(bitmap.buffer)) {
    const blockWords = full - (full % BLOCK_WORDS);
    n = arena.count(bitmap.byteOffset, blockWords * WORD_BYTES);
    w = blockWords;
  }
  for (; w < full; w++) {
    n += popcount32(bitmap[w]!);
  }
  const tail = nbits & WORD_MASK;
  if (tail !== 0) {
    n += popcount32(bitmap[full]! & lowMask(tail));
  }
  return n;
}

/** QEMU: test_bit (include/qemu/bitops.h) */
export function testBit(bitmap: Uint32Array, nr: number): boolean {
  return ((bitmap[nr >>> WORD_SHIFT]! >>> (nr & WORD_MASK)) & 1) !== 0;
}

/** QEMU: set_bit (include/qemu/bitops.h) */
export function setBit(bitmap: Uint32Array, nr: number): void {
  bitmap[nr >>> WORD_SHIFT]! |= 1 << (nr & WORD_MASK);
}

/** QEMU: clear_bit (include/qemu/bitops.h) */
export function clearBit(bitmap: Uint32Array, nr: number): void {
  bitmap[nr >>> WORD_SHIFT]! &= ~(1 << (nr & WORD_MASK));
}

/** QEMU: test_and_set_bit (include/qemu/bitops.h) */
export function testAndSetBit(bitmap: Uint32Array, nr: number): boolean {
  const w = nr >>> WORD_SHIFT;
  const mask = 1 << (nr & WORD_MASK);
  const old = bitmap[w]!;
  bitmap[w] = old | mask;
  return (old & mask) !== 0;
}

/** QEMU: test_and_clear_bit (include/qemu/bitops.h) */
export function testAndClearBit(bitmap: Uint32Array, nr: number): boolean {
  const w = nr >>> WORD_SHIFT;
  const mask = 1 << (nr & WORD_MASK);
  const old = bitmap[w]!;
  bitmap[w] = old & ~mask;
  return (old & mask) !== 0;
}

/** QEMU: bitmap_set (util/bitmap.c); sets bits [first, first + count) */
export function setRange(bitmap: Uint32Array, first: number, count: number): void {
  checkRange('setRange', bitmap, first, count);
  if (count === 0) return;
  const last = first + count - 1;
  const w0 = first >>> WORD_SHIFT;
  const w1 = last >>> WORD_SHIFT;
  const head = highMask(first & WORD_MASK);
  const tail = lowMask((last & WORD_MASK) + 1);
  if (w0 === w1) {
    bitmap[w0]! |= head & tail;
    return;
  }
  bitmap[w0]! |= head;
  bitmap.fill(0xffffffff, w0 + 1, w1);
  bitmap[w1]! |= tail;
}

/**
 * QEMU: find_next_bit (util/bitops.c); the first set bit in [start, end), or
 * end if there is none (QEMU's argument order is (addr, size, offset)).
 */
export function findNextBit(bitmap: Uint32Array, start: number, end: number): number {
  if (!Number.isSafeInteger(end) || end < 0 || end > bitmap.length * WORD_BITS) {
    throw new RangeError(`findNextBit: end ${end} outside bitmap of ${bitmap.length * WORD_BITS} bits`);
  }
  if (!Number.isSafeInteger(start) || start < 0) {
    throw new RangeError(`findNextBit: start must be a non-negative integer, got ${start}`);
  }
  if (start >= end) return end;
  let w = start >>> WORD_SHIFT;
  const wLast = (end - 1) >>> WORD_SHIFT;
  let word = bitmap[w]! & highMask(start & WORD_MASK);
  while (word === 0) {
    if (w === wLast) return end;
    word = bitmap[++w]!;
  }
  const found = w * WORD_BITS + (31 - Math.clz32(word & -word));
  return found < end ? found : end;
}

/** Options of syncDirtyLog. */
export interface SyncOptions {
  /**
   * PLANTED FAULT, for tests only: clear the KVM log but neither set nor count
   * the pages that were not already in the migration bitmap, so every page
   * dirtied since the last sync is lost. The destination check must catch it.
   */
  readonly dropNew?: boolean;
}

/**
 * QEMU: cpu_physical_memory_sync_dirty_bitmap (include/exec/ram_addr.h), its
 * word path, as migration_bitmap_sync (migration/ram.c) calls it.
 *
 * Moves pages [firstPage, firstPage + pages) of the KVM dirty log into the
 * migration bitmap: each log word is read and zeroed (QEMU's
 * qatomic_xchg(&src, 0)), ORed into the migration bitmap, and the bits that
 * were not already set are counted, popcount(b & ~a). Returns that count: the
 * growth of migration_dirty_pages. Both bitmaps number pages the same way
 * (pass subarrays to line up a memslot's log with a RAMBlock's bitmap); bits
 * outside the range are left alone.
 */
export function syncDirtyLog(
  kvmLog: Uint32Array,
  migrationBitmap: Uint32Array,
  firstPage = 0,
  pages: number = kvmLog.length * WORD_BITS - firstPage,
  options: SyncOptions = {},
): number {
  checkRange('syncDirtyLog', kvmLog, firstPage, pages);
  checkRange('syncDirtyLog', migrationBitmap, firstPage, pages);
  if (pages === 0) return 0;
  const last = firstPage + pages - 1;
  const w0 = firstPage >>> WORD_SHIFT;
  const w1 = last >>> WORD_SHIFT;
  const head = highMask(firstPage & WORD_MASK);
  const tail = lowMask((last & WORD_MASK) + 1);
  if (options.dropNew === true) {
    return syncDroppingNew(kvmLog, w0, w1, head, tail);
  }
  if (w0 === w1) {
    return syncWordMasked(kvmLog, migrationBitmap, w0, head & tail);
  }
  let n = syncWordMasked(kvmLog, migrationBitmap, w0, head);
  let w = w0 + 1;
  const arena = getArena();
  if (
    arena !== null &&
    w1 - w >= SIMD_MIN_WORDS &&
    arena.buffers.has(kvmLog.buffer) &&
    arena.buffers.has(migrationBitmap.buffer)
  ) {
    const blockWords = (w1 - w) - ((w1 - w) % BLOCK_WORDS);
    n += arena.sync(
      kvmLog.byteOffset + w * WORD_BYTES,
      migrationBitmap.byteOffset + w * WORD_BYTES,
      blockWords * WORD_BYTES,
    );
    w += blockWords;
  }
  n += syncWords(kvmLog, migrationBitmap, w, w1);
  n += syncWordMasked(kvmLog, migrationBitmap, w1, tail);
  return n;
}

/**
 * QEMU 1.3: migration_bitmap_sync (arch_init.c), the per-page loop the talk
 * calls the current code: for each page, memory_region_test_and_clear_dirty
 * on the log, then migration_bitmap_set_dirty (test_and_set_bit, counted if
 * it was clear). Same arguments and results as syncDirtyLog.
 */
export function syncDirtyLogPerPage(
  kvmLog: Uint32Array,
  migrationBitmap: Uint32Array,
  firstPage = 0,
  pages: number = kvmLog.length * WORD_BITS - firstPage,
): number {
  checkRange('syncDirtyLogPerPage', kvmLog, firstPage, pages);
  checkRange('syncDirtyLogPerPage', migrationBitmap, firstPage, pages);
  const end = firstPage + pages;
  let n = 0;
  for (let page = firstPage; page < end; page++) {
    if (testAndClearBit(kvmLog, page)) {
      if (!testAndSetBit(migrationBitmap, page)) n++;
    }
  }
  return n;
}

// Whole words [from, to) in plain JS. A zero log word costs a load and a compare.
function syncWords(kvmLog: Uint32Array, migrationBitmap: Uint32Array, from: number, to: number): number {
  let n = 0;
  for (let w = from; w < to; w++) {
    const b = kvmLog[w]!;
    if (b !== 0) {
      kvmLog[w] = 0;
      const a = migrationBitmap[w]!;
      migrationBitmap[w] = a | b;
      n += popcount32(b & ~a);
    }
  }
  return n;
}

// The bits of word w under mask only.
function syncWordMasked(kvmLog: Uint32Array, migrationBitmap: Uint32Array, w: number, mask: number): number {
  const log = kvmLog[w]!;
  const b = log & mask;
  kvmLog[w] = log & ~mask;
  const a = migrationBitmap[w]!;
  migrationBitmap[w] = a | b;
  return popcount32(b & ~a);
}

// The planted fault: the log's bits in range are cleared, nothing is kept.
function syncDroppingNew(kvmLog: Uint32Array, w0: number, w1: number, head: number, tail: number): number {
  if (w0 === w1) {
    kvmLog[w0]! &= ~(head & tail);
    return 0;
  }
  kvmLog[w0]! &= ~head;
  kvmLog.fill(0, w0 + 1, w1);
  kvmLog[w1]! &= ~tail;
  return 0;
}

// Bits [0, n) of a word, n in 0..32.
function lowMask(n: number): number {
  return n >= WORD_BITS ? 0xffffffff : ((1 << n) - 1) >>> 0;
}

// Bits [n, 32) of a word, n in 0..31.
function highMask(n: number): number {
  return (0xffffffff << n) >>> 0;
}

function checkRange(what: string, bitmap: Uint32Array, first: number, count: number): void {
  if (!Number.isSafeInteger(first) || !Number.isSafeInteger(count) || first < 0 || count < 0) {
    throw new RangeError(`${what}: bad range first=${first} count=${count}`);
  }
  const bits = bitmap.length * WORD_BITS;
  if (first + count > bits || bits > BITMAP_BITS_MAX) {
    throw new RangeError(`${what}: range [${first}, ${first + count}) outside bitmap of ${bits} bits`);
  }
}
