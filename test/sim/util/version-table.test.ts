// The sparse page -> version map under guest RAM and the destination's copy
// (sim/util/version-table.ts): whatever the mix of new entries, updates and
// removals, it answers as a plain map would, before and after a chunk turns
// dense, and a clone goes its own way.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { VersionTable } from '../../../sim/util/version-table.ts';

const PAGES = 1000;
/** The owner's answer for a page with no entry: what a chunk turning dense is filled with. */
const none = (page: number) => (page % 3 === 0 ? 1 : 0);
const fill = (d: Uint32Array, first: number) => {
  for (let i = 0; i < d.length; i++) d[i] = none(first + i);
};

describe('VersionTable', () => {
  it('answers as a map would, through resizes, removals and chunks turning dense', () => {
    const op = fc.tuple(fc.constantFrom('put', 'put', 'put', 'remove'), fc.integer({ min: 0, max: PAGES - 1 }), fc.integer({ min: 0, max: 2 ** 32 - 1 }));
    fc.assert(fc.property(fc.array(op, { maxLength: 600 }), fc.constantFrom(6, 8, 16), (ops, shift) => {
      const t = new VersionTable(PAGES, fill, shift);
      const plain = new Map<number, number>();
      for (const [kind, page, v] of ops) {
        if (kind === 'put') {
          t.put(page, v);
          plain.set(page, v);
        } else {
          t.remove(page);
          // A page of a dense chunk keeps its version; elsewhere the owner's answer is back.
          if (!t.isDense(page >>> shift)) plain.delete(page);
        }
      }
      for (let p = 0; p < PAGES; p++) {
        const dense = t.isDense(p >>> shift);
        const want = plain.get(p) ?? (dense ? none(p) : -1);
        expect(t.get(p, -1), `page ${p}`).toBe(want);
      }
      // Entries are what the sparse chunks list.
      let listed = 0;
      for (const p of plain.keys()) if (!t.isDense(p >>> shift)) listed++;
      expect(t.entries).toBe(listed);
    }));
  });

  it('turns a chunk dense once it would list more than an eighth of its pages', () => {
    const t = new VersionTable(PAGES, fill, 8);
    for (let p = 0; p < 32; p++) t.put(p, 7);
    expect(t.denseCount).toBe(0);
    expect(t.entries).toBe(32);
    t.put(32, 7);
    expect(t.denseCount).toBe(1);
    expect(t.entries).toBe(0);
    expect(t.get(33, -1)).toBe(1);
    expect(t.get(32, -1)).toBe(7);
  });

  it('clones into a copy that changes on its own', () => {
    const t = new VersionTable(PAGES, fill, 8);
    t.put(5, 9);
    const c = t.clone();
    t.put(5, 10);
    t.put(6, 11);
    expect(c.get(5, -1)).toBe(9);
    expect(c.get(6, -1)).toBe(-1);
    expect(t.get(5, -1)).toBe(10);
  });

  it('refuses page numbers from 2^32 - 1 and chunks below a word', () => {
    expect(() => new VersionTable(2 ** 32 - 1, fill)).toThrow(/below 2\^32 - 1/);
    expect(() => new VersionTable(PAGES, fill, 4)).toThrow(/at least a word/);
  });
});
