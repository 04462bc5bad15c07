// Seeded streams: the same numbers as seedrandom's own Alea for any seed (the
// recorded fingerprints depend on every draw), and streams of different
// components independent of each other.
import seedrandom from 'seedrandom';
import { describe, expect, it } from 'vitest';
import { RandomStreams, Rng } from '../../../sim/scheduler/random.ts';

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
