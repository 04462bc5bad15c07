// The Platform seam. Model code (main loop, devices, guest, migration) is
// written once as generator coroutines that `yield*` these operations; the
// simulation backend turns them into events in simulated time, the real
// backend into clocks, fds and blocking waits. Nothing else of the world is
// visible to the model: it reads no wall clock, draws no unseeded numbers,
// arms no host timer and opens no file.
import type { Rng } from './scheduler/random.ts';

/** An operation yielded by a coroutine; only the backend looks inside. */
export interface PlatformOp {
  readonly op: number;
}

/** A coroutine body: yields Platform operations, returns T. */
export type Co<T = void> = Generator<PlatformOp, T, unknown>;

/** How a thread is started. */
export interface SpawnOptions {
  readonly ownCore?: boolean;
}

/** A thread of execution: the main loop, a vCPU, the migration thread, ... */
export interface PlatformThread {
  readonly id: number;
  readonly name: string;
}

/**
 * An event notifier or readable fd: a counter that makes waits return while it
 * is non-zero (eventfd semantics). set() wakes waiters at the current time.
 */
export interface Notifier {
  readonly name: string;
  readonly ready: boolean;
  /** Adds n (default 1) to the counter. */
  set(n?: number): void;
  /** Returns the counter and clears it (event_notifier_test_and_clear). */
  read(): number;
}

export interface Mutex {
  readonly name: string;
  readonly owner: PlatformThread | null;
}

/** A block I/O request as the backend performs it. */
export interface IoRequest {
  readonly kind: 'read' | 'write' | 'flush';
  readonly offset: number;
  readonly length: number;
  /** Service time from the model's latency distribution (simulation only). */
  readonly latencyNs: number;
  /** Extra delay from an injected fault, honoured by both backends. */
  readonly faultNs: number;
  /** A failure the model decided on (fault schedule), or null. */
  readonly error: string | null;
}

export interface IoResult {
  readonly error: string | null;
}

export interface Platform {
  readonly backend: 'sim' | 'real';
  /** Monotonic time in nanoseconds (the source of QEMU_CLOCK_REALTIME). */
  nowNs(): number;
  /** Wall-clock time in nanoseconds (QEMU_CLOCK_HOST). */
  hostNs(): number;
  /** The seeded random stream of one component. */
  random(component: string): Rng;

  /**
   * Starts a thread running body. ownCore: the thread stands for an OS thread
   * of its own (an IOThread, a vhost worker) whose CPU time does not hold the
   * others off, where the backend runs threads on fewer host threads.
   */
  spawn(name: string, body: () => Co<void>, options?: SpawnOptions): PlatformThread;
  /** The thread currently running model code. */
  current(): PlatformThread;

  /** Spends ns of CPU time on the current thread. */
  cpu(ns: number): Co<void>;
  /** Sleeps for ns without using CPU. */
  sleep(ns: number): Co<void>;
  /**
   * Spends ns at once (busy: as CPU time) without the thread giving way,
   * where the backend can tell that nothing else happens meanwhile: then the
   * same as cpu(ns) or sleep(ns), at less cost. False, and nothing spent,
   * otherwise (always on a real backend): the caller uses cpu() or sleep().
   */
  tryAdvance(ns: number, busy: boolean): boolean;
  /**
   * Counts work model code did in bulk (page writes drawn one by one)
   * toward the run's event bound, in events' worth. Nothing on a real
   * backend, whose guest does its own writes.
   */
  charge(events: number): void;
  /**
   * Waits until one of the notifiers is ready or timeoutNs passes (-1: no
   * timeout, like select(..., NULL); 0: just look). Returns the ready ones.
   */
  wait(notifiers: readonly Notifier[], timeoutNs: number): Co<readonly Notifier[]>;

  createNotifier(name: string): Notifier;
  createMutex(name: string): Mutex;
  lock(mutex: Mutex): Co<void>;
  unlock(mutex: Mutex): void;

  /** Runs fn outside any thread after ns (device-internal and external events). */
  callAfter(ns: number, fn: () => void): number;
  cancelCall(id: number): void;

  /** Submits block I/O; done runs outside any thread when it completes. */
  submitIo(device: string, request: IoRequest, done: (result: IoResult) => void): void;
}
