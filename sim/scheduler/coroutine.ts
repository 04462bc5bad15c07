// Coroutine threads in simulated time. A thread body is a generator that
// yields operations; an interpreter (the simulation Platform) either answers an
// operation at once or suspends the thread until a wake-up or a timeout. Wakes
// go through the event queue, so a thread woken at time t runs after whatever
// else was already due at t: causality and tie order come from the scheduler.
// It knows nothing about what the operations mean.
import type { EventTarget, Scheduler } from './scheduler.ts';

/** An interpreter's answer meaning "the thread is suspended". */
export const PENDING: unique symbol = Symbol('pending');

/** What the backend supplies: how to answer operations, and who runs now. */
export interface CoroutineHost<Op> {
  interpret(co: Coroutine<Op>, op: Op): unknown;
  /** Called before the body runs a step, and after it stops (yield or return). */
  enter(co: Coroutine<Op>): void;
  leave(co: Coroutine<Op>): void;
  /** Called once when the body returns. */
  exited(co: Coroutine<Op>): void;
}

export class Coroutine<Op> implements EventTarget {
  readonly tag: number;
  /** False once the body has returned. */
  alive = true;

  private gen: Generator<Op, void, unknown> | undefined;
  private token = 0;
  private suspended = false;
  private wakePending = false;
  private hasValue = false;
  private value: unknown;
  private timeoutValue: unknown;
  private cleanup: (() => void) | undefined;

  constructor(
    readonly scheduler: Scheduler,
    readonly id: number,
    readonly name: string,
    private readonly body: () => Generator<Op, void, unknown>,
    private readonly host: CoroutineHost<Op>,
  ) {
    this.tag = scheduler.register(this);
  }

  /** Starts the body at the current time (after events already due now). */
  start(): void {
    this.suspend(this.scheduler.now, undefined);
  }

  /** True while the thread waits for a wake-up or a timeout. */
  get isSuspended(): boolean {
    return this.suspended;
  }

  /**
   * Suspends the thread. It resumes at timeoutNs with timeoutValue (never,
   * when timeoutNs < 0) unless wake() comes first. cleanup runs on resume.
   */
  suspend(timeoutNs: number, timeoutValue: unknown, cleanup?: () => void): void {
    this.token++;
    this.suspended = true;
    this.wakePending = false;
    this.hasValue = false;
    this.timeoutValue = timeoutValue;
    this.cleanup = cleanup;
    if (timeoutNs >= 0) this.scheduler.at(timeoutNs, this.tag, this.token);
  }

  /** Resumes a suspended thread with value, now. False if it was not waiting. */
  wake(value: unknown): boolean {
    if (!this.suspended || this.wakePending) return false;
    this.wakePending = true;
    this.hasValue = true;
    this.value = value;
    this.scheduler.at(this.scheduler.now, this.tag, this.token);
    return true;
  }

  fire(arg: number): void {
    if (arg !== this.token || !this.suspended) return; // a stale timeout or wake
    this.token++;
    this.suspended = false;
    this.wakePending = false;
    const value = this.hasValue ? this.value : this.timeoutValue;
    this.value = undefined;
    const cleanup = this.cleanup;
    this.cleanup = undefined;
    if (cleanup) cleanup();
    this.step(value);
  }

  private step(input: unknown): void {
    const host = this.host;
    host.enter(this);
    try {
      if (!this.gen) this.gen = this.body();
      let value = input;
      for (;;) {
        const r = this.gen.next(value);
        if (r.done) {
          this.alive = false;
          host.exited(this);
          return;
        }
        value = host.interpret(this, r.value);
        if (value === PENDING) return;
      }
    } finally {
      host.leave(this);
    }
  }
}
