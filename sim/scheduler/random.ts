// Seeded random streams. One scenario seed derives an independent stream per
// component ("vcpu0.workload", "disk0.latency", ...), so adding a component or
// drawing more numbers in one never shifts the numbers another one sees.
// The generator is seedrandom's Alea: fast, and the same on every platform.
// seedrandom seeds it; the step runs here on the stream's own fields (the
// same arithmetic as seedrandom's, so the same numbers), which saves a
// closure call per draw.
import seedrandom from 'seedrandom';

export class Rng {
  // Alea's state: three lags and a carry. Initialised here to numbers (a
  // field declared without one starts as undefined, and V8 then boxes every
  // fraction stored in it: an allocation per draw).
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private c = 0;

  constructor(readonly seed: string) {
    const state = seedrandom.alea(seed, { state: true }).state();
    this.s0 = state.s0;
    this.s1 = state.s1;
    this.s2 = state.s2;
    this.c = state.c;
  }

  /** Uniform in [0, 1): Alea's step (seedrandom's lib/alea.js). */
  next(): number {
    const t = 2091639 * this.s0 + this.c * 2.3283064365386963e-10; // 2^-32
    this.s0 = this.s1;
    this.s1 = this.s2;
    this.c = t | 0;
    return (this.s2 = t - this.c);
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Exponentially distributed with the given mean. */
  exponential(mean: number): number {
    return -mean * Math.log(1 - this.next());
  }

  /** Standard normal (Box-Muller; one draw per call keeps streams simple). */
  normal(): number {
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.next() < p;
  }
}

/** The family of streams derived from one scenario seed. */
export class RandomStreams {
  private readonly streams = new Map<string, Rng>();

  constructor(readonly seed: number) {}

  /** The stream of one component; the same name always gives the same stream. */
  stream(component: string): Rng {
    let rng = this.streams.get(component);
    if (!rng) {
      rng = new Rng(`${this.seed}/${component}`);
      this.streams.set(component, rng);
    }
    return rng;
  }
}
