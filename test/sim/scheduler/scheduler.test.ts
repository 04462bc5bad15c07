// Simulated time: (due, seq) tie order, bounds that end a run as a
// liveness failure carrying the seed, one-shot callbacks and xstate's Clock.
import { describe, expect, it } from 'vitest';
import { createActor, createMachine } from 'xstate';
import { EventQueue, LivenessError, Scheduler } from '../../../sim/scheduler/index.ts';

describe('EventQueue', () => {
  it('pops events due at the same time in the order they were pushed', () => {
    const q = new EventQueue(4);
    for (let i = 0; i < 100; i++) q.push(5, i, i);
    const order: number[] = [];
    while (q.pop()) order.push(q.topTag);
    expect(order).toEqual([...Array(100).keys()]);
  });

  it('pops in (due, seq) order for any push order', () => {
    const q = new EventQueue(2);
    let x = 12345;
    const pushed: [number, number][] = [];
    for (let i = 0; i < 5000; i++) {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      const due = x % 97;
      pushed.push([due, q.push(due, i, 0)]);
    }
    const expected = [...pushed].sort((a, b) => a[0] - b[0] || a[1] - b[1]).map((p) => p[1]);
    const got: number[] = [];
    while (q.pop()) got.push(q.topSeq);
    expect(got).toEqual(expected);
  });
});

describe('Scheduler', () => {
  it('runs callbacks at their time, ties in scheduling order', () => {
    const s = new Scheduler({ seed: 1 });
    const log: string[] = [];
    s.callAt(10, () => log.push(`a@${s.now}`));
    s.callAt(5, () => log.push(`b@${s.now}`));
    s.callAt(10, () => log.push(`c@${s.now}`));
    const cancelled = s.callAt(7, () => log.push('never'));
    s.cancelCall(cancelled);
    expect(s.run()).toBe('idle');
    expect(log).toEqual(['b@5', 'a@10', 'c@10']);
  });

  it('stops at the until time with the clock there', () => {
    const s = new Scheduler({ seed: 1 });
    s.callAt(100, () => {});
    expect(s.run(50)).toBe('until');
    expect(s.now).toBe(50);
  });

  it('turns an endless run into a liveness failure that names the seed', () => {
    const s = new Scheduler({ seed: 4242, maxEvents: 1000 });
    const tick = () => s.callAfter(1, tick);
    tick();
    expect(() => s.run()).toThrowError(LivenessError);
    try {
      s.run();
    } catch (e) {
      expect((e as LivenessError).message).toContain('seed 4242');
    }
  });

  it('counts bulk work charged by events toward the event bound, and says so', () => {
    const s = new Scheduler({ seed: 77, maxEvents: 100 });
    let fired = 0;
    const tick = () => {
      fired++;
      s.charge(9.5); // each event does ten events' worth, less a half
      s.callAfter(1, tick);
    };
    s.callAt(0, tick);
    // After 10 events, 95 charged: 105 events' worth.
    expect(() => s.run()).toThrowError(/liveness bound hit \(events\): more than 100 events \(10 fired, 95 in bulk work: page writes\); seed 77/);
    expect(fired).toBe(10);
    expect(s.events).toBe(10);
    // Without charges the bound counts events alone.
    const plain = new Scheduler({ seed: 77, maxEvents: 100 });
    const again = () => plain.callAfter(1, again);
    again();
    expect(() => plain.run()).toThrowError(/more than 100 events; seed 77/);
    expect(plain.events).toBe(100);
  });

  it('bounds simulated time', () => {
    const s = new Scheduler({ seed: 9, maxTimeNs: 1_000 });
    s.callAt(2_000, () => {});
    expect(() => s.run()).toThrowError(/liveness bound hit \(time\).*seed 9/);
  });

  it('rejects times that are not integers or lie in the past', () => {
    const s = new Scheduler({ seed: 1 });
    expect(() => s.callAt(1.5, () => {})).toThrow(RangeError);
    s.callAt(10, () => expect(() => s.callAt(5, () => {})).toThrow(RangeError));
    s.run();
  });

  it('drives an xstate actor in simulated time', () => {
    const s = new Scheduler({ seed: 1 });
    const m = createMachine({ initial: 'a', states: { a: { after: { 358: 'b' } }, b: {} } });
    const actor = createActor(m, { clock: s.clock });
    const seen: [string, number][] = [];
    actor.subscribe((snap) => seen.push([String(snap.value), s.now]));
    actor.start();
    s.run();
    expect(seen).toEqual([['a', 0], ['b', 358_000_000]]);
  });

  it('gives each component its own reproducible stream', () => {
    const a = new Scheduler({ seed: 5 }).random;
    const b = new Scheduler({ seed: 5 }).random;
    const xs = [a.stream('disk0').next(), a.stream('vcpu0').next()];
    const ys = [b.stream('vcpu0').next(), b.stream('disk0').next()];
    expect(xs).toEqual([ys[1], ys[0]]);
    expect(new Scheduler({ seed: 6 }).random.stream('disk0').next()).not.toBe(xs[0]);
  });
});

describe('Scheduler.advanceTo', () => {
  it('moves the clock and counts an event only when that event would be the next one', () => {
    const s = new Scheduler({ seed: 1, maxTimeNs: 1000 });
    const seen: string[] = [];
    s.callAt(100, () => seen.push('other at 100'));
    s.callAt(10, () => {
      // Inside run(): before the next event, yes; at its time (it was queued first) or past it, no.
      seen.push(`50: ${s.advanceTo(50)} at ${s.now}`);
      seen.push(`100: ${s.advanceTo(100)} at ${s.now}`);
      seen.push(`99: ${s.advanceTo(99)} at ${s.now}`);
    });
    expect(s.advanceTo(5)).toBe(false);
    s.run(500);
    expect(seen).toEqual(['50: true at 50', '100: false at 50', '99: true at 99', 'other at 100']);
    expect(s.events).toBe(4);
  });

  it('stays within run()\'s until, the time bound, the event bound and a stop', () => {
    const s = new Scheduler({ seed: 1, maxTimeNs: 300, maxEvents: 4 });
    const got: boolean[] = [];
    s.callAt(0, () => {
      got.push(s.advanceTo(250), s.advanceTo(301));
      s.stop();
      got.push(s.advanceTo(260));
    });
    s.run(280);
    s.callAt(270, () => got.push(s.advanceTo(275), s.advanceTo(276)));
    s.run(280);
    // until 280: 301 is past it; stopped: no; 4 events at most: the second advance would be the fifth.
    expect(got).toEqual([true, false, false, true, false]);
  });
});
