// A page-dirtying workload on one vCPU: writes pages at a rate while the vCPU
// runs guest code, in one of four patterns: uniform over a range, a hot set
// plus a cold fraction outside it, a sequential sweep, or QEMU
// migration-test's workload (increment one byte in every page of a range,
// round after round; the byte wraps to zero every 256 rounds, see GuestRam).
// Throttled by auto-converge, a CPU-bound workload loses the writes of the
// time it slept; a paced one (its rate below the vCPU's fastest) catches up
// with the spare speed once it runs again, as a timer-paced guest does, when
// it is at most CATCH_UP_MAX_NS behind; further behind, it starts its
// schedule over and the writes are lost (the fidelity payload re-bases when
// more than two 1 ms ticks behind).
// The cost of a slice is bounded by the range's pages, not by the rate:
// sequential sweeps write whole rounds at once (exactly the same result), and
// random writes beyond SATURATION_WRITES_PER_PAGE per page the pattern can
// reach saturate: every such page is written once and every write counted.
// That cost still grows with rate x time, so advance() returns it, and the
// vCPU charges it to the run's event bound at WRITES_PER_EVENT to an event:
// a run that writes billions of pages in a few thousand events is bounded as
// one that fires millions of events.
// Writes are the vCPU's own (they fill its dirty ring when the VM has one);
// nsForWrites tells how long the vCPU may run before its ring could fill.
import type { Rng } from '../scheduler/random.ts';
import type { WorkloadSpec } from '../scenario/scenario.ts';
import type { GuestRam } from './ram.ts';

type DirtySpec = NonNullable<WorkloadSpec['dirty']>;

/** The furthest behind a paced workload still catches up (real/qemu/guest: two ticks of 1 ms). */
export const CATCH_UP_MAX_NS = 2_000_000;

/** Pages drawn before they are written, for the random patterns. */
const WRITE_BATCH = 256;
/**
 * Random writes per reachable page beyond which a slice's writes saturate:
 * past 4 draws per page 98% of the pages are written anyway (1 - e^-4); the
 * rest are taken as written, and no page is drawn.
 */
export const SATURATION_WRITES_PER_PAGE = 4;
/**
 * Pages written one by one that cost about what an event costs: a random
 * write is 15-50 ns on this machine kind in a guest of a few GiB, an event
 * of the slowest shipped mix 3-8 us. In the largest guests (256 GiB: 8 MiB
 * bitmaps, a cache miss each) a write costs 200 ns or more, and the bound
 * stands for several minutes rather than one.
 */
export const WRITES_PER_EVENT = 100;

export class Dirtier {
  /** Full passes over the range (sequential and increment patterns). */
  rounds = 0;
  /** Slices whose writes saturated the pages they reach. */
  saturated = 0;
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
    /** The vCPU that writes. */
    private readonly vcpu = 0,
  ) {
    this.maxRate = Math.max(spec.rate, maxRate);
    if (spec.pattern === 'increment') ram.addByteCounterRange(spec.first_page, spec.pages);
    if (spec.first_page + spec.pages > ram.pages) {
      throw new RangeError(`dirty range ends at page ${spec.first_page + spec.pages}, past the last page ${ram.pages}`);
    }
  }

  /** The vCPU slept ns in cpu_throttle_thread; a paced workload owes that time's writes. */
  throttled(ns: number): void {
    if (this.maxRate <= this.spec.rate) return;
    // Further behind than that, the schedule starts over: nothing is made up.
    const behind = this.owedNs + ns;
    this.owedNs = behind > CATCH_UP_MAX_NS ? 0 : behind;
  }

  /**
   * The longest guest run time after which advance() writes at most k pages
   * (at the fastest rate it may write at now: its own, or its catch-up rate
   * while it owes throttled time). Infinity when it writes nothing.
   */
  nsForWrites(k: number): number {
    const r = this.owedNs > 0 ? this.maxRate : this.spec.rate;
    if (r <= 0) return Infinity;
    // floor(r * ns / 1e9 + carry) <= k  <=>  r * ns / 1e9 + carry < k + 1
    return Math.max(0, Math.floor(((k + 1 - this.carry) * 1e9) / r) - 1);
  }

  /**
   * Guest code ran for ns: write the pages it wrote in that time (and what
   * it caught up on). Returns the pages written one by one (the work).
   */
  advance(ns: number): number {
    const rate = this.spec.rate;
    let exact = (rate * ns) / 1e9 + this.carry;
    if (this.owedNs > 0) {
      const extra = Math.min(((this.maxRate - rate) * ns) / 1e9, (rate * this.owedNs) / 1e9);
      exact += extra;
      this.owedNs = Math.max(0, this.owedNs - (extra * 1e9) / rate);
    }
    const n = Math.floor(exact);
    this.carry = exact - n;
    return n > 0 ? this.writeN(n) : 0;
  }

  /** Writes n pages in the workload's pattern; returns the pages written one by one. */
  writeN(n: number): number {
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
          ram.writeMany(batch, k, this.vcpu);
        }
        return n;
      case 'hotset': {
        const hot = Math.min(this.spec.hot_pages, pages);
        const cold = this.spec.cold_fraction;
        // The pages the writes can reach: the hot set without cold writes, the rest of the range with only cold ones.
        const hotOnly = cold <= 0 || hot >= pages;
        const coldOnly = !hotOnly && cold >= 1;
        const from = coldOnly ? first + hot : first;
        const reach = hotOnly ? hot : coldOnly ? pages - hot : pages;
        if (n > SATURATION_WRITES_PER_PAGE * reach) return this.saturate(from, reach, n);
        for (let done = 0; done < n; done += WRITE_BATCH) {
          const k = Math.min(WRITE_BATCH, n - done);
          // Cold writes fall outside the hot set (anywhere when the hot set is the whole range).
          for (let i = 0; i < k; i++) batch[i] = first + (rng.next() < cold && hot < pages ? hot + rng.int(pages - hot) : rng.int(hot));
          ram.writeMany(batch, k, this.vcpu);
        }
        return n;
      }
      case 'sequential':
      case 'increment': {
        let left = n;
        let work = 0;
        if (left >= pages - this.cursor) {
          // Finish this round, write whole rounds at once, then start the next.
          const rest = pages - this.cursor;
          ram.writeRounds(first + this.cursor, rest, 1, this.vcpu);
          left -= rest;
          this.cursor = 0;
          this.rounds++;
          const whole = Math.floor(left / pages);
          ram.writeRounds(first, pages, whole, this.vcpu);
          this.rounds += whole;
          left -= whole * pages;
          work = rest + (whole > 0 ? pages : 0);
        }
        for (let i = 0; i < left; i++) ram.write(first + this.cursor++, this.vcpu);
        return work + left;
      }
    }
  }

  private saturate(first: number, pages: number, n: number): number {
    this.saturated++;
    this.ram.writeSaturated(first, pages, n, this.vcpu);
    return pages;
  }
}
