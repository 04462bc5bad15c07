// A page-dirtying workload on one vCPU: writes pages at a rate while the vCPU
// runs guest code, in one of four patterns: uniform over a range, a hot set
// plus a cold fraction, a sequential sweep, or QEMU migration-test's workload
// (increment one byte in every page of a range, round after round).
// The cost of a slice is bounded by the range's pages, not by the rate:
// sequential sweeps write whole rounds at once (exactly the same result), and
// random writes beyond SATURATION_WRITES_PER_PAGE per page the pattern can
// reach saturate: every such page is written once and every write counted.
import type { Rng } from '../scheduler/random.ts';
import type { WorkloadSpec } from '../scenario/scenario.ts';
import type { GuestRam } from './ram.ts';

type DirtySpec = NonNullable<WorkloadSpec['dirty']>;

/** Pages drawn before they are written, for the random patterns. */
const WRITE_BATCH = 256;
/**
 * Random writes per reachable page beyond which a slice's writes saturate:
 * past 4 draws per page 98% of the pages are written anyway (1 - e^-4); the
 * rest are taken as written, and no page is drawn.
 */
export const SATURATION_WRITES_PER_PAGE = 4;

export class Dirtier {
  /** Full passes over the range (sequential and increment patterns). */
  rounds = 0;
  /** Slices whose writes saturated the pages they reach. */
  saturated = 0;
  private carry = 0;
  private cursor = 0;
  private readonly batch = new Uint32Array(WRITE_BATCH);

  constructor(
    private readonly ram: GuestRam,
    readonly spec: DirtySpec,
    private readonly rng: Rng,
  ) {
    if (spec.first_page + spec.pages > ram.pages) {
      throw new RangeError(`dirty range ends at page ${spec.first_page + spec.pages}, past the last page ${ram.pages}`);
    }
  }

  /** Guest code ran for ns: write the pages it wrote in that time. */
  advance(ns: number): void {
    const exact = (this.spec.rate * ns) / 1e9 + this.carry;
    const n = Math.floor(exact);
    this.carry = exact - n;
    if (n > 0) this.writeN(n);
  }

  /** Writes n pages in the workload's pattern. */
  writeN(n: number): void {
    const { first_page: first, pages, pattern } = this.spec;
    const ram = this.ram;
    const rng = this.rng;
    // Random patterns draw a batch of pages, then write them in one loop
    // (GuestRam.writeMany): the same draws and writes in the same order.
    const batch = this.batch;
    switch (pattern) {
      case 'uniform':
        if (n > SATURATION_WRITES_PER_PAGE * pages) return this.saturate(first, pages, n);
        for (let done = 0; done < n; done += WRITE_BATCH) {
          const k = Math.min(WRITE_BATCH, n - done);
          for (let i = 0; i < k; i++) batch[i] = first + rng.int(pages);
          ram.writeMany(batch, k);
        }
        return;
      case 'hotset': {
        const hot = Math.min(this.spec.hot_pages, pages);
        const cold = this.spec.cold_fraction;
        // With no cold writes only the hot set is reachable.
        if (n > SATURATION_WRITES_PER_PAGE * (cold > 0 ? pages : hot)) return this.saturate(first, cold > 0 ? pages : hot, n);
        for (let done = 0; done < n; done += WRITE_BATCH) {
          const k = Math.min(WRITE_BATCH, n - done);
          for (let i = 0; i < k; i++) batch[i] = first + (rng.next() < cold ? rng.int(pages) : rng.int(hot));
          ram.writeMany(batch, k);
        }
        return;
      }
      case 'sequential':
      case 'increment': {
        let left = n;
        if (left >= pages - this.cursor) {
          // Finish this round, write whole rounds at once, then start the next.
          const rest = pages - this.cursor;
          ram.writeRounds(first + this.cursor, rest, 1);
          left -= rest;
          this.cursor = 0;
          this.rounds++;
          const whole = Math.floor(left / pages);
          ram.writeRounds(first, pages, whole);
          this.rounds += whole;
          left -= whole * pages;
        }
        for (let i = 0; i < left; i++) ram.write(first + this.cursor++);
        return;
      }
    }
  }

  private saturate(first: number, pages: number, n: number): void {
    this.saturated++;
    this.ram.writeSaturated(first, pages, n);
  }
}
