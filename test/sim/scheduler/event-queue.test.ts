// The event queue against a sorted reference: pushes, pops and peeks mixed at
// random (a pop leaves the root empty for the next push, so the order of
// operations matters), many ties, growth from the smallest capacity, and
// every field of each popped event; populations that cross from the heap to
// the calendar and back, far-future outliers, bursts of ties, a gap between
// events that changes a thousandfold, pushes earlier than the last pop, and
// times near 2^53.
import { describe, expect, it } from 'vitest';
import { EventQueue } from '../../../sim/scheduler/event-queue.ts';

interface Ref {
  due: number;
  seq: number;
  tag: number;
  arg: number;
}

/** xorshift32: a seeded stream of 32-bit draws. */
function stream(seed: number): () => number {
  let x = seed | 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

/** Inserts into a list kept in (due, seq) order; seq only grows, so after every equal due. */
function insert(sorted: Ref[], e: Ref): void {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]!.due <= e.due) lo = mid + 1;
    else hi = mid;
  }
  sorted.splice(lo, 0, e);
}

/** Checks the popped event's fields; expect() only runs on a mismatch (it is slow per call). */
function expectTop(q: EventQueue, want: Ref): void {
  if (q.topDue !== want.due || q.topSeq !== want.seq || q.topTag !== want.tag || q.topArg !== want.arg) {
    expect([q.topDue, q.topSeq, q.topTag, q.topArg]).toEqual([want.due, want.seq, want.tag, want.arg]);
  }
}

/** Runs ops random operations on a queue and a reference; returns the popped seqs. */
function mixed(seed: number, ops: number, dueRange: number, pushShare: number): number[] {
  const q = new EventQueue(1);
  const ref: Ref[] = [];
  const draw = stream(seed);
  const popped: number[] = [];
  let now = 0;
  for (let i = 0; i < ops; i++) {
    const r = draw() % 100;
    if (r < pushShare) {
      // Like the scheduler: never before the last popped time.
      const due = now + (draw() % dueRange);
      const tag = draw() % 1000;
      const arg = draw() / 7;
      const seq = q.push(due, tag, arg);
      insert(ref, { due, seq, tag, arg });
    } else if (r < pushShare + 5) {
      const due = ref.length > 0 ? ref[0]!.due : Infinity;
      if (q.peekDue() !== due) expect(q.peekDue()).toBe(due);
    } else {
      const want = ref.shift();
      const got = q.pop();
      if (got !== (want !== undefined)) expect(got).toBe(want !== undefined);
      if (want) {
        expectTop(q, want);
        now = want.due;
        popped.push(want.seq);
      }
    }
    if (q.size !== ref.length) expect(q.size).toBe(ref.length);
  }
  while (q.pop()) {
    expectTop(q, ref.shift()!);
  }
  expect(ref).toEqual([]);
  expect(q.size).toBe(0);
  return popped;
}

describe('EventQueue', () => {
  it('matches a sorted reference under mixed pushes, pops and peeks', () => {
    for (let seed = 1; seed <= 8; seed++) {
      expect(mixed(seed, 20_000, 1_000_000, 55).length).toBeGreaterThan(1000);
    }
  });

  it('keeps (due, seq) order when most events tie', () => {
    for (let seed = 11; seed <= 14; seed++) mixed(seed, 20_000, 3, 50);
  });

  it('holds a steady population (pop then push, the hold model)', () => {
    const q = new EventQueue(16);
    const draw = stream(99);
    const ref: Ref[] = [];
    for (let i = 0; i < 300; i++) {
      const due = draw() % 50;
      insert(ref, { due, seq: q.push(due, i, -i), tag: i, arg: -i });
    }
    for (let i = 0; i < 30_000; i++) {
      const want = ref.shift()!;
      if (!q.pop()) expect.unreachable('the queue ran dry');
      expectTop(q, want);
      const due = q.topDue + (draw() % 40);
      insert(ref, { due, seq: q.push(due, q.topTag, q.topArg), tag: want.tag, arg: want.arg });
      if (q.size !== 300) expect(q.size).toBe(300);
    }
  });

  it('numbers events in push order and reports an empty queue', () => {
    const q = new EventQueue(16);
    expect(q.peekDue()).toBe(Infinity);
    expect(q.pop()).toBe(false);
    expect(q.push(7, 1, 0)).toBe(0);
    expect(q.push(7, 2, 0)).toBe(1);
    expect(q.sequence).toBe(2);
    expect(q.pop() && q.topTag).toBe(1);
    expect(q.size).toBe(1);
    expect(q.pop() && q.topTag).toBe(2);
    expect(q.size).toBe(0);
    expect(q.peekDue()).toBe(Infinity);
    expect(q.pop()).toBe(false);
  });

  it('keeps the order across the heap, the calendar and back, whatever the spread of due times', () => {
    const q = new EventQueue(1);
    const ref: Ref[] = [];
    const draw = stream(2024);
    let now = 0;
    let pops = 0;
    const pop = () => {
      const want = ref.shift()!;
      if (!q.pop()) expect.unreachable('the queue ran dry');
      expectTop(q, want);
      now = want.due;
      pops++;
    };
    // Phases of (population to reach, due-time draw): the gap between events
    // changes a thousandfold, some events are an hour away, some tie in bursts.
    const phases: [number, () => number][] = [
      [3000, () => now + (draw() % 2000)],
      [100, () => now + (draw() % 2000)],
      [6000, () => (draw() % 50 === 0 ? now + 3.6e12 + (draw() % 1000) : now + (draw() % 2_000_000))],
      [40, () => now + (draw() % 7 === 0 ? 0 : draw() % 30)],
      [2500, () => (draw() % 3 === 0 ? now : now + (draw() % 3))],
      [0, () => now + (draw() % 2000)],
    ];
    for (const [target, due] of phases) {
      for (let i = 0; i < 40_000 && (ref.length !== target); i++) {
        // Drift toward the target population, with pops and pushes mixed.
        const push = ref.length < target ? draw() % 100 < 70 : draw() % 100 < 30;
        if (push || ref.length === 0) {
          const d = due();
          const tag = draw() % 1000;
          insert(ref, { due: d, seq: q.push(d, tag, -pops), tag, arg: -pops });
        } else {
          pop();
        }
        if (q.size !== ref.length) expect(q.size).toBe(ref.length);
      }
      // Hold the population a while: the steady state where the calendar re-measures its width.
      for (let i = 0; i < 20_000 && ref.length > 0; i++) {
        pop();
        const d = due();
        insert(ref, { due: d, seq: q.push(d, 7, -pops), tag: 7, arg: -pops });
      }
    }
    while (ref.length > 0) pop();
    expect(q.pop()).toBe(false);
    expect(pops).toBeGreaterThan(100_000);
  });

  it('orders an event pushed earlier than the last one popped, in the calendar too', () => {
    const q = new EventQueue(16);
    for (let i = 0; i < 2000; i++) q.push(1_000_000 + i * 10, 1, i);
    q.pop();
    expect(q.topDue).toBe(1_000_000);
    q.push(5, 2, -1);
    q.push(5, 3, -2);
    expect(q.peekDue()).toBe(5);
    expect(q.pop() && [q.topDue, q.topTag]).toEqual([5, 2]);
    expect(q.pop() && [q.topDue, q.topTag]).toEqual([5, 3]);
    expect(q.pop() && q.topDue).toBe(1_000_010);
  });

  it('orders due times near 2^53 exactly', () => {
    const q = new EventQueue(16);
    const top = Number.MAX_SAFE_INTEGER;
    const dues: number[] = [];
    for (let i = 0; i < 3000; i++) dues.push(top - ((i * 7919) % 5000));
    for (const d of dues) q.push(d, 1, 0);
    const sorted = [...dues].sort((a, b) => a - b);
    for (const d of sorted) {
      q.pop();
      if (q.topDue !== d) expect(q.topDue).toBe(d);
    }
    expect(q.size).toBe(0);
  });
});
