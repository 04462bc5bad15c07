// The real backend of the Platform seam: the model's operations against the
// world. Time is the monotonic clock (CLOCK_MONOTONIC through
// process.hrtime.bigint, in integer ns from the start); cpu(ns) spins for ns of
// real CPU; sleep and timed waits are timers; notifiers are in-process
// counters, or real fds (an eventfd, a KVM ioeventfd, a vCPU's exit eventfd, a
// TCP socket) watched with epoll through the addon. Threads are the model's
// generator coroutines (sim/scheduler/coroutine.ts), resumed by a run loop on
// a timer heap (the simulator's Scheduler, its clock held at real time). When
// nothing is runnable the loop BLOCKS in epoll_wait until the nearest timer:
// a nested aio_poll(ctx, true) inside a handler blocks the JS thread too, so
// vCPU exits go unanswered and the guest stalls, as it does under QEMU's BQL.
// Mutexes hand ownership to waiters in FIFO order, as in the simulation.
// Block I/O runs synchronously on the loop thread (pwrite/pread/fdatasync on a
// file through the addon); its completion then waits for the request's fault
// delay on a timer, so a slow-flush fault stalls whoever waits for the flush
// (bdrv_drain_all's aio_poll), not the loop itself.
// Threads spawned with ownCore (IOThreads, vhost workers) stand for OS
// threads of their own: each is its own event loop (its own blocking waits on
// its own fds), and its cpu(ns) is a timed suspension instead of a spin, so
// the main loop runs on meanwhile as it would beside a real IOThread.
// Leaves out: parallelism among the other coroutine threads (they share one
// OS thread: a cpu(ns) spin holds every other coroutine off; only vCPUs run
// beside it), a lock held across an ownCore thread's cpu(ns) being a real
// contention between host cores,
// timer precision below epoll_wait's millisecond (timers fire up to 1 ms
// late), write readiness other than for sockets.
import {
  CoMutex, PENDING, Scheduler, ThreadHost, beginWait, checkDelayNs, waitResult, wakeWaiters,
  type CoThread, type Coroutine, type Rng,
} from '../sim/scheduler/index.ts';
import type { Co, IoRequest, IoResult, Mutex, Notifier, Platform, PlatformOp, SpawnOptions } from '../sim/platform.ts';
import { openFdIo, type FdIo, type KvmConstants } from './kvm/index.ts';

const OP_CPU = 1;
const OP_SLEEP = 2;
const OP_WAIT = 3;
const OP_LOCK = 4;

interface DelayOp extends PlatformOp { readonly ns: number }
interface WaitOp extends PlatformOp { readonly set: readonly RealNotifier[]; readonly timeoutNs: number }
interface LockOp extends PlatformOp { readonly mutex: RealMutex }
/** Longest single epoll_wait, so a stop() from outside is seen. */
const BLOCK_MS_MAX = 1000;
const EPOLL_EVENTS_MAX = 64;

export type RealThread = CoThread<PlatformOp>;

/** How a bound fd is read: an eventfd counter, a vCPU exit eventfd (the addon reads it), a socket. */
export type FdKind = 'eventfd' | 'vcpu-exit' | 'socket';

/** One fd in the epoll set and the notifiers on its two directions. */
class FdEntry {
  events = 0;
  readIn: RealNotifier | null = null;
  writeOut: RealNotifier | null = null;
  constructor(readonly fd: number, readonly kind: FdKind) {}
}

export class RealNotifier implements Notifier {
  /** In-process counter (set() from JS adds to it; an fd's own counter is separate). */
  count = 0;
  /** The fd is known ready and nobody consumed it yet (it is out of the epoll set meanwhile). */
  fdReady = false;
  entry: FdEntry | null = null;
  direction: 'in' | 'out' = 'in';
  readonly waiters: RealThread[] = [];

  constructor(private readonly platform: RealPlatform, readonly name: string) {}

  get ready(): boolean {
    return this.count > 0 || this.fdReady;
  }

  set(n = 1): void {
    this.count += n;
    this.wakeWaiters();
  }

  /**
   * Returns the counter and clears it (event_notifier_test_and_clear); for a
   * bound fd also its own counter, and the fd goes back into the epoll set.
   */
  read(): number {
    let c = this.count;
    this.count = 0;
    const e = this.entry;
    if (e !== null) {
      if (e.kind === 'eventfd' || e.kind === 'vcpu-exit') c += this.platform.io.eventfdRead(e.fd) ?? 0;
      else if (this.fdReady) c += 1;
      this.fdReady = false;
      this.platform.rearm(e);
    }
    return c;
  }

  /** @internal */
  wakeWaiters(): void {
    wakeWaiters(this);
  }
}

class RealMutex extends CoMutex<RealThread> implements Mutex {}

export interface RealPlatformOptions {
  /** Seed of the random streams (the scenario's). */
  seed: number;
  /** The addon's fd helpers (default: load the addon; throws KvmError ENOADDON without it). */
  io?: FdIo;
}

/** Threads resume on the scheduler's timer heap, whose clock is moved along with real time. */
export class RealPlatform extends ThreadHost<PlatformOp> implements Platform {
  readonly backend = 'real' as const;
  readonly io: FdIo;
  /** epoll_wait calls that blocked (timeout > 0) and the time spent blocked in them. */
  blockedWaits = 0;
  blockedNs = 0;
  private readonly startNs = process.hrtime.bigint();
  private readonly wallStartNs = BigInt(Date.now()) * 1_000_000n;
  private readonly epfd: number;
  private readonly ep: KvmConstants['epoll'];
  private readonly epollOut = new Int32Array(EPOLL_EVENTS_MAX * 2);
  private readonly fds = new Map<number, FdEntry>();
  private stopped = false;
  private closed = false;
  private readonly files = new Map<string, number>();
  private ioBuffer = new Uint8Array(0);
  /** Threads that stand for an OS thread of their own (their CPU time does not hold the others off). */
  private readonly ownCore = new Set<number>();

  constructor(options: RealPlatformOptions) {
    super(new Scheduler({ seed: options.seed }));
    this.io = options.io ?? openFdIo();
    this.epfd = this.io.epollCreate();
    // The addon object carries its constants; FdIo, the narrow type, does not.
    const k = (this.io as { constants?: KvmConstants }).constants?.epoll;
    this.ep = k ?? { IN: 0x1, OUT: 0x4, ERR: 0x8, HUP: 0x10, RDHUP: 0x2000, ET: 0x80000000 };
  }

  nowNs(): number {
    return Number(process.hrtime.bigint() - this.startNs);
  }

  hostNs(): number {
    return Number(this.wallStartNs + (process.hrtime.bigint() - this.startNs));
  }

  /** Converts a CLOCK_MONOTONIC reading (e.g. a vCPU exit's monotonicNs) to this platform's time. */
  fromMonotonic(ns: bigint): number {
    return Number(ns - this.startNs);
  }

  random(component: string): Rng {
    return this.scheduler.random.stream(component);
  }

  override spawn(name: string, body: () => Co<void>, options?: SpawnOptions): RealThread {
    // The next thread's id (ThreadHost numbers threads in spawn order), known before its body runs.
    if (options?.ownCore) this.ownCore.add(this.threads.length);
    return super.spawn(name, body);
  }

  /** Real time passes as it will: every delay goes through cpu() or sleep(). */
  tryAdvance(): boolean {
    return false;
  }

  /** The real guest writes its own pages: there is no modelled work to count. */
  charge(): void {}

  *cpu(ns: number): Co<void> {
    yield { op: OP_CPU, ns } as DelayOp;
  }

  *sleep(ns: number): Co<void> {
    yield { op: OP_SLEEP, ns } as DelayOp;
  }

  *wait(notifiers: readonly Notifier[], timeoutNs: number): Co<readonly Notifier[]> {
    const r = yield { op: OP_WAIT, set: notifiers as readonly RealNotifier[], timeoutNs } as WaitOp;
    return waitResult(r, notifiers);
  }

  createNotifier(name: string): Notifier {
    return new RealNotifier(this, name);
  }

  createMutex(name: string): Mutex {
    return new RealMutex(name);
  }

  *lock(mutex: Mutex): Co<void> {
    yield { op: OP_LOCK, mutex: mutex as RealMutex } as LockOp;
  }

  unlock(mutex: Mutex): void {
    (mutex as RealMutex).unlock(this.running);
  }

  callAfter(ns: number, fn: () => void): number {
    return this.scheduler.callAt(this.nowNs() + Math.max(0, Math.round(ns)), fn);
  }

  cancelCall(id: number): void {
    this.scheduler.cancelCall(id);
  }

  // Fds

  /** A notifier that is ready while the eventfd (or vCPU exit eventfd) fd is readable. */
  fdNotifier(name: string, fd: number, kind: 'eventfd' | 'vcpu-exit' = 'eventfd'): Notifier {
    const n = new RealNotifier(this, name);
    this.bind(n, fd, kind, 'in');
    return n;
  }

  /**
   * Binds a notifier the model created to an eventfd (QEMU: the device's host
   * notifier becomes a KVM ioeventfd, memory_region_add_eventfd). Its pending
   * count is kept.
   */
  attachFd(notifier: Notifier, fd: number): void {
    this.bind(notifier as RealNotifier, fd, 'eventfd', 'in');
  }

  /** Readable and writable notifiers of a non-blocking socket. */
  socketNotifiers(name: string, fd: number): { readable: Notifier; writable: Notifier } {
    const readable = new RealNotifier(this, `${name}.in`);
    const writable = new RealNotifier(this, `${name}.out`);
    this.bind(readable, fd, 'socket', 'in');
    this.bind(writable, fd, 'socket', 'out');
    return { readable, writable };
  }

  /** Takes fd out of the epoll set (before closing it); its notifiers stay, unbound. */
  releaseFd(fd: number): void {
    const e = this.fds.get(fd);
    if (!e) return;
    if (e.events !== 0 && !this.closed) this.io.epollCtl(this.epfd, 'del', fd);
    e.events = 0;
    for (const n of [e.readIn, e.writeOut]) {
      if (n) {
        n.entry = null;
        n.fdReady = false;
      }
    }
    this.fds.delete(fd);
  }

  private bind(n: RealNotifier, fd: number, kind: FdKind, direction: 'in' | 'out'): void {
    if (n.entry) throw new Error(`notifier ${n.name} is already bound to fd ${n.entry.fd}`);
    let e = this.fds.get(fd);
    if (!e) {
      e = new FdEntry(fd, kind);
      this.fds.set(fd, e);
    }
    if (direction === 'in') {
      if (e.readIn) throw new Error(`fd ${fd} already has a read notifier (${e.readIn.name})`);
      e.readIn = n;
    } else {
      if (e.writeOut) throw new Error(`fd ${fd} already has a write notifier (${e.writeOut.name})`);
      e.writeOut = n;
    }
    n.entry = e;
    n.direction = direction;
    this.rearm(e);
  }

  /** @internal Puts fd's unconsumed directions (back) into the epoll set. */
  rearm(e: FdEntry): void {
    if (this.closed) return;
    const ev = this.io;
    const c = this.ep;
    const want = (e.readIn && !e.readIn.fdReady ? c.IN : 0) | (e.writeOut && !e.writeOut.fdReady ? c.OUT : 0);
    if (want === e.events) return;
    if (e.events === 0) ev.epollCtl(this.epfd, 'add', e.fd, want);
    else if (want === 0) ev.epollCtl(this.epfd, 'del', e.fd);
    else ev.epollCtl(this.epfd, 'mod', e.fd, want);
    e.events = want;
  }

  /** One epoll_wait: marks ready fds, takes them out of the set, wakes their waiters. */
  private pollFds(timeoutMs: number): number {
    if (this.fds.size === 0 && timeoutMs === 0) return 0;
    const t0 = timeoutMs !== 0 ? this.nowNs() : 0;
    const n = this.io.epollWait(this.epfd, this.epollOut, timeoutMs);
    if (timeoutMs !== 0) {
      this.blockedWaits++;
      this.blockedNs += this.nowNs() - t0;
    }
    const c = this.ep;
    for (let i = 0; i < n; i++) {
      const e = this.fds.get(this.epollOut[2 * i]!);
      if (!e) continue;
      const bits = this.epollOut[2 * i + 1]!;
      const fail = (bits & (c.ERR | c.HUP)) !== 0;
      const woken: RealNotifier[] = [];
      if (e.readIn && (fail || (bits & c.IN) !== 0) && !e.readIn.fdReady) {
        e.readIn.fdReady = true;
        woken.push(e.readIn);
      }
      if (e.writeOut && (fail || (bits & c.OUT) !== 0) && !e.writeOut.fdReady) {
        e.writeOut.fdReady = true;
        woken.push(e.writeOut);
      }
      this.rearm(e);
      for (const w of woken) w.wakeWaiters();
    }
    return n;
  }

  // The run loop

  /**
   * Runs coroutines, timers and fd events until nowNs() reaches untilNs or
   * stop() is called. Blocks in epoll_wait while nothing is due. Errors thrown
   * by model code end the run and propagate.
   */
  run(untilNs: number): 'until' | 'stopped' {
    if (this.closed) throw new Error('the real platform is closed');
    this.stopped = false;
    const s = this.scheduler;
    for (;;) {
      let now = this.nowNs();
      if (this.stopped) return 'stopped';
      if (now >= untilNs) return 'until';
      s.run(now);
      if (this.stopped) return 'stopped';
      now = this.nowNs();
      const next = s.nextDueNs();
      if (next <= now) {
        this.pollFds(0); // a long stretch of due work still sees fd events
        continue;
      }
      const left = Math.min(next, untilNs) - now;
      this.pollFds(Math.min(BLOCK_MS_MAX, Math.max(1, Math.ceil(left / 1e6))));
    }
  }

  /**
   * Makes run() return after the current event, also from inside a stretch of
   * due work (an fd that stays ready keeps its handler's thread due).
   */
  stop(): void {
    this.stopped = true;
    this.scheduler.stop();
  }

  /** Closes the epoll fd and the block files. The platform cannot run afterwards. */
  close(): void {
    if (this.closed) return;
    for (const fd of this.files.values()) this.io.close(fd);
    this.files.clear();
    this.closed = true;
    this.io.close(this.epfd);
  }

  // Block I/O

  /** The file behind a block backend: its requests become pread/pwrite/fdatasync on it. */
  attachBlockFile(device: string, path: string, sizeBytes: number): void {
    const fd = this.io.fileOpen(path, 'w+');
    this.io.ftruncate(fd, sizeBytes);
    this.files.set(device, fd);
  }

  submitIo(device: string, request: IoRequest, done: (result: IoResult) => void): void {
    let error = request.error;
    const fd = this.files.get(device);
    if (fd !== undefined && error === null) {
      try {
        if (request.kind === 'flush') {
          this.io.fdatasync(fd);
        } else {
          if (this.ioBuffer.length < request.length) this.ioBuffer = new Uint8Array(request.length);
          const buf = this.ioBuffer.subarray(0, request.length);
          if (request.kind === 'write') {
            // Recognisable content: the offset in every 8 bytes.
            new DataView(buf.buffer, buf.byteOffset, buf.byteLength).setFloat64(0, request.offset, true);
            this.io.pwrite(fd, buf, request.offset);
          } else {
            this.io.pread(fd, buf, request.offset);
          }
        }
      } catch (e) {
        error = `${(e as { code?: string }).code ?? 'EIO'} (${(e as Error).message})`;
      }
    }
    const result: IoResult = { error };
    this.callAfter(request.faultNs, () => done(result));
  }

  // CoroutineHost

  interpret(co: Coroutine<PlatformOp>, op: PlatformOp): unknown {
    const thread = this.threads[co.id]!;
    switch (op.op) {
      case OP_CPU: {
        const ns = checkDelayNs(thread, (op as DelayOp).ns);
        if (this.ownCore.has(thread.id)) {
          // Its own core: busy for ns while the loop serves the other threads.
          thread.cpuNs += ns;
          co.suspend(this.nowNs() + ns, undefined);
          return PENDING;
        }
        const end = process.hrtime.bigint() + BigInt(ns);
        while (process.hrtime.bigint() < end) {
          // Spinning: this thread uses the CPU, and nothing else in the loop runs.
        }
        thread.cpuNs += ns;
        return undefined;
      }
      case OP_SLEEP: {
        const ns = checkDelayNs(thread, (op as DelayOp).ns);
        co.suspend(this.nowNs() + ns, undefined);
        return PENDING;
      }
      case OP_WAIT: {
        const w = op as WaitOp;
        // A bound fd may be ready without epoll having said so yet: look first.
        if (!w.set.some((n) => n.ready) && w.set.some((n) => n.entry !== null)) this.pollFds(0);
        return beginWait(thread, w.set, w.timeoutNs, this.nowNs() + w.timeoutNs);
      }
      case OP_LOCK:
        return (op as LockOp).mutex.lock(thread);
      default:
        throw new Error(`unknown platform operation ${op.op}`);
    }
  }
}
