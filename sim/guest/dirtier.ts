// A page-dirtying workload on one vCPU: writes pages at a rate while the vCPU
// runs guest code, in one of four patterns: uniform over a range, a hot set
// plus a cold fraction, a sequential sweep, or QEMU migration-test's workload
// (increment one byte in every page of a range, round after round).
import type { Rng } from '../scheduler/random.ts';
import type { WorkloadSpec } from '../scenario/scenario.ts';
import type { GuestRam } from './ram.ts';

type DirtySpec = NonNullable<WorkloadSpec['dirty']>;

/** Pages drawn before they are written, for the random patterns. */
const WRITE_BATCH = 256;

export class Dirtier {
  /** Full passes over the range (sequential and increment patterns). */
  rounds = 0;
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
        for (let done = 0; done < n; done += WRITE_BATCH) {
          const k = Math.min(WRITE_BATCH, n - done);
          for (let i = 0; i < k; i++) batch[i] = first + rng.int(pages);
          ram.writeMany(batch, k);
        }
        return;
      case 'hotset': {
        const hot = Math.min(this.spec.hot_pages, pages);
        const cold = this.spec.cold_fraction;
        for (let done = 0; done < n; done += WRITE_BATCH) {
          const k = Math.min(WRITE_BATCH, n - done);
          for (let i = 0; i < k; i++) batch[i] = first + (rng.next() < cold ? rng.int(pages) : rng.int(hot));
          ram.writeMany(batch, k);
        }
        return;
      }
      case 'sequential':
      case 'increment':
        for (let i = 0; i < n; i++) {
          ram.write(first + this.cursor);
          if (++this.cursor === pages) {
            this.cursor = 0;
            this.rounds++;
          }
        }
        return;
    }
  }
}
