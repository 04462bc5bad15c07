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

export class SimPlatform extends ThreadHost<PlatformOp> implements Platform {
  readonly backend = 'sim' as const;
  // One of each operation, refilled per yield: interpret() reads it before
  // any other thread can yield, so no operation allocates.
  private readonly delayOp = { op: OP_DELAY, ns: 0, busy: true };
  private readonly waitOp: { op: number; set: readonly SimNotifier[]; timeoutNs: number } = { op: OP_WAIT, set: NO_NOTIFIERS, timeoutNs: 0 };
  private readonly lockOp: { op: number; mutex: SimMutex | null } = { op: OP_LOCK, mutex: null };

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

  *cpu(ns: number): Co<void> {
    yield this.delay(ns, true);
  }

  *sleep(ns: number): Co<void> {
    yield this.delay(ns, false);
  }

  private delay(ns: number, busy: boolean): DelayOp {
    const o = this.delayOp;
    o.ns = ns;
    o.busy = busy;
    return o;
  }

  *wait(notifiers: readonly Notifier[], timeoutNs: number): Co<readonly Notifier[]> {
    const o = this.waitOp;
    o.set = notifiers as readonly SimNotifier[];
    o.timeoutNs = timeoutNs;
    const r = yield o;
    o.set = NO_NOTIFIERS;
    return waitResult(r, notifiers);
  }

  createNotifier(name: string): Notifier {
    return new SimNotifier(name);
  }

  createMutex(name: string): Mutex {
    return new SimMutex(name);
  }

  *lock(mutex: Mutex): Co<void> {
    const o = this.lockOp;
    o.mutex = mutex as SimMutex;
    yield o as LockOp;
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
        co.suspend(this.scheduler.now + d.ns, undefined);
        return PENDING;
      }
      case OP_WAIT: {
        const w = op as WaitOp;
        return beginWait(thread, w.set, w.timeoutNs, this.scheduler.now + w.timeoutNs);
      }
      case OP_LOCK:
        return (op as LockOp).mutex.lock(thread);
      default:
        throw new Error(`unknown platform operation ${op.op}`);
    }
  }
}
