// The guest: RAM as versions with a KVM-style dirty log, dirtying patterns,
// userspace progress that needs uninterrupted run time, and vCPUs advanced in
// bulk between the moments something observes them.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { GuestRam, RAM_BYTES_PER_PAGE, RAM_BYTES_PER_WRITTEN_PAGE, versionBytesMax } from '../../../sim/guest/ram.ts';
import { Dirtier, SATURATION_WRITES_PER_PAGE } from '../../../sim/guest/dirtier.ts';
import { UserspaceTracker } from '../../../sim/guest/guest.ts';
import { Rng } from '../../../sim/scheduler/random.ts';
import { countSetBits } from '../../../sim/util/bitmap.ts';
import { Scheduler } from '../../../sim/scheduler/index.ts';
import { SimPlatform } from '../../../sim/sim-platform.ts';
import { buildWorld } from '../../../sim/world.ts';
import { simulate } from '../../../sim/run.ts';
import { MS, scenario } from '../helpers.ts';

/** Gives each page of ram the version in versions (0: left unwritten), through the write path. */
function withVersions(ram: GuestRam, versions: readonly number[]): GuestRam {
  versions.forEach((v, p) => ram.writeRounds(p, 1, v));
  return ram;
}

/** The pages holding a version above 0. */
const writtenPages = (ram: GuestRam): number[] => [...ram.toArray().keys()].filter((p) => ram.version(p) > 0);

describe('GuestRam', () => {
  it('keeps three bits per page, and a version for each page of a small guest', () => {
    const ram = new GuestRam(2 ** 30, 4096);
    expect(ram.dirtyLog.byteLength * 8).toBeGreaterThanOrEqual(ram.pages);
    // What the memory estimate (sim/estimate.ts) counts per page: the dirty log, the modified and the listed bitmaps.
    expect((ram.dirtyLog.byteLength + ram.modified.byteLength) / ram.pages).toBe(RAM_BYTES_PER_PAGE - 1 / 8);
    expect(ram.versionBytes).toBe(versionBytesMax(ram.pages, 0) + ram.pages / 8);
  });

  it('keeps a large guest to the pages it writes: a 1 TiB guest is a few bitmaps', () => {
    const ram = new GuestRam(2 ** 40, 4096);
    ram.populate(ram.pages);
    expect(ram.versionBytes).toBe(ram.pages / 8);
    for (let i = 0; i < 1000; i++) ram.write(i * 262_139);
    expect(ram.versionBytes - ram.pages / 8).toBeLessThanOrEqual(versionBytesMax(ram.pages, 1000));
    expect(versionBytesMax(ram.pages, 1000)).toBeLessThan(1000 * (RAM_BYTES_PER_WRITTEN_PAGE + 2048) + 1);
    expect(ram.version(262_139)).toBe(2);
    expect(ram.version(262_140)).toBe(1);
  });

  it('answers the same whether it keeps every version or only the written ones, dense or not', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 2 ** 31 }), fc.integer({ min: 0, max: 4 * 2 ** 16 }), (seed, populated) => {
      const rng = new Rng(`ram/${seed}`);
      const pages = 4 * 2 ** 16; // four chunks of the version table
      const dense = new GuestRam(pages * 4096, 4096);
      const sparse = new GuestRam(pages * 4096, 4096, { densePagesMax: 0 });
      dense.populate(populated);
      sparse.populate(populated);
      const hot = rng.int(pages - 9000);
      for (let i = 0; i < 300; i++) {
        const r = rng.next();
        const page = rng.chance(0.7) ? hot + rng.int(9000) : rng.int(pages);
        for (const ram of [dense, sparse]) {
          if (r < 0.5) ram.write(page);
          else if (r < 0.7) ram.writeMany(Uint32Array.of(page, (page + 1) % pages, page), 3);
          else if (r < 0.8) ram.writeRounds(page, Math.min(40, pages - page), 1 + (seed % 300));
          else if (r < 0.9) ram.hostWrite(page);
          else ram.land(page, 256);
        }
      }
      // A chunk written in a run of 9000 pages turns dense (1/32 of 2^16 is 2048).
      for (let w = 0; w < pages / 32; w++) {
        expect(sparse.unwrittenMask(w * 32)).toBe(dense.unwrittenMask(w * 32));
        expect(sparse.zeroMask(w * 32)).toBe(dense.zeroMask(w * 32));
      }
      expect(Buffer.from(sparse.toArray().buffer).equals(Buffer.from(dense.toArray().buffer))).toBe(true);
      expect([...sparse.modified]).toEqual([...dense.modified]);
      const snap = sparse.snapshot();
      const before = sparse.toArray();
      sparse.write(hot);
      const out = new Uint32Array(32);
      snap.versionsInto(hot & ~31, 32, out, 0);
      expect([...out]).toEqual([...before.subarray(hot & ~31, (hot & ~31) + 32)]);
      expect(snap.version(hot)).toBe(before[hot]);
    }), { numRuns: 8 });
  });

  it('writeRounds is rounds calls of write() on each page, at the cost of one', () => {
    const cycle = 2 ** 32 - 1;
    fc.assert(fc.property(
      fc.array(fc.oneof(fc.constant(0), fc.constant(1), fc.constant(cycle), fc.constant(cycle - 1), fc.integer({ min: 0, max: cycle })), { minLength: 40, maxLength: 40 }),
      fc.integer({ min: 0, max: 39 }), fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 5 }), fc.boolean(), fc.boolean(),
      (versions, first, count, rounds, logging, sparse) => {
        count = Math.min(count, 40 - first);
        const o = { densePagesMax: sparse ? 0 : undefined };
        const a = withVersions(new GuestRam(40 * 4096, 4096, o), versions);
        const b = withVersions(new GuestRam(40 * 4096, 4096, o), versions);
        a.logging = b.logging = logging;
        a.writeRounds(first, count, rounds);
        for (let r = 0; r < rounds; r++) for (let p = first; p < first + count; p++) b.write(p);
        expect([...a.toArray()]).toEqual([...b.toArray()]);
        expect([...a.dirtyLog]).toEqual([...b.dirtyLog]);
        expect(a.writes).toBe(b.writes);
      }));
  });

  it('writeRounds of a trillion rounds wraps versions as write() does, past 0', () => {
    const ram = withVersions(new GuestRam(4 * 4096, 4096), [0, 1, 2 ** 32 - 1, 7]);
    const writes = ram.writes;
    ram.writeRounds(0, 4, 2 ** 32 - 1);
    // A whole cycle of 2^32 - 1 writes brings a written page back to its version; an unwritten one to its last.
    expect([...ram.toArray()]).toEqual([2 ** 32 - 1, 1, 2 ** 32 - 1, 7]);
    ram.writeRounds(0, 1, 1e12);
    expect(ram.version(0)).toBe(((2 ** 32 - 2 + 1e12) % (2 ** 32 - 1)) + 1);
    expect(ram.writes - writes).toBe(4 * (2 ** 32 - 1) + 1e12);
  });

  it('takes populate() before any write only', () => {
    const ram = new GuestRam(64 * 4096, 4096);
    ram.write(3);
    expect(() => ram.populate(10)).toThrow(/before any write/);
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
    expect(ram.version(3)).toBe(2);
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
    const written = writtenPages(ram);
    expect(written.every((p) => p >= 16 && p < 20)).toBe(true);
  });

  it('sweeps the range round after round (migration-test increment)', () => {
    const ram = new GuestRam(128 * 4096, 4096);
    const d = new Dirtier(ram, spec('increment'), new Rng('t'));
    d.writeN(64 * 3 + 1);
    expect(d.rounds).toBe(3);
    expect(ram.version(16)).toBe(4);
    expect(ram.version(17)).toBe(3);
    expect(ram.version(15)).toBe(0);
  });

  it('puts cold hotset writes outside the hot set', () => {
    const ram = new GuestRam(128 * 4096, 4096);
    new Dirtier(ram, spec('hotset', { cold_fraction: 1 }), new Rng('t')).writeN(1000);
    const written = writtenPages(ram);
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

  it('loses a throttled CPU-bound workload\'s writes; a paced one catches up on sleeps of up to two ticks, not on longer ones', () => {
    const written = (maxRate: number, runNs: number, sleepNs: number) => {
      const ram = new GuestRam(128 * 4096, 4096);
      const d = new Dirtier(ram, spec('uniform', { rate: 10_000 }), new Rng('t'), maxRate);
      // 50% throttle for a second, in slices of runNs and sleeps of sleepNs.
      for (let t = 0; t < 1e9; t += runNs + sleepNs) {
        d.advance(runNs);
        d.throttled(sleepNs);
      }
      return ram.writes;
    };
    expect(written(0, 1_000_000, 1_000_000)).toBe(5000);
    // A guest that could write 30k pages/s keeps its 10k/s when each sleep is 1 ms behind at most.
    expect(written(30_000, 1_000_000, 1_000_000)).toBeGreaterThanOrEqual(9900);
    // One that could write 15k/s makes up 0.5 ms of each 1 ms sleep, so it falls behind: 1, 1.5, 2, then
    // 2.5 ms, past two ticks, and it starts over; three runs in every four catch up 5 pages.
    expect(written(15_000, 1_000_000, 1_000_000)).toBe(5000 + 125 * 15);
    // 10 ms sleeps put it more than CATCH_UP_MAX_NS behind: it starts over, as the payload re-bases.
    expect(written(30_000, 10_000_000, 10_000_000)).toBe(5000);
  });

  it('a sweep in one call is the same as one page at a time (sequential and increment)', () => {
    fc.assert(fc.property(
      fc.constantFrom('sequential' as const, 'increment' as const), fc.array(fc.integer({ min: 0, max: 300 }), { minLength: 1, maxLength: 6 }), fc.boolean(),
      (pattern, ns, logging) => {
        const bulk = new GuestRam(128 * 4096, 4096);
        const single = new GuestRam(128 * 4096, 4096);
        bulk.logging = single.logging = logging;
        const a = new Dirtier(bulk, spec(pattern), new Rng('t'));
        const b = new Dirtier(single, spec(pattern), new Rng('t'));
        for (const n of ns) {
          a.writeN(n);
          for (let i = 0; i < n; i++) b.writeN(1);
        }
        expect([...bulk.toArray()]).toEqual([...single.toArray()]);
        expect([...bulk.dirtyLog]).toEqual([...single.dirtyLog]);
        expect(bulk.writes).toBe(single.writes);
        expect(a.rounds).toBe(b.rounds);
      }));
  });

  it('random writes up to 4 per page draw every page, as before', () => {
    const ram = new GuestRam(128 * 4096, 4096);
    const rng = new Rng('t');
    const d = new Dirtier(ram, spec('uniform'), rng);
    d.writeN(SATURATION_WRITES_PER_PAGE * 64);
    expect(d.saturated).toBe(0);
    expect(ram.writes).toBe(256);
    // The same draws as a fresh stream making 256 of them.
    const fresh = new Rng('t');
    for (let i = 0; i < 256; i++) fresh.int(64);
    expect(rng.next()).toBe(fresh.next());
  });

  it('a rate beyond what the pages absorb saturates: every page once, every write counted, nothing drawn', { timeout: 10_000 }, () => {
    const ram = new GuestRam(128 * 4096, 4096);
    ram.logging = true;
    const rng = new Rng('t');
    const d = new Dirtier(ram, spec('uniform', { rate: 1e30 }), rng);
    d.advance(3_600e9); // an hour of guest time at 1e30 pages/s: one call, 64 page writes
    expect(d.saturated).toBe(1);
    expect(countSetBits(ram.dirtyLog)).toBe(64);
    expect(ram.writes).toBe(1e30 * 3600);
    expect(writtenPages(ram)).toEqual([...Array(64).keys()].map((i) => i + 16));
    expect(rng.next()).toBe(new Rng('t').next());
  });

  it('a saturated hot set without cold writes stays in the hot set', () => {
    const ram = new GuestRam(128 * 4096, 4096);
    const d = new Dirtier(ram, spec('hotset'), new Rng('t'));
    d.writeN(1e15);
    expect(d.saturated).toBe(1);
    expect(writtenPages(ram)).toEqual([16, 17, 18, 19]);
    const cold = new GuestRam(128 * 4096, 4096);
    new Dirtier(cold, spec('hotset', { cold_fraction: 0.1 }), new Rng('t')).writeN(1e15);
    expect(writtenPages(cold)).toHaveLength(64);
  });

  it('an increment workload at 1e8 pages/s over 64 GiB costs pages, not writes', { timeout: 20_000 }, () => {
    const ram = new GuestRam(2 ** 36, 4096);
    const d = new Dirtier(ram, { rate: 1e8, pattern: 'increment', first_page: 0, pages: ram.pages, hot_pages: 1, cold_fraction: 0 }, new Rng('t'));
    d.advance(3_600e9); // 3.6e11 writes: 21,457 rounds of 2^24 pages, each page bumped once
    expect(d.rounds).toBe(Math.floor(3.6e11 / 2 ** 24));
    expect(ram.version(0)).toBe(d.rounds + 1);
    expect(ram.writes).toBe(3.6e11);
  });

  it('returns the pages it wrote one by one: the draws, a saturated range once, a whole sweep once', () => {
    const ram = new GuestRam(128 * 4096, 4096);
    expect(new Dirtier(ram, spec('uniform'), new Rng('t')).writeN(200)).toBe(200);
    expect(new Dirtier(ram, spec('uniform'), new Rng('t')).writeN(1e12)).toBe(64);
    expect(new Dirtier(ram, spec('hotset'), new Rng('t')).writeN(1e12)).toBe(4);
    const sweep = new Dirtier(ram, spec('sequential'), new Rng('t'));
    expect(sweep.writeN(10)).toBe(10);
    // The 54 left of this round, 3 whole rounds in one pass over the range, then 5.
    expect(sweep.writeN(54 + 3 * 64 + 5)).toBe(54 + 64 + 5);
    expect(new Dirtier(ram, spec('uniform'), new Rng('t')).advance(1e8)).toBe(100);
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

describe('a vCPU that only runs and dirties memory', () => {
  const sweep = (slice: string) => scenario(`
name: bulk
seed: 3
duration: 2s
vm: { memory: 1GiB, vcpus: 1 }
guest:
  slice: ${slice}
  workloads: [ { vcpus: all, dirty: { rate: 100000/s, pattern: sequential } } ]
`);

  it('runs in long stretches, with the same writes as in short ones', () => {
    const long = simulate(sweep('100ms')).result;
    const short = simulate(sweep('1ms')).result;
    expect(long.guest.dirty_writes).toBe(200_000);
    expect(short.guest.dirty_writes).toBe(200_000);
    expect(short.events).toBeGreaterThan(1900);
    expect(long.events).toBeLessThan(short.events / 50);
  });

  const world = (extra = '') => {
    const scheduler = new Scheduler({ seed: 3 });
    const platform = new SimPlatform(scheduler);
    const w = buildWorld(scenario(`
name: bulk
seed: 3
duration: 2s
vm: { memory: 1GiB, vcpus: 1 }
guest:
  workloads: [ { vcpus: all, dirty: { rate: 100000/s, pattern: sequential } } ]
${extra}`), platform, false);
    return { scheduler, w, ram: w.guest.ram as GuestRam };
  };

  it('writes what it ran so far when the dirty log is read mid-stretch, and nothing twice', () => {
    const { scheduler, ram } = world();
    ram.logging = true;
    scheduler.run(250 * MS);
    expect(ram.writes).toBe(20_000);
    ram.logSync();
    expect(ram.writes).toBe(25_000);
    expect(countSetBits(ram.dirtyLog)).toBe(25_000);
    scheduler.run(300 * MS);
    expect(ram.writes).toBe(30_000);
  });

  it('leaves guest mode at once to sleep when a throttle starts', () => {
    const { scheduler, w, ram } = world();
    scheduler.run(250 * MS);
    ram.logSync();
    w.guest.setThrottle(50);
    scheduler.run(255 * MS);
    ram.logSync();
    // Asleep for the throttle's share of the timeslice (10 ms at 50%), not running to the end of the stretch.
    expect(ram.writes).toBe(25_000);
    scheduler.run(270 * MS);
    ram.logSync();
    expect(ram.writes).toBeGreaterThan(25_000);
  });
});
