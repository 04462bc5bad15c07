// A page-dirtying workload on one vCPU: writes pages at a rate while the vCPU
// runs guest code, in one of four patterns: uniform over a range, a hot set
// plus a cold fraction outside it, a sequential sweep, or QEMU
// migration-test's workload (increment one byte in every page of a range,
// round after round; the byte wraps to zero every 256 rounds, see GuestRam).
// Throttled by auto-converge, a CPU-bound workload loses the writes of the
// time it slept; a paced one (its rate below the vCPU's fastest) catches up
// with the spare speed once it runs again, as a timer-paced guest does.
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
  /** Throttle sleep the workload has not caught up on yet. */
  private owedNs = 0;
  /** Pages per second the vCPU could write at most (= rate: CPU-bound). */
  private readonly maxRate: number;
  private readonly batch = new Uint32Array(WRITE_BATCH);

  constructor(
    private readonly ram: GuestRam,
    readonly spec: DirtySpec,
    private readonly rng: Rng,
    /** The vCPU's fastest dirty rate; 0 or not above rate: CPU-bound. */
    maxRate = 0,
  ) {
    this.maxRate = Math.max(spec.rate, maxRate);
    if (spec.pattern === 'increment') ram.addByteCounterRange(spec.first_page, spec.pages);
    if (spec.first_page + spec.pages > ram.pages) {
      throw new RangeError(`dirty range ends at page ${spec.first_page + spec.pages}, past the last page ${ram.pages}`);
    }
  }

  /** The vCPU slept ns in cpu_throttle_thread; a paced workload owes that time's writes. */
  throttled(ns: number): void {
    if (this.maxRate > this.spec.rate) this.owedNs += ns;
  }

  /** Guest code ran for ns: write the pages it wrote in that time (and what it caught up on). */
  advance(ns: number): void {
    const rate = this.spec.rate;
    let exact = (rate * ns) / 1e9 + this.carry;
    if (this.owedNs > 0) {
      const extra = Math.min(((this.maxRate - rate) * ns) / 1e9, (rate * this.owedNs) / 1e9);
      exact += extra;
      this.owedNs = Math.max(0, this.owedNs - (extra * 1e9) / rate);
    }
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
          // Cold writes fall outside the hot set (anywhere when the hot set is the whole range).
          for (let i = 0; i < k; i++) batch[i] = first + (rng.next() < cold && hot < pages ? hot + rng.int(pages - hot) : rng.int(hot));
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
