// Seeded random streams. One scenario seed derives an independent stream per
// component ("vcpu0.workload", "disk0.latency", ...), so adding a component or
// drawing more numbers in one never shifts the numbers another one sees.
// The generator is seedrandom's Alea: fast, and the same on every platform.
import seedrandom from 'seedrandom';

export class Rng {
  private readonly prng: () => number;

  constructor(readonly seed: string) {
    this.prng = seedrandom.alea(seed);
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.prng();
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.prng() * n);
  }

  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.prng();
  }

  /** Exponentially distributed with the given mean. */
  exponential(mean: number): number {
    return -mean * Math.log(1 - this.prng());
  }

  /** Standard normal (Box-Muller; one draw per call keeps streams simple). */
  normal(): number {
    const u = 1 - this.prng();
    const v = this.prng();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.prng() < p;
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
