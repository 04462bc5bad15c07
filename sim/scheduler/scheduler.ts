// The simulated clock. Time is an integer number of nanoseconds; events due at the
// same instant run in the order they were scheduled (seq). Targets are
// registered once and events carry only (target, argument) numbers; one-shot
// callbacks exist for the rare cases that need a closure (xstate's delayed
// events, I/O completions). Every run is bounded in simulated time and in event
// count: crossing a bound is a LivenessError carrying the seed, never a hang.
// A thread that would sleep until a moment before anything else is due may
// go on at once instead (advanceTo): the event it would have queued is the
// very next one, so the order, the clock and the event count are the same.
// It knows nothing of QEMU.
import { EventQueue } from './event-queue.ts';
import { RandomStreams } from './random.ts';
import { xstateClock, type Clock } from './clock.ts';

/** Something that events can be addressed to. */
export interface EventTarget {
  fire(arg: number): void;
}

export type LivenessBound = 'time' | 'events';

/** A run crossed one of its hard bounds: a liveness failure (exit code 3). */
export class LivenessError extends Error {
  constructor(
    readonly bound: LivenessBound,
    readonly seed: number,
    readonly nowNs: number,
    readonly events: number,
    detail: string,
  ) {
    super(`liveness bound hit (${bound}): ${detail}; seed ${seed}`);
    this.name = 'LivenessError';
  }
}

export interface SchedulerOptions {
  seed: number;
  /** Hard bound in simulated time; an event due later is a liveness failure. */
  maxTimeNs?: number;
  /** Hard bound on the number of events fired, bulk work charged (charge()) counted in. */
  maxEvents?: number;
}

export type RunOutcome = 'idle' | 'until' | 'stopped';

const CALLBACK_TAG = 0;

export class Scheduler {
  /** Current simulated time in nanoseconds. */
  now = 0;
  /** Events fired so far. */
  events = 0;
  readonly seed: number;
  readonly random: RandomStreams;
  readonly maxTimeNs: number;
  readonly maxEvents: number;
  /** Bulk work the model did inside events, in events' worth (charge()). */
  charged = 0;

  private readonly queue = new EventQueue();
  private readonly targets: EventTarget[] = [];
  private readonly callbacks = new Map<number, () => void>();
  private nextCallbackId = 1;
  private stopped = false;
  /** While run() fires events: the time it may not pass (-1 outside run()). */
  private runLimitNs = -1;
  /** Events that may still fire: maxEvents less the whole events charged. */
  private eventBudget: number;

  constructor(options: SchedulerOptions) {
    this.seed = options.seed;
    this.random = new RandomStreams(options.seed);
    this.maxTimeNs = options.maxTimeNs ?? Number.MAX_SAFE_INTEGER;
    this.maxEvents = options.maxEvents ?? Number.MAX_SAFE_INTEGER;
    this.eventBudget = this.maxEvents;
    this.targets.push({ fire: (id) => this.fireCallback(id) });
  }

  /** Registers an event target; returns the tag events address it by. */
  register(target: EventTarget): number {
    this.targets.push(target);
    return this.targets.length - 1;
  }

  /** Schedules an event at an absolute time; returns its sequence number. */
  at(dueNs: number, tag: number, arg = 0): number {
    if (!(dueNs >= this.now) || !Number.isSafeInteger(dueNs)) {
      throw new RangeError(`event time ${dueNs} ns is not an integer at or after now (${this.now} ns)`);
    }
    return this.queue.push(dueNs, tag, arg);
  }

  /** Schedules an event delayNs from now. */
  after(delayNs: number, tag: number, arg = 0): number {
    return this.at(this.now + delayNs, tag, arg);
  }

  /** Runs fn at an absolute time; returns an id for cancelCall. */
  callAt(dueNs: number, fn: () => void): number {
    const id = this.nextCallbackId++;
    this.callbacks.set(id, fn);
    this.at(dueNs, CALLBACK_TAG, id);
    return id;
  }

  callAfter(delayNs: number, fn: () => void): number {
    return this.callAt(this.now + delayNs, fn);
  }

  /** Cancels a callback that has not fired yet; a no-op otherwise. */
  cancelCall(id: number): void {
    this.callbacks.delete(id);
  }

  /** Due time of the next event (stale ones included), Infinity when none waits. */
  nextDueNs(): number {
    return this.queue.peekDue();
  }

  /** Number of events waiting, stale ones included. */
  get pending(): number {
    return this.queue.size;
  }

  /**
   * Counts work an event did in bulk (page writes drawn one by one, say)
   * toward the event bound, in events' worth: a run's bound then stands for
   * its wall time whatever its events do, not only for how many there are.
   */
  charge(events: number): void {
    this.charged += events;
    this.eventBudget = this.maxEvents - Math.floor(this.charged);
  }

  /** Makes run() return after the current event. */
  stop(): void {
    this.stopped = true;
  }

  /**
   * Fires events in (due, seq) order until the queue is empty, stop() is
   * called, or the next event is due after untilNs (the clock then reads
   * untilNs, as it does when the queue runs dry before a finite untilNs). Throws LivenessError when a hard bound is crossed.
   */
  run(untilNs = Number.MAX_SAFE_INTEGER): RunOutcome {
    const queue = this.queue;
    const targets = this.targets;
    const limitNs = untilNs < this.maxTimeNs ? untilNs : this.maxTimeNs;
    this.stopped = false;
    this.runLimitNs = limitNs;
    try {
      while (!this.stopped) {
        if (this.events >= this.eventBudget || !queue.pop(limitNs)) return this.boundary(queue.peekDue(), untilNs);
        this.events++;
        this.now = queue.topDue;
        targets[queue.topTag]!.fire(queue.topArg);
      }
    } finally {
      this.runLimitNs = -1;
    }
    return 'stopped';
  }

  /**
   * Moves the clock to dueNs and counts an event, as firing an event queued
   * for dueNs now would, if that event would be the next one: run() is
   * firing events, dueNs is within its bounds, and nothing else is due by
   * then (an event due at the same time was queued first and goes first).
   * False, and nothing changes, otherwise.
   */
  advanceTo(dueNs: number): boolean {
    if (this.stopped || !(dueNs <= this.runLimitNs) || this.events >= this.eventBudget || !(dueNs < this.queue.peekDue())) return false;
    if (!Number.isSafeInteger(dueNs) || dueNs < this.now) return false;
    this.events++;
    this.now = dueNs;
    return true;
  }

  /** Why run() stops before the event due at dueNs: the queue ran dry, untilNs came, or a bound. */
  private boundary(dueNs: number, untilNs: number): RunOutcome {
    if (dueNs === Infinity) {
      // Nothing left to happen: time still passes up to a finite until.
      if (untilNs < Number.MAX_SAFE_INTEGER) this.now = untilNs;
      return 'idle';
    }
    if (dueNs > untilNs) {
      this.now = untilNs;
      return 'until';
    }
    if (dueNs > this.maxTimeNs) {
      throw new LivenessError('time', this.seed, this.now, this.events,
        `simulated time would pass ${this.maxTimeNs} ns`);
    }
    const bulk = Math.floor(this.charged);
    throw new LivenessError('events', this.seed, this.now, this.events,
      `more than ${this.maxEvents} events${bulk > 0 ? ` (${this.events} fired, ${bulk} in bulk work: page writes)` : ''}`);
  }

  /** xstate's Clock on this scheduler: an actor's delayed events run in simulated time. */
  readonly clock: Clock = xstateClock((ns, fn) => this.callAfter(ns, fn), (id) => this.cancelCall(id));

  private fireCallback(id: number): void {
    const fn = this.callbacks.get(id);
    if (fn === undefined) return;
    this.callbacks.delete(id);
    fn();
  }
}
