// The guest: RAM as versions with a KVM-style dirty log, dirtying patterns,
// and userspace progress that needs uninterrupted run time.
import { describe, expect, it } from 'vitest';
import { GuestRam } from '../../../sim/guest/ram.ts';
import { Dirtier } from '../../../sim/guest/dirtier.ts';
import { UserspaceTracker } from '../../../sim/guest/guest.ts';
import { Rng } from '../../../sim/scheduler/random.ts';
import { countSetBits } from '../../../sim/util/bitmap.ts';

describe('GuestRam', () => {
  it('keeps a few bytes per page, so a 1 TiB guest is representable', () => {
    const pages = 2 ** 28;
    const bytesPerPage = (4 + 1 / 8); // a version and a dirty bit
    expect(bytesPerPage * pages).toBeLessThan(1.1 * 2 ** 30);
    const ram = new GuestRam(2 ** 30, 4096);
    expect(ram.versions.byteLength / ram.pages).toBe(4);
    expect(ram.dirtyLog.byteLength * 8).toBeGreaterThanOrEqual(ram.pages);
  });

  it('marks pages dirty only while logging, KVM style', () => {
    const ram = new GuestRam(64 * 4096, 4096);
    ram.write(3);
    expect(countSetBits(ram.dirtyLog)).toBe(0);
    ram.logging = true;
    ram.write(3);
    ram.write(40);
    expect(ram.dirtyLog[0]).toBe(1 << 3);
    expect(ram.dirtyLog[1]).toBe(1 << 8);
    expect(ram.versions[3]).toBe(2);
  });

  it('rejects a page size that is not a power of two', () => {
    expect(() => new GuestRam(1 << 20, 3000)).toThrow(/power of two/);
  });
});

describe('Dirtier', () => {
  const spec = (pattern: 'uniform' | 'hotset' | 'sequential' | 'increment', extra = {}) => ({
    rate: 1000, pattern, first_page: 16, pages: 64, hot_pages: 4, cold_fraction: 0, ...extra,
  });

  it('writes rate x time pages, carrying fractions', () => {
    const ram = new GuestRam(128 * 4096, 4096);
    const d = new Dirtier(ram, spec('uniform'), new Rng('t'));
    for (let i = 0; i < 1000; i++) d.advance(333_333);
    expect(ram.writes).toBe(333);
  });

  it('keeps writes inside the range, and inside the hot set when cold is 0%', () => {
    const ram = new GuestRam(128 * 4096, 4096);
    new Dirtier(ram, spec('hotset'), new Rng('t')).writeN(1000);
    const written = [...ram.versions.keys()].filter((p) => ram.versions[p]! > 0);
    expect(written.every((p) => p >= 16 && p < 20)).toBe(true);
  });

  it('sweeps the range round after round (migration-test increment)', () => {
    const ram = new GuestRam(128 * 4096, 4096);
    const d = new Dirtier(ram, spec('increment'), new Rng('t'));
    d.writeN(64 * 3 + 1);
    expect(d.rounds).toBe(3);
    expect(ram.versions[16]).toBe(4);
    expect(ram.versions[17]).toBe(3);
    expect(ram.versions[15]).toBe(0);
  });

  it('puts cold hotset writes outside the hot set', () => {
    const ram = new GuestRam(128 * 4096, 4096);
    new Dirtier(ram, spec('hotset', { cold_fraction: 1 }), new Rng('t')).writeN(1000);
    const written = [...ram.versions.keys()].filter((p) => ram.versions[p]! > 0);
    expect(written.length).toBeGreaterThan(40);
    expect(written.every((p) => p >= 20 && p < 80)).toBe(true);
  });

  it('wraps migration-test\'s byte to zero every 256 rounds: the page is a zero page again', () => {
    const ram = new GuestRam(128 * 4096, 4096);
    ram.populate(8);
    const d = new Dirtier(ram, spec('increment', { first_page: 0, pages: 64 }), new Rng('t'));
    d.writeN(64 * 255);
    expect(ram.isZeroPage(20)).toBe(false);
    d.writeN(64);
    expect(d.rounds).toBe(256);
    expect(ram.isZeroPage(20)).toBe(true);
    // A page that held data before the counter ran never becomes all zeroes.
    expect(ram.isZeroPage(3)).toBe(false);
  });

  it('loses a throttled CPU-bound workload\'s writes, and lets a paced one catch up', () => {
    const written = (maxRate: number) => {
      const ram = new GuestRam(128 * 4096, 4096);
      const d = new Dirtier(ram, spec('uniform', { rate: 10_000 }), new Rng('t'), maxRate);
      // 50% throttle: 10 ms of run, 10 ms of sleep, for a second.
      for (let i = 0; i < 50; i++) {
        d.advance(10_000_000);
        d.throttled(10_000_000);
      }
      return ram.writes;
    };
    expect(written(0)).toBe(5000);
    // A guest that could write 30k pages/s keeps its 10k/s.
    expect(written(30_000)).toBeGreaterThanOrEqual(9900);
    // One that could write 15k/s recovers half of each sleep's writes in the next run (the last sleep stays owed).
    expect(written(15_000)).toBe(5000 + 49 * 50);
  });

  it('refuses a range past the end of memory', () => {
    const ram = new GuestRam(32 * 4096, 4096);
    expect(() => new Dirtier(ram, spec('uniform'), new Rng('t'))).toThrow(/past the last page/);
  });
});

describe('UserspaceTracker', () => {
  it('counts a unit per quantum of uninterrupted run, and restarts after a long stall', () => {
    const u = new UserspaceTracker(1, 100, 10);
    u.entered(0, 0);
    u.ran(0, 250, 250); // 2 units at 100 and 200
    u.entered(0, 5); // a short stall does not interrupt
    u.ran(0, 60, 315); // reaches 300 at 305
    u.entered(0, 1000); // a long one does
    u.ran(0, 90, 1405);
    u.finish(2000);
    expect(u.progress).toBe(3);
    expect(u.samples.map((s) => s.t_ns)).toEqual([100, 200, 305]);
    expect(u.gapMaxNs).toBe(2000 - 305);
  });
});
