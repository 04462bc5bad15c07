// A latency histogram with bounded memory: exact below 128 ns, then 128
// log-linear buckets per power of two (under 0.8% error), exact count, sum,
// min and max. Percentiles are clamped to [min, max], so a handler that always
// costs 358 ms reports exactly 358 ms. Counts are kept per bucket index in a
// typed array that grows with the largest bucket seen; the bucket of a value
// comes from its leading zeros and a multiplication by a power of two (exact),
// with no logarithm and no map.

const SUB_BITS = 7;
const SUB = 1 << SUB_BITS;
/** 2^-k for k = 0..63: dividing by a power of two, exactly, as a multiplication. */
const INV_POW2 = Float64Array.from({ length: 64 }, (_, k) => 2 ** -k);

export class Histogram {
  count = 0;
  sumNs = 0;
  minNs = Infinity;
  maxNs = 0;
  /** Count per bucket index. */
  private buckets = new Float64Array(2 * SUB);

  record(ns: number): void {
    this.count++;
    this.sumNs += ns;
    if (ns < this.minNs) this.minNs = ns;
    if (ns > this.maxNs) this.maxNs = ns;
    const b = bucketOf(ns);
    if (b >= this.buckets.length) this.grow(b);
    this.buckets[b]!++;
  }

  /** The value at quantile q in [0, 1] (0 when empty). */
  quantile(q: number): number {
    if (this.count === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let k = 0; k < this.buckets.length; k++) {
      seen += this.buckets[k]!;
      if (seen >= rank) return Math.min(this.maxNs, Math.max(this.minNs, middleOf(k)));
    }
    return this.maxNs;
  }

  private grow(bucket: number): void {
    let n = this.buckets.length;
    while (n <= bucket) n *= 2;
    const b = new Float64Array(n);
    b.set(this.buckets);
    this.buckets = b;
  }
}

/** The exponent of v's highest set bit (v >= 1, an integer below 2^53). */
function highBit(v: number): number {
  if (v < 2 ** 32) return 31 - Math.clz32(v);
  return 63 - Math.clz32(Math.floor(v * INV_POW2[32]!));
}

function bucketOf(ns: number): number {
  const v = Math.floor(ns);
  if (v < SUB) return v;
  const shift = highBit(v) - SUB_BITS;
  const sub = Math.floor(v * INV_POW2[shift]!) - SUB;
  return SUB + shift * SUB + sub;
}

function middleOf(bucket: number): number {
  if (bucket < SUB) return bucket;
  const shift = Math.floor((bucket - SUB) / SUB);
  const sub = (bucket - SUB) % SUB;
  const lo = (SUB + sub) * 2 ** shift;
  return Math.round(lo + 2 ** shift / 2);
}
