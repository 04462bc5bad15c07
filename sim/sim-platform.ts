// The simulation backend of the Platform seam: every operation becomes events
// in simulated time. A thread that spends 358 ms of CPU resumes 358 ms later,
// and what it does then is seen by others from that instant on. Mutexes hand
// ownership to waiters in FIFO order; waits are woken through the event queue.
// Leaves out: CPU contention between threads (each thread has its own core).
import {
  CoMutex, PENDING, ThreadHost, beginWait, checkDelayNs, waitResult, wakeWaiters,
  type CoThread, type Coroutine, type Rng, type Scheduler,
} from './scheduler/index.ts';
import type { Co, IoRequest, IoResult, Mutex, Notifier, Platform, PlatformOp } from './platform.ts';

const OP_DELAY = 1;
const OP_WAIT = 2;
const OP_LOCK = 3;
const NO_NOTIFIERS: readonly SimNotifier[] = [];

interface DelayOp extends PlatformOp { readonly ns: number; readonly busy: boolean }
interface WaitOp extends PlatformOp { readonly set: readonly SimNotifier[]; readonly timeoutNs: number }
interface LockOp extends PlatformOp { readonly mutex: SimMutex }

export type SimThread = CoThread<PlatformOp>;

class SimNotifier implements Notifier {
  count = 0;
  readonly waiters: SimThread[] = [];
  constructor(readonly name: string) {}

  get ready(): boolean {
    return this.count > 0;
  }

  set(n = 1): void {
    this.count += n;
    wakeWaiters(this);
  }

  read(): number {
    const c = this.count;
    this.count = 0;
    return c;
  }
}

class SimMutex extends CoMutex<SimThread> implements Mutex {}

function anyReady(set: readonly SimNotifier[]): boolean {
  for (const n of set) if (n.count > 0) return true;
  return false;
}

/**
 * One Platform operation as a one-step iterator that is its own operation:
 * `yield* p.cpu(ns)` yields it once and returns the interpreter's answer (the
 * ready notifiers of a wait). Each thread reuses its own (a thread is inside
 * one operation at a time), so no operation allocates a generator or an
 * object; one asked for while the thread's is taken (an operation not
 * consumed at once) is a fresh one.
 */
class Step implements Generator<PlatformOp, unknown, unknown>, PlatformOp {
  op = 0;
  ns = 0;
  busy = false;
  set: readonly SimNotifier[] = NO_NOTIFIERS;
  timeoutNs = 0;
  mutex: SimMutex | null = null;
  /** Between p.cpu() (or wait, lock, ...) and the operation's answer. */
  taken = false;
  private yielded = false;
  private readonly first: IteratorResult<PlatformOp, unknown> = { value: this, done: false };
  private readonly last: { value: unknown; done: true } = { value: undefined, done: true };

  next(answer?: unknown): IteratorResult<PlatformOp, unknown> {
    if (!this.yielded) {
      this.yielded = true;
      return this.first;
    }
    this.last.value = this.op === OP_WAIT ? waitResult(answer, this.set) : undefined;
    this.release();
    return this.last;
  }

  return(value: unknown): IteratorResult<PlatformOp, unknown> {
    this.release();
    return { value, done: true };
  }

  throw(e: unknown): IteratorResult<PlatformOp, unknown> {
    this.release();
    throw e;
  }

  [Symbol.iterator](): this {
    return this;
  }

  private release(): void {
    this.yielded = false;
    this.taken = false;
    this.set = NO_NOTIFIERS;
    this.mutex = null;
  }
}

export class SimPlatform extends ThreadHost<PlatformOp> implements Platform {
  readonly backend = 'sim' as const;
  /** Each thread's operation step, by thread id. */
  private readonly steps: Step[] = [];

  constructor(scheduler: Scheduler, private readonly hostOffsetNs = 0) {
    super(scheduler);
  }

  nowNs(): number {
    return this.scheduler.now;
  }

  hostNs(): number {
    return this.scheduler.now + this.hostOffsetNs;
  }

  random(component: string): Rng {
    return this.scheduler.random.stream(component);
  }

  cpu(ns: number): Co<void> {
    return this.delay(ns, true);
  }

  sleep(ns: number): Co<void> {
    return this.delay(ns, false);
  }

  private delay(ns: number, busy: boolean): Co<void> {
    const s = this.take(OP_DELAY);
    s.ns = ns;
    s.busy = busy;
    return s as Co<void>;
  }

  /** What interpret does for a delay that nothing else happens before (Scheduler.advanceTo), without the yield. */
  tryAdvance(ns: number, busy: boolean): boolean {
    const thread = this.running;
    checkDelayNs(thread, ns);
    if (!(ns > 0) || !this.scheduler.advanceTo(this.scheduler.now + ns)) return false;
    if (busy) thread.cpuNs += ns;
    return true;
  }

  charge(events: number): void {
    this.scheduler.charge(events);
  }

  wait(notifiers: readonly Notifier[], timeoutNs: number): Co<readonly Notifier[]> {
    const s = this.take(OP_WAIT);
    s.set = notifiers as readonly SimNotifier[];
    s.timeoutNs = timeoutNs;
    return s as Co<readonly Notifier[]>;
  }

  /** The current thread's step for an operation (a fresh one when it is taken, or outside any thread). */
  private take(op: number): Step {
    const id = this.running.id;
    let s = id >= 0 ? this.steps[id] : undefined;
    if (s === undefined || s.taken) {
      const fresh = new Step();
      if (id >= 0 && s === undefined) this.steps[id] = fresh;
      s = fresh;
    }
    s.taken = true;
    s.op = op;
    return s;
  }

  createNotifier(name: string): Notifier {
    return new SimNotifier(name);
  }

  createMutex(name: string): Mutex {
    return new SimMutex(name);
  }

  lock(mutex: Mutex): Co<void> {
    const s = this.take(OP_LOCK);
    s.mutex = mutex as SimMutex;
    return s as Co<void>;
  }

  unlock(mutex: Mutex): void {
    (mutex as SimMutex).unlock(this.running);
  }

  callAfter(ns: number, fn: () => void): number {
    return this.scheduler.callAfter(ns, fn);
  }

  cancelCall(id: number): void {
    this.scheduler.cancelCall(id);
  }

  submitIo(_device: string, request: IoRequest, done: (result: IoResult) => void): void {
    const result: IoResult = { error: request.error };
    this.scheduler.callAfter(request.latencyNs + request.faultNs, () => done(result));
  }

  // CoroutineHost: how the scheduler's coroutines run Platform operations.

  interpret(co: Coroutine<PlatformOp>, op: PlatformOp): unknown {
    const thread = this.threads[co.id]!;
    switch (op.op) {
      case OP_DELAY: {
        const d = op as DelayOp;
        checkDelayNs(thread, d.ns);
        if (d.busy) thread.cpuNs += d.ns;
        const due = this.scheduler.now + d.ns;
        // Nothing else happens before due: go on at once (Scheduler.advanceTo).
        if (d.ns > 0 && this.scheduler.advanceTo(due)) return undefined;
        co.suspend(due, undefined);
        return PENDING;
      }
      case OP_WAIT: {
        const w = op as WaitOp;
        // A wait that would time out before anything else happens times out at once.
        if (w.timeoutNs > 0 && !anyReady(w.set) && this.scheduler.advanceTo(this.scheduler.now + w.timeoutNs)) return NO_NOTIFIERS;
        return beginWait(thread, w.set, w.timeoutNs, this.scheduler.now + w.timeoutNs);
      }
      case OP_LOCK:
        return (op as LockOp).mutex.lock(thread);
      default:
        throw new Error(`unknown platform operation ${op.op}`);
    }
  }
}
