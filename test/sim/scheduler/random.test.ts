// Seeded streams: the same numbers as seedrandom's own Alea for any seed (the
// recorded fingerprints depend on every draw), and streams of different
// components independent of each other.
import seedrandom from 'seedrandom';
import { describe, expect, it } from 'vitest';
import { RandomStreams, Rng, TAIL_EDGE } from '../../../sim/scheduler/random.ts';

describe('Rng', () => {
  it('draws what seedrandom.alea draws, seed for seed', () => {
    for (const seed of ['', '0/vcpu0.workload', '2012/disk0.latency', 'x'.repeat(300), '\u00e9\u4e2d']) {
      const ours = new Rng(seed);
      const theirs = seedrandom.alea(seed);
      for (let i = 0; i < 200_000; i++) {
        const a = ours.next();
        const b = theirs();
        if (a !== b) expect([i, a]).toEqual([i, b]);
      }
    }
  });

  it('draws exponentials with the exponential distribution: its CDF, moments and tail', () => {
    const n = 200_000;
    for (const seed of ['1/hold', '2012/disk0.latency', '358/vcpu0.exits']) {
      const rng = new Rng(seed);
      const x = new Float64Array(n);
      let sum = 0;
      let squares = 0;
      for (let i = 0; i < n; i++) {
        const v = rng.exponential(1);
        x[i] = v;
        sum += v;
        squares += v * v;
      }
      x.sort();
      // Kolmogorov-Smirnov against 1 - e^-x: under 1.63 / sqrt(n) (the 1% level).
      let d = 0;
      for (let i = 0; i < n; i++) {
        const f = 1 - Math.exp(-x[i]!);
        d = Math.max(d, Math.abs(f - i / n), Math.abs(f - (i + 1) / n));
      }
      expect(d).toBeLessThan(1.63 / Math.sqrt(n));
      const mean = sum / n;
      expect(Math.abs(mean - 1)).toBeLessThan(0.01);
      expect(Math.abs(squares / n - mean * mean - 1)).toBeLessThan(0.03);
      // Past the ziggurat's base strip (7.697): e^-7.697 of the draws, about 90, each the edge plus a fresh draw.
      const tail = x.filter((v) => v > TAIL_EDGE);
      expect(tail.length).toBeGreaterThan(50);
      expect(tail.length).toBeLessThan(140);
      expect(x[0]).toBeGreaterThanOrEqual(0);
      expect(x[n - 1]).toBeLessThan(25);
    }
  });

  it('scales exponentials by their mean, and draws the same numbers for the same seed', () => {
    const a = new Rng('7/vcpu1.exits');
    const b = new Rng('7/vcpu1.exits');
    for (let i = 0; i < 1000; i++) expect(a.exponential(5e6)).toBe(5e6 * b.standardExponential());
  });

  it('keeps each component\'s stream apart from the others\'', () => {
    const a = new RandomStreams(7);
    const b = new RandomStreams(7);
    const alone = [b.stream('vcpu0').next(), b.stream('vcpu0').next()];
    const first = a.stream('vcpu0').next();
    for (let i = 0; i < 100; i++) a.stream('vcpu1').next();
    expect([first, a.stream('vcpu0').next()]).toEqual(alone);
    expect(a.stream('vcpu1').next()).not.toBe(alone[0]);
  });
});
