// Waiting and locking between coroutine threads, the part both Platform
// backends share: a wait returns at once when something is ready, else the
// thread is parked on every waitable with an optional timeout and woken by the
// first one set; a mutex is handed to its waiters in FIFO order. What "now"
// means and how a thread is resumed stay with the backend (simulated time and
// the event queue; the monotonic clock and epoll). Knows nothing of QEMU.
import { PENDING, type Coroutine } from './coroutine.ts';

/** What the primitives need of a coroutine: to park it and to wake it. */
export type Parkable = Pick<Coroutine<unknown>, 'wake' | 'suspend'>;

/** A thread as the primitives see it: a name and its coroutine. */
export interface SyncThread {
  readonly name: string;
  readonly co: Parkable;
}

/** What a wait keeps on its thread while parked: the set, and the one closure that unparks it (made once per thread). */
interface Waiting {
  waitSet?: readonly Waitable[];
  unwait?: () => void;
}

/** Something a thread can wait for: readable while ready, with its waiting threads. */
export interface Waitable {
  readonly ready: boolean;
  readonly waiters: SyncThread[];
}

/** The value a wait resumes with when a waitable woke it (the caller re-reads readiness). */
export const WOKEN: unique symbol = Symbol('woken');

const NONE: readonly never[] = Object.freeze([]);

/** Wakes every thread waiting on a waitable that just became ready. */
export function wakeWaiters(w: Waitable): void {
  for (const t of w.waiters) t.co.wake(WOKEN);
}

/**
 * Starts a wait of thread on set: returns the ready ones now (or none when the
 * timeout is 0), else parks the thread until one is set or timeoutNs passes
 * (-1: no timeout) and returns PENDING. deadlineNs is now + timeoutNs in the
 * backend's clock.
 */
export function beginWait<W extends Waitable>(thread: SyncThread, set: readonly W[], timeoutNs: number, deadlineNs: number): unknown {
  if (set.some((n) => n.ready)) return set.filter((n) => n.ready);
  if (timeoutNs === 0) return NONE;
  for (const n of set) n.waiters.push(thread);
  const t = thread as SyncThread & Waiting;
  t.waitSet = set;
  t.unwait ??= () => {
    for (const n of t.waitSet!) n.waiters.splice(n.waiters.indexOf(thread), 1);
    t.waitSet = undefined;
  };
  thread.co.suspend(timeoutNs < 0 ? -1 : deadlineNs, NONE, t.unwait);
  return PENDING;
}

/** What a wait returns once resumed: the set's ready members if a waitable woke it. */
export function waitResult<W extends { readonly ready: boolean }>(resumed: unknown, set: readonly W[]): readonly W[] {
  if (resumed !== WOKEN) return resumed as readonly W[];
  return set.some((n) => n.ready) ? set.filter((n) => n.ready) : NONE;
}

/** A mutex between coroutine threads, handed to waiters in FIFO order. */
export class CoMutex<T extends SyncThread = SyncThread> {
  owner: T | null = null;
  readonly waiters: T[] = [];

  constructor(readonly name: string) {}

  /** Takes the mutex for thread: undefined when it got it, PENDING when it waits. */
  lock(thread: T): unknown {
    if (this.owner === thread) throw new Error(`${thread.name} locks ${this.name} twice`);
    if (this.owner === null) {
      this.owner = thread;
      return undefined;
    }
    this.waiters.push(thread);
    thread.co.suspend(-1, undefined);
    return PENDING;
  }

  /** Releases the mutex held by thread; the first waiter owns it from now on. */
  unlock(thread: SyncThread): void {
    if (this.owner !== thread) {
      throw new Error(`${thread.name} unlocks ${this.name} held by ${this.owner?.name ?? 'nobody'}`);
    }
    const next = this.waiters.shift();
    this.owner = next ?? null;
    if (next) next.co.wake(undefined);
  }
}
