// The latency histogram: exact count, sum, min and max; percentiles exact
// below 128 ns and within 0.8% above, clamped to [min, max], for values from
// nanoseconds to days (past 2^32 ns too).
import { describe, expect, it } from 'vitest';
import { Histogram } from '../../../sim/instrument/histogram.ts';

describe('Histogram', () => {
  it('reports a handler that always costs the same exactly', () => {
    const h = new Histogram();
    for (let i = 0; i < 100; i++) h.record(358_000_000);
    expect([h.quantile(0.5), h.quantile(0.99), h.maxNs, h.minNs, h.count, h.sumNs]).toEqual([358e6, 358e6, 358e6, 358e6, 100, 358e8]);
  });

  it('is exact below 128 ns and within 0.8% above, up to days', () => {
    for (const v of [0, 1, 127, 128, 129, 1000, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 123_456_789_012, 2 ** 47 + 3]) {
      const h = new Histogram();
      for (let i = 0; i < 3; i++) h.record(v);
      h.record(2 ** 48);
      const mid = h.quantile(0.5);
      if (v < 128) expect(mid).toBe(v);
      else expect(Math.abs(mid - v) / v).toBeLessThan(0.008);
    }
  });

  it('orders its percentiles', () => {
    const h = new Histogram();
    let x = 12345;
    for (let i = 0; i < 10_000; i++) {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      h.record(x % 10_000_000);
    }
    const q = [0.01, 0.5, 0.9, 0.99, 1].map((p) => h.quantile(p));
    expect([...q].sort((a, b) => a - b)).toEqual(q);
    expect(q[4]).toBeLessThanOrEqual(h.maxNs);
    expect((h.maxNs - q[4]!) / h.maxNs).toBeLessThan(0.008);
    expect(Math.abs(q[1]! - 5_000_000) / 5_000_000).toBeLessThan(0.05);
  });
});
