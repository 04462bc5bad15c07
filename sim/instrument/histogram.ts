// A latency histogram with bounded memory: exact below 128 ns, then 128
// log-linear buckets per power of two (under 0.8% error), exact count, sum,
// min and max. Percentiles are clamped to [min, max], so a handler that always
// costs 358 ms reports exactly 358 ms.

const SUB_BITS = 7;
const SUB = 1 << SUB_BITS;

export class Histogram {
  count = 0;
  sumNs = 0;
  minNs = Infinity;
  maxNs = 0;
  private readonly buckets = new Map<number, number>();

  record(ns: number): void {
    this.count++;
    this.sumNs += ns;
    if (ns < this.minNs) this.minNs = ns;
    if (ns > this.maxNs) this.maxNs = ns;
    const b = bucketOf(ns);
    this.buckets.set(b, (this.buckets.get(b) ?? 0) + 1);
  }

  /** The value at quantile q in [0, 1] (0 when empty). */
  quantile(q: number): number {
    if (this.count === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.count));
    const keys = [...this.buckets.keys()].sort((a, b) => a - b);
    let seen = 0;
    for (const k of keys) {
      seen += this.buckets.get(k)!;
      if (seen >= rank) return Math.min(this.maxNs, Math.max(this.minNs, middleOf(k)));
    }
    return this.maxNs;
  }
}

function bucketOf(ns: number): number {
  const v = Math.floor(ns);
  if (v < SUB) return v;
  let e = Math.floor(Math.log2(v));
  if (2 ** e > v) e--;
  else if (2 ** (e + 1) <= v) e++;
  const shift = e - SUB_BITS;
  const sub = Math.floor(v / 2 ** shift) - SUB;
  return SUB + shift * SUB + sub;
}

function middleOf(bucket: number): number {
  if (bucket < SUB) return bucket;
  const shift = Math.floor((bucket - SUB) / SUB);
  const sub = (bucket - SUB) % SUB;
  const lo = (SUB + sub) * 2 ** shift;
  return Math.round(lo + 2 ** shift / 2);
}
