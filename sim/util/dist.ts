// Latency and cost distributions, sampled from a seeded stream into whole
// nanoseconds. A scenario gives handler costs, I/O latencies and intervals as
// one of these; "358ms" alone is a fixed value.
import type { Rng } from '../scheduler/random.ts';

export type Dist =
  | { readonly dist: 'fixed'; readonly value_ns: number }
  | { readonly dist: 'uniform'; readonly min_ns: number; readonly max_ns: number }
  | { readonly dist: 'exponential'; readonly mean_ns: number }
  | { readonly dist: 'normal'; readonly mean_ns: number; readonly stddev_ns: number }
  | { readonly dist: 'lognormal'; readonly median_ns: number; readonly sigma: number }
  | { readonly dist: 'mixture'; readonly of: readonly { readonly p: number; readonly value: Dist }[] };

/** Draws one value in integer nanoseconds (never negative). */
export function sample(d: Dist, rng: Rng): number {
  switch (d.dist) {
    case 'fixed':
      return d.value_ns;
    case 'uniform':
      return Math.round(rng.uniform(d.min_ns, d.max_ns));
    case 'exponential':
      return Math.round(rng.exponential(d.mean_ns));
    case 'normal':
      return Math.max(0, Math.round(d.mean_ns + d.stddev_ns * rng.normal()));
    case 'lognormal':
      return Math.round(d.median_ns * Math.exp(d.sigma * rng.normal()));
    case 'mixture': {
      let u = rng.next();
      for (const part of d.of) {
        if (u < part.p) return sample(part.value, rng);
        u -= part.p;
      }
      return sample(d.of[d.of.length - 1]!.value, rng);
    }
  }
}
