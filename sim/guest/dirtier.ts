// A page-dirtying workload on one vCPU: writes pages at a rate while the vCPU
// runs guest code, in one of four patterns: uniform over a range, a hot set
// plus a cold fraction, a sequential sweep, or QEMU migration-test's workload
// (increment one byte in every page of a range, round after round).
import type { Rng } from '../scheduler/random.ts';
import type { WorkloadSpec } from '../scenario.ts';
import type { GuestRam } from './ram.ts';

type DirtySpec = NonNullable<WorkloadSpec['dirty']>;

export class Dirtier {
  /** Full passes over the range (sequential and increment patterns). */
  rounds = 0;
  private carry = 0;
  private cursor = 0;

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
    switch (pattern) {
      case 'uniform':
        for (let i = 0; i < n; i++) ram.write(first + rng.int(pages));
        return;
      case 'hotset': {
        const hot = Math.min(this.spec.hot_pages, pages);
        const cold = this.spec.cold_fraction;
        for (let i = 0; i < n; i++) ram.write(first + (rng.next() < cold ? rng.int(pages) : rng.int(hot)));
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
