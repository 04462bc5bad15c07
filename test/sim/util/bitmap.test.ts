// Tests of sim/util/bitmap.ts: the word-wise dirty-log sync against the
// per-page loop and a bit-by-bit model, on seeded random bitmaps, for plain
// Uint32Arrays and for bitmaps in the WebAssembly arena; the bit helpers; the
// planted fault. Behaviour only: the timing lives in bench/bitmap.ts.

import { describe, expect, it } from 'vitest';
import {
  bitmapFree,
  bitmapInArena,
  bitmapNew,
  bitmapWords,
  clearBit,
  countSetBits,
  findNextBit,
  popcount32,
  setBit,
  setRange,
  syncDirtyLog,
  syncDirtyLogPerPage,
  testAndClearBit,
  testAndSetBit,
  testBit,
} from '../../../sim/util/bitmap.ts';

/** xorshift32: a tiny deterministic stream; the seed goes into every failure message. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

type Kind = 'plain' | 'arena';
const KINDS: Kind[] = ['plain', 'arena'];

function alloc(kind: Kind, pages: number): Uint32Array {
  return kind === 'arena' ? bitmapNew(pages) : new Uint32Array(bitmapWords(pages));
}

/** Each of the first `pages` bits set with probability `density`. */
function fillRandom(bitmap: Uint32Array, pages: number, density: number, next: () => number): void {
  const threshold = Math.floor(density * 2 ** 32);
  for (let page = 0; page < pages; page++) {
    if (next() < threshold) setBit(bitmap, page);
  }
}

function naiveTest(bitmap: Uint32Array, nr: number): boolean {
  return (Math.floor(bitmap[Math.floor(nr / 32)]! / 2 ** (nr % 32)) % 2) === 1;
}

function naivePopcount(v: number): number {
  let n = 0;
  for (let i = 0; i < 32; i++) n += (v >>> i) & 1;
  return n;
}

function firstDiff(a: Uint32Array, b: Uint32Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

describe('bitmapWords and bitmapNew', () => {
  it('counts 32-bit words and rejects bad sizes', () => {
    expect(bitmapWords(0)).toBe(0);
    expect(bitmapWords(1)).toBe(1);
    expect(bitmapWords(32)).toBe(1);
    expect(bitmapWords(33)).toBe(2);
    expect(bitmapWords(2 ** 28)).toBe(2 ** 23);
    expect(bitmapWords(2 ** 32)).toBe(2 ** 27);
    expect(() => bitmapWords(-1)).toThrow(RangeError);
    expect(() => bitmapWords(1.5)).toThrow(RangeError);
    expect(() => bitmapWords(2 ** 32 + 1)).toThrow(RangeError);
  });

  it('allocates zeroed arena bitmaps, also when reusing freed bytes', () => {
    const a = bitmapNew(4096);
    expect(bitmapInArena(a)).toBe(true);
    expect(a.length).toBe(128);
    a.fill(0xffffffff);
    const offset = a.byteOffset;
    bitmapFree(a);
    const b = bitmapNew(4096);
    expect(b.byteOffset).toBe(offset);
    expect(countSetBits(b)).toBe(0);
    bitmapFree(b);
  });

  it('refuses a double free and a subarray, ignores plain arrays', () => {
    const a = bitmapNew(1 << 12);
    expect(() => bitmapFree(a.subarray(4))).toThrow(/no live bitmap/);
    bitmapFree(a);
    expect(() => bitmapFree(a)).toThrow(/no live bitmap/);
    const plain = new Uint32Array(4);
    expect(bitmapInArena(plain)).toBe(false);
    expect(() => bitmapFree(plain)).not.toThrow();
  });

  it('keeps old views valid while the arena grows', () => {
    const small = bitmapNew(64);
    setBit(small, 63);
    const big = bitmapNew(2 ** 24); // 2 MiB: forces the memory to grow
    setBit(big, 2 ** 24 - 1);
    expect(testBit(small, 63)).toBe(true);
    expect(bitmapInArena(small) && bitmapInArena(big)).toBe(true);
    expect(countSetBits(big)).toBe(1);
    bitmapFree(big);
    bitmapFree(small);
  });
});

describe('bit helpers', () => {
  it('popcount32 matches a bit loop', () => {
    for (const v of [0, 1, 0x80000000, 0xffffffff, 0x55555555, 0xaaaaaaaa, 0x7fffffff, 0x01010101]) {
      expect(popcount32(v), `v=${v.toString(16)}`).toBe(naivePopcount(v));
    }
    const seed = 11;
    const next = rng(seed);
    for (let i = 0; i < 10000; i++) {
      const v = next();
      expect(popcount32(v), `seed ${seed}, v=${v.toString(16)}`).toBe(naivePopcount(v));
    }
  });

  it('test, set, clear, test-and-set and test-and-clear one bit, bit 31 included', () => {
    const bm = new Uint32Array(2);
    for (const nr of [0, 1, 31, 32, 63]) {
      expect(testBit(bm, nr)).toBe(false);
      setBit(bm, nr);
      expect(testBit(bm, nr)).toBe(true);
      expect(naiveTest(bm, nr)).toBe(true);
      expect(testAndClearBit(bm, nr)).toBe(true);
      expect(testAndClearBit(bm, nr)).toBe(false);
      expect(testAndSetBit(bm, nr)).toBe(false);
      expect(testAndSetBit(bm, nr)).toBe(true);
      clearBit(bm, nr);
      expect(testBit(bm, nr)).toBe(false);
    }
    expect(Array.from(bm)).toEqual([0, 0]);
    setBit(bm, 31);
    expect(bm[0]).toBe(0x80000000);
  });

  it('setRange sets exactly [first, first + count)', () => {
    const seed = 5;
    const next = rng(seed);
    for (let trial = 0; trial < 300; trial++) {
      const pages = 1 + (next() % 300);
      const bm = new Uint32Array(bitmapWords(pages));
      const first = next() % (pages + 1);
      const count = next() % (pages - first + 1);
      setRange(bm, first, count);
      for (let p = 0; p < bm.length * 32; p++) {
        const want = p >= first && p < first + count;
        if (testBit(bm, p) !== want) {
          expect.fail(`seed ${seed} trial ${trial}: setRange(${first}, ${count}) bit ${p} is ${!want}`);
        }
      }
    }
    expect(() => setRange(new Uint32Array(1), 30, 3)).toThrow(RangeError);
  });

  it.each(KINDS)('countSetBits counts bits below nbits only (%s)', (kind) => {
    const seed = 21;
    const next = rng(seed);
    for (const pages of [0, 1, 31, 32, 33, 2047, 2048, 4096 + 7, 65536 + 100]) {
      const bm = alloc(kind, pages + 40);
      fillRandom(bm, bm.length * 32, 0.3, next);
      let want = 0;
      for (let p = 0; p < pages; p++) if (naiveTest(bm, p)) want++;
      expect(countSetBits(bm, pages), `seed ${seed} pages ${pages}`).toBe(want);
      if (kind === 'arena') bitmapFree(bm);
    }
  });
});

describe('findNextBit', () => {
  it('finds nothing in an empty bitmap', () => {
    const bm = new Uint32Array(8);
    expect(findNextBit(bm, 0, 256)).toBe(256);
    expect(findNextBit(bm, 100, 200)).toBe(200);
    expect(findNextBit(new Uint32Array(0), 0, 0)).toBe(0);
  });

  it('handles start, end and word edges', () => {
    const bm = new Uint32Array(8);
    for (const p of [0, 31, 32, 100, 255]) setBit(bm, p);
    expect(findNextBit(bm, 0, 256)).toBe(0);
    expect(findNextBit(bm, 1, 256)).toBe(31);
    expect(findNextBit(bm, 31, 256)).toBe(31);
    expect(findNextBit(bm, 32, 256)).toBe(32);
    expect(findNextBit(bm, 33, 256)).toBe(100);
    expect(findNextBit(bm, 101, 256)).toBe(255);
    expect(findNextBit(bm, 101, 255)).toBe(255); // bit 255 is at end: not found
    expect(findNextBit(bm, 33, 100)).toBe(100); // a set bit right at end is excluded
    expect(findNextBit(bm, 33, 99)).toBe(99); // end inside a word with the set bit above it
    expect(findNextBit(bm, 50, 50)).toBe(50); // empty range
    expect(findNextBit(bm, 60, 40)).toBe(40); // start past end
    expect(() => findNextBit(bm, 0, 257)).toThrow(RangeError);
    expect(() => findNextBit(bm, -1, 10)).toThrow(RangeError);
  });

  it('matches a linear scan on random bitmaps', () => {
    const seed = 99;
    const next = rng(seed);
    for (let trial = 0; trial < 200; trial++) {
      const pages = 1 + (next() % 2000);
      const bm = new Uint32Array(bitmapWords(pages));
      fillRandom(bm, pages, [0.001, 0.01, 0.2][trial % 3]!, next);
      const start = next() % (pages + 1);
      const end = start + (next() % (pages - start + 1));
      let want = end;
      for (let p = start; p < end; p++) {
        if (naiveTest(bm, p)) {
          want = p;
          break;
        }
      }
      expect(findNextBit(bm, start, end), `seed ${seed} trial ${trial} [${start}, ${end})`).toBe(want);
    }
  });
});

describe('syncDirtyLog', () => {
  interface Case {
    pages: number;
    firstPage: number;
    count: number;
    logDensity: number;
    bitmapDensity: number;
  }

  // Word-aligned and not, short and long enough for the SIMD path, every density edge.
  const cases: Case[] = [];
  for (const [pages, firstPage, count] of [
    [1, 0, 1], [31, 0, 31], [32, 0, 32], [33, 0, 33], [100, 5, 3], [100, 37, 40],
    [1000, 0, 1000], [1000, 1, 998], [4096, 0, 4096], [4096, 32, 4064], [5000, 17, 4950],
    [70000, 0, 70000], [70001, 1023, 65000], [2 ** 17 + 5, 3, 2 ** 17],
  ] as const) {
    for (const [logDensity, bitmapDensity] of [[0, 0.5], [0.01, 0.01], [0.1, 0.3], [0.5, 0.5], [1, 0.2], [0.3, 1]] as const) {
      cases.push({ pages, firstPage, count, logDensity, bitmapDensity });
    }
  }

  it.each(KINDS)('equals the per-page loop and the bit model on random bitmaps (%s)', (kind) => {
    let seed = 1000;
    for (const c of cases) {
      seed++;
      const next = rng(seed);
      const where = `seed ${seed} kind ${kind} pages ${c.pages} range [${c.firstPage}, +${c.count}) density ${c.logDensity}/${c.bitmapDensity}`;
      const log = alloc(kind, c.pages);
      const bmap = alloc(kind, c.pages);
      fillRandom(log, log.length * 32, c.logDensity, next);
      fillRandom(bmap, bmap.length * 32, c.bitmapDensity, next);
      const logBefore = log.slice();
      const bmapBefore = bmap.slice();
      const refLog = log.slice();
      const refBmap = bmap.slice();

      const n = syncDirtyLog(log, bmap, c.firstPage, c.count);
      const nRef = syncDirtyLogPerPage(refLog, refBmap, c.firstPage, c.count);

      // The bit model: inside the range the log is cleared and ORed in;
      // a page counts when it was in the log and not in the bitmap.
      let newly = 0;
      for (let p = 0; p < log.length * 32; p++) {
        const inRange = p >= c.firstPage && p < c.firstPage + c.count;
        const b = naiveTest(logBefore, p);
        const a = naiveTest(bmapBefore, p);
        if (inRange && b && !a) newly++;
        if (naiveTest(log, p) !== (inRange ? false : b)) expect.fail(`${where}: log bit ${p}`);
        if (naiveTest(bmap, p) !== (inRange ? a || b : a)) expect.fail(`${where}: bitmap bit ${p}`);
      }
      expect(n, where).toBe(newly);
      expect(nRef, where).toBe(newly);
      expect(firstDiff(log, refLog), where).toBe(-1);
      expect(firstDiff(bmap, refBmap), where).toBe(-1);
      if (kind === 'arena') {
        bitmapFree(bmap);
        bitmapFree(log);
      }
    }
  });

  it('takes the SIMD path for arena bitmaps, with mixed kinds falling back to plain loops', () => {
    const seed = 77;
    const next = rng(seed);
    const pages = 1 << 16;
    const log = bitmapNew(pages);
    const bmap = bitmapNew(pages);
    expect(bitmapInArena(log) && bitmapInArena(bmap)).toBe(true);
    fillRandom(log, pages, 0.1, next);
    fillRandom(bmap, pages, 0.1, next);
    const plainLog = log.slice();
    const plainBmap = bmap.slice();
    const mixedBmap = bmap.slice();
    const mixedLog = bitmapNew(pages);
    mixedLog.set(log);
    const n = syncDirtyLog(log, bmap);
    expect(syncDirtyLog(plainLog, plainBmap), `seed ${seed}`).toBe(n);
    expect(syncDirtyLog(mixedLog, mixedBmap), `seed ${seed}`).toBe(n);
    expect(firstDiff(bmap, plainBmap), `seed ${seed}`).toBe(-1);
    expect(firstDiff(bmap, mixedBmap), `seed ${seed}`).toBe(-1);
    bitmapFree(mixedLog);
    bitmapFree(bmap);
    bitmapFree(log);
  });

  it.each(KINDS)('clears the log, so a second sync finds nothing (%s)', (kind) => {
    const seed = 3;
    const next = rng(seed);
    const pages = 10000;
    const log = alloc(kind, pages);
    const bmap = alloc(kind, pages);
    fillRandom(log, pages, 0.2, next);
    const dirty = countSetBits(log);
    expect(dirty).toBeGreaterThan(0);
    expect(syncDirtyLog(log, bmap), `seed ${seed}`).toBe(dirty);
    expect(countSetBits(log)).toBe(0);
    expect(countSetBits(bmap)).toBe(dirty);
    expect(syncDirtyLog(log, bmap)).toBe(0);
    if (kind === 'arena') {
      bitmapFree(bmap);
      bitmapFree(log);
    }
  });

  it.each(KINDS)('counts only bits that were not already set (%s)', (kind) => {
    const pages = 8192;
    const log = alloc(kind, pages);
    const bmap = alloc(kind, pages);
    setRange(log, 0, pages);
    setRange(bmap, 0, pages);
    expect(syncDirtyLog(log, bmap)).toBe(0);
    expect(countSetBits(log)).toBe(0);
    expect(countSetBits(bmap)).toBe(pages);

    bmap.fill(0);
    setRange(bmap, 0, 5000);
    setRange(log, 4000, 3000); // 1000 already set, 2000 new
    expect(syncDirtyLog(log, bmap)).toBe(2000);
    expect(countSetBits(bmap)).toBe(7000);
    if (kind === 'arena') {
      bitmapFree(bmap);
      bitmapFree(log);
    }
  });

  it('leaves bits outside the range alone and checks the range', () => {
    const log = new Uint32Array(4).fill(0xffffffff);
    const bmap = new Uint32Array(4);
    expect(syncDirtyLog(log, bmap, 40, 0)).toBe(0);
    expect(syncDirtyLog(log, bmap, 40, 50)).toBe(50);
    expect(countSetBits(log)).toBe(128 - 50);
    expect(findNextBit(bmap, 0, 128)).toBe(40);
    expect(findNextBit(log, 40, 128)).toBe(90);
    expect(syncDirtyLog(log, bmap, 128)).toBe(0); // empty range at the very end
    expect(() => syncDirtyLog(log, bmap, 100, 29)).toThrow(RangeError);
    expect(() => syncDirtyLog(log, new Uint32Array(2), 0, 100)).toThrow(RangeError);
    expect(() => syncDirtyLogPerPage(log, bmap, -1, 1)).toThrow(RangeError);
  });
});

describe('the planted fault: syncDirtyLog(..., { dropNew: true })', () => {
  it.each(KINDS)('clears the log but loses every newly dirtied page (%s)', (kind) => {
    const seed = 4242;
    const next = rng(seed);
    const pages = 50000;
    const log = alloc(kind, pages);
    const bmap = alloc(kind, pages);
    fillRandom(log, pages, 0.1, next);
    fillRandom(bmap, pages, 0.5, next);
    const logBefore = log.slice();
    const bmapBefore = bmap.slice();

    const good = { log: log.slice(), bmap: bmap.slice() };
    const newly = syncDirtyLog(good.log, good.bmap);
    expect(newly, `seed ${seed}`).toBeGreaterThan(0);

    expect(syncDirtyLog(log, bmap, 0, pages, { dropNew: true })).toBe(0);
    expect(countSetBits(log)).toBe(0);
    expect(firstDiff(bmap, bmapBefore), `seed ${seed}`).toBe(-1);
    // A page dirty in the log and missing from the bitmap: what the destination check must catch.
    let lost = 0;
    for (let p = 0; p < pages; p++) if (testBit(logBefore, p) && !testBit(bmap, p)) lost++;
    expect(lost, `seed ${seed}`).toBe(newly);
    if (kind === 'arena') {
      bitmapFree(bmap);
      bitmapFree(log);
    }
  });

  it('respects the range like the real sync', () => {
    const log = new Uint32Array(3).fill(0xffffffff);
    const bmap = new Uint32Array(3);
    expect(syncDirtyLog(log, bmap, 10, 60, { dropNew: true })).toBe(0);
    expect(countSetBits(log)).toBe(96 - 60);
    expect(findNextBit(log, 10, 96)).toBe(70);
    expect(countSetBits(bmap)).toBe(0);
  });
});
