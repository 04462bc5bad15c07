// The thread table both Platform backends keep over their coroutines: which
// threads exist, which one runs model code now (for BQL accounting and lock
// discipline), how much CPU each spent, and the check of a delay's length.
// What an operation does stays with the backend. Knows nothing of QEMU.
import { Coroutine, type CoroutineHost } from './coroutine.ts';
import type { Scheduler } from './scheduler.ts';

export class CoThread<Op> {
  /** CPU time spent through cpu(). */
  cpuNs = 0;
  co!: Coroutine<Op>;
  constructor(readonly id: number, readonly name: string) {}
}

export abstract class ThreadHost<Op> implements CoroutineHost<Op> {
  readonly threads: CoThread<Op>[] = [];
  /** Stands for "no thread": model code run from an event callback. */
  private readonly outside = new CoThread<Op>(-1, '(event)');
  protected running: CoThread<Op> = this.outside;

  constructor(readonly scheduler: Scheduler) {}

  /** Starts a thread running body on the scheduler. */
  spawn(name: string, body: () => Generator<Op, void, unknown>): CoThread<Op> {
    const t = new CoThread<Op>(this.threads.length, name);
    t.co = new Coroutine<Op>(this.scheduler, t.id, name, body, this);
    this.threads.push(t);
    t.co.start();
    return t;
  }

  /** The thread running model code now. */
  current(): CoThread<Op> {
    return this.running;
  }

  abstract interpret(co: Coroutine<Op>, op: Op): unknown;

  enter(co: Coroutine<Op>): void {
    this.running = this.threads[co.id]!;
  }

  leave(): void {
    this.running = this.outside;
  }

  exited(): void {}
}

/** A delay's length, checked: a non-negative integer number of ns. */
export function checkDelayNs(thread: { readonly name: string }, ns: number): number {
  if (!Number.isSafeInteger(ns) || ns < 0) {
    throw new RangeError(`${thread.name}: delay of ${ns} ns is not a non-negative integer`);
  }
  return ns;
}
