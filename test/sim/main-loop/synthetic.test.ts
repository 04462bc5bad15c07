// Synthetic main-loop work from a scenario: fd handlers, bottom halves and
// timers on each clock, each run under the BQL at its rate with its cost.
import { describe, expect, it } from 'vitest';
import { simulate } from '../../../sim/run.ts';
import { scenario, MS } from '../helpers.ts';

describe('synthetic handlers', () => {
  it('runs fd, aio-fd, bh and timer handlers at their rates with their costs', () => {
    const { result } = simulate(scenario(`
name: synthetic
seed: 3
duration: 10s
main_loop:
  handlers:
    - { name: serial.read, type: fd, rate: 100/s, cost: 1ms }
    - { name: aio.read, type: aio-fd, interval: 50ms, cost: 2ms }
    - { name: monitor.bh, type: bh, rate: 10/s, cost: { dist: uniform, min: 1ms, max: 3ms } }
    - { name: rtc.tick, type: timer, interval: 1s, clock: virtual, cost: 150ms, start: 500ms }
    - { name: host.tick, type: timer, interval: { dist: exponential, mean: 200ms }, clock: host, cost: { dist: normal, mean: 1ms, stddev: 100us } }
    - { name: mix, type: bh, rate: 5/s, cost: { dist: mixture, of: [ { p: 0.5, value: 1us }, { p: 0.5, value: { dist: lognormal, median: 1ms, sigma: 0.5 } } ] } }
`));
    const by = Object.fromEntries(result.handlers.map((h) => [h.name, h]));
    // Arrivals during the 150 ms ticks coalesce on the fd (one read serves them).
    expect(by['serial.read']!.count).toBeGreaterThan(800);
    expect(by['serial.read']!.count).toBeLessThan(1100);
    expect(by['serial.read']!.max_ns).toBe(MS);
    expect(by['aio.read']!.count).toBeGreaterThan(170);
    expect(by['aio.read']!.count).toBeLessThanOrEqual(200);
    expect(by['monitor.bh']!.p50_ns).toBeGreaterThanOrEqual(MS);
    expect(by['monitor.bh']!.max_ns).toBeLessThanOrEqual(3 * MS);
    expect(by['rtc.tick']!.count).toBe(10);
    expect(by['host.tick']!.count).toBeGreaterThan(20);
    expect(by['mix']!.count).toBeGreaterThan(20);
    expect(result.slow.map((s) => s.name)).toEqual(Array(10).fill('rtc.tick'));
    expect(result.slow[0]!.at_ns).toBeGreaterThanOrEqual(500 * MS);
    expect(result.slow[0]!.at_ns).toBeLessThan(510 * MS);
    expect(result.main_loop.blocked_max_ns).toBeGreaterThanOrEqual(150 * MS);
  });
});
