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
  const waiters = w.waiters;
  for (let i = 0; i < waiters.length; i++) waiters[i]!.co.wake(WOKEN);
}

/** The members of set that are ready (an empty constant when none is: a wait allocates only what it returns). */
function readyOf<W extends { readonly ready: boolean }>(set: readonly W[]): readonly W[] {
  let ready: W[] | null = null;
  for (let i = 0; i < set.length; i++) {
    const n = set[i]!;
    if (n.ready) (ready ??= []).push(n);
  }
  return ready ?? NONE;
}

/** Removes thread from a list it is on (no array is made, as splice would). */
function remove<T>(list: T[], item: T): void {
  const i = list.indexOf(item);
  if (i < 0) return;
  for (let j = i + 1; j < list.length; j++) list[j - 1] = list[j]!;
  list.length--;
}

/**
 * Starts a wait of thread on set: returns the ready ones now (or none when the
 * timeout is 0), else parks the thread until one is set or timeoutNs passes
 * (-1: no timeout) and returns PENDING. deadlineNs is now + timeoutNs in the
 * backend's clock.
 */
export function beginWait<W extends Waitable>(thread: SyncThread, set: readonly W[], timeoutNs: number, deadlineNs: number): unknown {
  const ready = readyOf(set);
  if (ready.length > 0) return ready;
  if (timeoutNs === 0) return NONE;
  for (let i = 0; i < set.length; i++) set[i]!.waiters.push(thread);
  const t = thread as SyncThread & Waiting;
  t.waitSet = set;
  t.unwait ??= () => {
    const waitSet = t.waitSet!;
    for (let i = 0; i < waitSet.length; i++) remove(waitSet[i]!.waiters, thread);
    t.waitSet = undefined;
  };
  thread.co.suspend(timeoutNs < 0 ? -1 : deadlineNs, NONE, t.unwait);
  return PENDING;
}

/** What a wait returns once resumed: the set's ready members if a waitable woke it. */
export function waitResult<W extends { readonly ready: boolean }>(resumed: unknown, set: readonly W[]): readonly W[] {
  return resumed === WOKEN ? readyOf(set) : (resumed as readonly W[]);
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
