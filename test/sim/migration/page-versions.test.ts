// The destination's page versions as differences from the guest's initial
// image (sim/migration/page-versions.ts): whatever the mix of pages sent one
// by one, whole words, pages written again and pages sent back to their
// initial version, it answers exactly as one version per page would,
// in one chunk or many, dense or not, and it stays small when the guest
// rewrote little.
import { describe, expect, it } from 'vitest';
import { GuestRam } from '../../../sim/guest/ram.ts';
import { PageVersions } from '../../../sim/migration/page-versions.ts';
import { Rng } from '../../../sim/scheduler/random.ts';

const PAGES = 32 * 40 + 7; // a partial last word

/** Runs a seeded mix of writes and sends on a copy and on a plain array; they must agree at every step. */
function replay(seed: number, chunkShift?: number): { copy: PageVersions; ram: GuestRam } {
  const rng = new Rng(`page-versions/${seed}`);
  // The source keeps only its written pages' versions in odd seeds, all of them in even ones.
  const ram = new GuestRam(PAGES * 4096, 4096, { densePagesMax: seed % 2 === 1 ? 0 : undefined });
  ram.populate(rng.int(PAGES));
  const copy = new PageVersions(ram, chunkShift);
  const plain = new Uint32Array(PAGES);
  const hot = rng.int(PAGES - 64);
  for (let step = 0; step < 3000; step++) {
    const r = rng.next();
    if (r < 0.4) {
      // The guest writes, mostly in a hot range.
      const page = rng.chance(0.8) ? hot + rng.int(64) : rng.int(PAGES);
      ram.write(page);
    } else if (r < 0.75) {
      const page = rng.int(PAGES);
      copy.set(page, ram.version(page));
      plain[page] = ram.version(page);
    } else if (r < 0.85) {
      // A page set to what the initial image holds (a page the destination had dropped, sent again unchanged, ...).
      const page = rng.int(PAGES);
      const v = rng.chance(0.5) ? 0 : 1;
      copy.set(page, v);
      plain[page] = v;
    } else {
      const w = rng.int(Math.floor(PAGES / 32));
      copy.copyWord(w);
      plain.set(ram.toArray().subarray(w * 32, w * 32 + 32), w * 32);
    }
    if (step % 100 === 0) {
      for (let p = 0; p < PAGES; p++) expect(copy.get(p), `page ${p}, step ${step}, seed ${seed}`).toBe(plain[p]);
      let first = -1;
      for (let p = 0; p < PAGES && first < 0; p++) if (plain[p] !== ram.version(p)) first = p;
      expect(copy.firstDifference(), `step ${step}, seed ${seed}`).toBe(first);
    }
  }
  expect([...copy.toArray()]).toEqual([...plain]);
  // Against a snapshot taken now, with the guest writing on, and with pages left out.
  const snap = ram.snapshot();
  const snapVersions = ram.toArray();
  for (let i = 0; i < 50; i++) ram.write(hot + rng.int(64));
  const skip = new Uint32Array(Math.ceil(PAGES / 32));
  for (let i = 0; i < 20; i++) {
    const p = rng.int(PAGES);
    skip[p >>> 5]! |= 1 << (p & 31);
  }
  let expected = -1;
  for (let p = 0; p < PAGES && expected < 0; p++) if (plain[p] !== snapVersions[p] && !((skip[p >>> 5]! >>> (p & 31)) & 1)) expected = p;
  expect(copy.firstDifference(snap, skip)).toBe(expected);
  for (let w = 0; w < skip.length; w++) {
    let mask = 0;
    for (let i = 0; i < 32 && w * 32 + i < PAGES; i++) if (plain[w * 32 + i] !== snapVersions[w * 32 + i]) mask |= 1 << i;
    expect(copy.diffMask(w, snap), `word ${w}, seed ${seed}`).toBe(mask);
  }
  return { copy, ram };
}

describe('PageVersions', () => {
  it('answers as a version per page would, whatever was sent and written', () => {
    for (let seed = 1; seed <= 12; seed++) expect(replay(seed).copy.denseCount).toBe(0);
  });

  it('answers the same in small chunks, some of them dense once their table outgrew an eighth of their pages', () => {
    for (let seed = 1; seed <= 6; seed++) {
      const { copy } = replay(seed, 6);
      expect(copy.denseCount).toBeGreaterThan(0);
      expect(copy.denseCount).toBeLessThan(Math.ceil(PAGES / 64));
    }
  });

  it('keeps only the pages the guest rewrote: a populated guest sent whole costs no table entry', () => {
    const pages = 1 << 16;
    const ram = new GuestRam(pages * 4096, 4096);
    ram.populate(pages - 1000);
    for (const p of [5, 70, 9000, 65535]) ram.write(p);
    const copy = new PageVersions(ram);
    for (let w = 0; w < pages / 32; w++) copy.copyWord(w);
    expect(copy.firstDifference()).toBe(-1);
    expect(copy.exceptions).toBe(4);
    expect(copy.get(5)).toBe(2);
    expect(copy.get(6)).toBe(1);
    expect(copy.get(65534)).toBe(0);
    expect(copy.bytes).toBeLessThan(pages / 2);
    // Written again after it was sent: the copy lags until it is sent again.
    ram.write(6);
    expect(copy.firstDifference()).toBe(6);
    copy.set(6, ram.version(6));
    expect(copy.firstDifference()).toBe(-1);
  });

  it('finds a populated page the destination never received', () => {
    const ram = new GuestRam(4096 * 4096, 4096);
    ram.populate(100);
    const copy = new PageVersions(ram);
    for (let w = 0; w < 128; w++) if (w !== 2) copy.copyWord(w);
    expect(copy.firstDifference()).toBe(64);
    expect(copy.diffMask(2)).toBe(-1); // pages 64 .. 95, all populated
    expect(copy.diffMask(3)).toBe(0);
  });
});
