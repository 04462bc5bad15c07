// Seeded random streams. One scenario seed derives an independent stream per
// component ("vcpu0.workload", "disk0.latency", ...), so adding a component or
// drawing more numbers in one never shifts the numbers another one sees.
// The generator is seedrandom's Alea: fast, and the same on every platform.
// seedrandom seeds it; the step runs here on the stream's own fields (the
// same arithmetic as seedrandom's, so the same numbers), which saves a
// closure call per draw.
// Exponential draws take Marsaglia and Tsang's ziggurat (G. Marsaglia,
// W. W. Tsang, "The ziggurat method for generating random variables", J. Stat.
// Software 5(8), 2000): the density is cut into 256 strips of equal area, and
// a draw picks a strip and a point in it from one uniform. About 99% of draws
// land under the curve and cost a multiply; the rest test the strip's curved
// edge (Math.exp) or, from the base strip, draw the tail past its edge
// (Math.log). Inverting the distribution instead (-log u) costs a Math.log
// per draw, the largest part of a simple event's cost.
import seedrandom from 'seedrandom';

/** Strips of the exponential ziggurat, the right edge of the base strip (where the tail begins) and each strip's area (Marsaglia and Tsang's constants for 256). */
const STRIPS = 256;
export const TAIL_EDGE = 7.69711747013104972;
const STRIP_AREA = 0.0039496598225815571993;

/**
 * Strip i (i >= 1) spans x in [0, EDGE[i]] and the density from e^-EDGE[i]
 * up to e^-EDGE[i + 1]; EDGE[0] is the base strip's width were its tail
 * squared off (its area / e^-TAIL_EDGE); EDGE[STRIPS] is 0. DENSITY[i] is
 * e^-EDGE[i], and INSIDE[i] = EDGE[i + 1] / EDGE[i] the share of strip i
 * wholly under the curve.
 */
const EDGE = new Float64Array(STRIPS + 1);
const DENSITY = new Float64Array(STRIPS + 1);
const INSIDE = new Float64Array(STRIPS);
EDGE[0] = STRIP_AREA / Math.exp(-TAIL_EDGE);
EDGE[1] = TAIL_EDGE;
for (let i = 1; i < STRIPS - 1; i++) EDGE[i + 1] = -Math.log(Math.exp(-EDGE[i]!) + STRIP_AREA / EDGE[i]!);
for (let i = 0; i <= STRIPS; i++) DENSITY[i] = Math.exp(-EDGE[i]!);
for (let i = 0; i < STRIPS; i++) INSIDE[i] = EDGE[i + 1]! / EDGE[i]!;

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
    return mean * this.standardExponential();
  }

  /**
   * Exponential with mean 1, by the ziggurat (see the header). One uniform
   * gives the strip (its top 8 bits) and the point across it (the other 24).
   */
  standardExponential(): number {
    for (;;) {
      const u = this.next() * STRIPS;
      const i = u | 0;
      const across = u - i;
      if (across < INSIDE[i]!) return across * EDGE[i]!;
      // Past the base strip's edge: the tail, memoryless, is the edge plus a fresh draw.
      if (i === 0) return TAIL_EDGE - Math.log(1 - this.next());
      const x = across * EDGE[i]!;
      if (DENSITY[i]! + this.next() * (DENSITY[i + 1]! - DENSITY[i]!) < Math.exp(-x)) return x;
    }
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
