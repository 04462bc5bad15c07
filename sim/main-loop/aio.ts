// AioContext: an event loop of fd handlers, bottom halves and timers that
// aio_poll() runs. Nested aio_poll(ctx, true) inside a handler is how QEMU
// waits for in-flight block I/O (bdrv_drain_all, bdrv_flush_all): it blocks
// the calling thread, holding whatever locks it holds (the BQL), and runs only
// this context's handlers, never the main loop's iohandlers. There are
// several: the main loop's qemu_aio_context and iohandler_ctx, and one per
// IOThread (iothread.ts), which polls its own in its own thread. An
// IOThread's context has adaptive polling (QEMU 7.2's aio_poll: busy-poll
// the handlers that can be polled for up to poll_ns before blocking, then
// grow or shrink poll_ns by what the wait took), can disable its external
// handlers for a drained section (aio_disable_external, up to 8.1), and,
// where the version has one, a lock (the AioContext lock, 2.0 to 8.1).
// Leaves out: io_uring/epoll fd monitors, coroutine wakeups (aio_co_schedule),
// the poll handlers' own notification suppression (io_poll_begin/end: the
// guest keeps kicking while a context polls, which changes nothing the model
// measures), aio-max-batch.
import type { Co, Mutex, Notifier, Platform } from '../platform.ts';
import { InvariantError } from '../invariant.ts';
import type { Instruments } from '../instrument/instrument.ts';
import { type QEMUClocks, QEMUTimerListGroup, soonest } from './timer.ts';

export type HandlerBody = () => Co<void>;

export interface AioHandler {
  readonly name: string;
  readonly notifier: Notifier;
  readonly ioRead: HandlerBody | null;
  readonly ioWrite: HandlerBody | null;
  /** QEMU: is_external: a guest-driven handler (a host notifier), off while the context is drained (up to 8.1). */
  readonly isExternal: boolean;
  /** QEMU: io_poll: the handler can be busy-polled (a virtqueue, a linux-aio completion ring). */
  readonly ioPoll: boolean;
}

/** How a handler is registered: QEMU's aio_set_fd_handler / aio_set_event_notifier arguments besides the callbacks. */
export interface AioHandlerOptions {
  readonly external?: boolean;
  readonly poll?: boolean;
}

/** An IOThread context's adaptive polling parameters (QEMU: aio_context_set_poll_params). */
export interface AioPollParams {
  readonly maxNs: number;
  readonly grow: number;
  readonly shrink: number;
}

/** The busy-poll figures of a context with adaptive polling. */
export interface AioPollStats {
  /** Time spent busy-polling, and the polls that found an event. */
  polledNs: number;
  pollHits: number;
  grows: number;
  shrinks: number;
  /** The longest poll_ns reached. */
  pollNsMax: number;
}

/** One contended acquisition of an AioContext lock: who waited, for how long, for whom. */
export interface LockWait {
  readonly thread: string;
  readonly site: string;
  readonly from_ns: number;
  readonly to_ns: number;
  readonly holder: string;
  readonly holder_site: string;
}

/** Contended lock waits kept per lock (for attribution). */
export const LOCK_WAITS_MAX = 10_000;
/** QEMU 7.2 aio_poll: polling starts at 4 us when it first grows. */
export const POLL_NS_START = 4_000;

/** What one aio_poll iteration waited for and how long (the talk's "qaw" lines). */
export interface PollInfo {
  readonly ctx: string;
  readonly blocking: boolean;
  readonly timeout_ns: number;
  readonly start_ns: number;
  readonly waited_ns: number;
  readonly rfd: number;
  readonly wfd: number;
  readonly ready: readonly string[];
}

export class QEMUBH {
  scheduled = false;
  idle = false;
  deleted = false;

  constructor(
    readonly name: string,
    readonly ctx: AioContext,
    readonly cb: HandlerBody,
    readonly oneshot = false,
  ) {}

  /** QEMU: qemu_bh_schedule (util/async.c) */
  schedule(): void {
    this.ctx.bhEnqueue(this, false);
  }

  /** QEMU: qemu_bh_schedule_idle (util/async.c): runs within 10 ms, no wakeup. */
  scheduleIdle(): void {
    this.ctx.bhEnqueue(this, true);
  }

  /** QEMU: qemu_bh_cancel (util/async.c) */
  cancel(): void {
    this.ctx.bhDequeue(this);
  }

  /** QEMU: qemu_bh_delete (util/async.c) */
  delete(): void {
    this.ctx.bhDequeue(this);
    this.deleted = true;
  }
}

/** QEMU: the idle bottom-half poll interval in aio_compute_timeout. */
export const IDLE_BH_TIMEOUT_NS = 10_000_000;

export class AioContext {
  /** ctx->notifier: aio_notify() sets it to wake a blocked poll. */
  readonly notifier: Notifier;
  readonly tlg: QEMUTimerListGroup;
  readonly polls: PollInfo[] = [];
  /** The last aio_poll iteration's record. */
  lastPoll: PollInfo | null = null;
  private readonly handlers: AioHandler[] = [];
  private bhQueue: QEMUBH[] = [];
  /** QEMU: ctx->notify_me: a poll of this context may block. */
  notifyMe = 0;
  /** QEMU: ctx->external_disable_cnt (aio_disable_external / aio_enable_external). */
  private externalDisableCnt = 0;
  /** QEMU: ctx->poll_ns: how long the next aio_poll busy-polls. */
  pollNs = 0;
  readonly pollStats: AioPollStats = { polledNs: 0, pollHits: 0, grows: 0, shrinks: 0, pollNsMax: 0 };
  /** The AioContext lock (QEMU 2.0 to 8.1), or null (none modelled: the main loop's contexts, or QEMU 8.2 on). */
  lock: AioContextLock | null = null;
  /** The thread whose own context this is (an IOThread), or null (qemu_aio_context: whoever holds the BQL). */
  home: string | null = null;
  /** True while a poll of this context waits (it is not dispatching). */
  waiting = false;

  constructor(
    readonly name: string,
    private readonly platform: Platform,
    private readonly inst: Instruments,
    clocks: QEMUClocks,
    /** Keep every PollInfo (for reports); off for long runs. */
    private readonly keepPolls = false,
    /** Adaptive polling (an IOThread's; poll-max-ns 0 for the main loop's contexts). */
    readonly pollParams: AioPollParams = { maxNs: 0, grow: 0, shrink: 0 },
  ) {
    this.notifier = platform.createNotifier(`${name}.notifier`);
    this.tlg = new QEMUTimerListGroup(clocks, () => this.notify());
  }

  /** QEMU: aio_set_fd_handler / aio_set_event_notifier (util/aio-posix.c); null handlers remove it. */
  setFdHandler(notifier: Notifier, name: string, ioRead: HandlerBody | null, ioWrite: HandlerBody | null = null, options: AioHandlerOptions = {}): void {
    const i = this.handlers.findIndex((h) => h.notifier === notifier);
    if (i >= 0) this.handlers.splice(i, 1);
    if (ioRead || ioWrite) {
      this.handlers.push({ name, notifier, ioRead, ioWrite, isExternal: options.external ?? false, ioPoll: options.poll ?? false });
    }
  }

  /** Whether a handler is registered on notifier here. */
  hasHandler(notifier: Notifier): boolean {
    return this.handlers.some((h) => h.notifier === notifier);
  }

  /** QEMU: aio_disable_external (include/block/aio.h): external handlers neither polled nor dispatched. */
  disableExternal(): void {
    this.externalDisableCnt++;
  }

  /** QEMU: aio_enable_external; wakes the context so it polls them again. */
  enableExternal(): void {
    if (this.externalDisableCnt <= 0) throw new InvariantError('model', `${this.name}: aio_enable_external without aio_disable_external`);
    if (--this.externalDisableCnt === 0) this.notify();
  }

  get externalDisabled(): boolean {
    return this.externalDisableCnt > 0;
  }

  /** QEMU: aio_node_check: a handler takes part unless it is external and those are disabled. */
  private enabled(h: AioHandler): boolean {
    return !h.isExternal || this.externalDisableCnt === 0;
  }

  /** QEMU: aio_bh_new (util/async.c) */
  bhNew(name: string, cb: HandlerBody): QEMUBH {
    return new QEMUBH(name, this, cb);
  }

  /** QEMU: aio_bh_schedule_oneshot (util/async.c) */
  bhScheduleOneshot(name: string, cb: HandlerBody): void {
    new QEMUBH(name, this, cb, true).schedule();
  }

  /** QEMU: aio_notify (util/async.c): wakes a poll only if one is blocked (notify_me). */
  notify(): void {
    if (this.notifyMe > 0 && !this.notifier.ready) this.notifier.set();
  }

  /** The fds this context polls, its own notifier last. */
  fds(): Notifier[] {
    const fds: Notifier[] = [];
    for (const h of this.handlers) if (this.enabled(h)) fds.push(h.notifier);
    fds.push(this.notifier);
    return fds;
  }

  /** QEMU: aio_compute_timeout (util/async.c) */
  computeTimeout(): number {
    let idle = false;
    for (const bh of this.bhQueue) {
      if (!bh.idle) return 0;
      idle = true;
    }
    const deadline = this.tlg.deadlineNs();
    return idle ? soonest(IDLE_BH_TIMEOUT_NS, deadline) : deadline;
  }

  /**
   * QEMU: aio_poll (util/aio-posix.c). Waits for this context's fds (with the
   * computed timeout when blocking), then runs bottom halves, ready handlers
   * and expired timers. reason names what the caller waits for, for reports.
   * With adaptive polling (try_poll_mode), the wait first busy-polls for up to
   * poll_ns: an event found then needs no blocking wait.
   */
  *poll(blocking: boolean, reason = ''): Co<boolean> {
    const p = this.platform;
    const thread = p.current().name;
    let timeout = blocking ? this.computeTimeout() : 0;
    const start = p.nowNs();
    let ready: readonly Notifier[] = [];
    let polled = -1;
    if (this.pollParams.maxNs > 0 && this.handlers.some((h) => h.ioPoll && this.enabled(h))) {
      // QEMU: try_poll_mode -> run_poll_handlers, for the soonest of the timeout and poll_ns.
      const maxNs = soonest(timeout, this.pollNs);
      if (maxNs > 0) {
        // A BH or aio_notify while polling is seen as ctx->notified is: through the notifier.
        this.notifyMe++;
        this.waiting = true;
        ready = yield* p.wait(this.fds(), maxNs);
        this.waiting = false;
        this.notifyMe--;
        polled = p.nowNs() - start;
        this.pollStats.polledNs += polled;
        if (ready.length > 0) {
          this.pollStats.pollHits++;
          timeout = 0;
        } else if (timeout >= 0) {
          timeout -= Math.min(timeout, polled);
        }
      }
    }
    if (ready.length === 0) {
      if (timeout !== 0) this.notifyMe++;
      this.waiting = true;
      ready = yield* p.wait(this.fds(), timeout);
      this.waiting = false;
      if (timeout !== 0) this.notifyMe--;
    }
    const waited = p.nowNs() - start;
    this.notifier.read(); // QEMU: aio_notify_accept
    if (this.pollParams.maxNs > 0) this.adjustPolling(waited);
    const info: PollInfo = {
      ctx: this.name,
      blocking,
      timeout_ns: timeout,
      start_ns: start,
      waited_ns: waited,
      rfd: this.handlers.filter((h) => h.ioRead).length,
      wfd: this.handlers.filter((h) => h.ioWrite).length,
      ready: ready.filter((n) => n !== this.notifier).map((n) => n.name),
    };
    this.lastPoll = info;
    if (this.keepPolls) this.polls.push(info);
    if (waited > 0) this.inst.noteWait(thread, `aio_poll(${this.name})${reason ? ` for ${reason}` : ''}`, waited);
    this.inst.trace.event(thread, 'aio_poll', polled >= 0
      ? { ctx: this.name, blocking, timeout_ns: timeout, waited_ns: waited, rfd: info.rfd, wfd: info.wfd, polled_ns: polled }
      : { ctx: this.name, blocking, timeout_ns: timeout, waited_ns: waited, rfd: info.rfd, wfd: info.wfd });
    return yield* this.runReady(ready);
  }

  /**
   * QEMU 7.2 aio_poll's "Adjust polling time": a wait within poll_ns is the
   * sweet spot; one longer than poll-max-ns shrinks poll_ns (divides it by
   * poll-shrink, or drops it to 0); one in between grows it (x poll-grow or 2,
   * from 4 us), at most to poll-max-ns.
   */
  private adjustPolling(blockNs: number): void {
    const { maxNs, grow, shrink } = this.pollParams;
    const old = this.pollNs;
    if (blockNs <= this.pollNs) return;
    if (blockNs > maxNs) {
      this.pollNs = shrink ? Math.floor(this.pollNs / shrink) : 0;
      if (this.pollNs !== old) {
        this.pollStats.shrinks++;
        this.inst.trace.event(this.platform.current().name, 'poll_shrink', { ctx: this.name, old, new: this.pollNs });
      }
    } else if (this.pollNs < maxNs && blockNs < maxNs) {
      this.pollNs = Math.min(maxNs, this.pollNs ? this.pollNs * (grow || 2) : POLL_NS_START);
      this.pollStats.grows++;
      if (this.pollNs > this.pollStats.pollNsMax) this.pollStats.pollNsMax = this.pollNs;
      this.inst.trace.event(this.platform.current().name, 'poll_grow', { ctx: this.name, old, new: this.pollNs });
    }
  }

  /** QEMU: aio_dispatch (util/aio-posix.c), as the main loop's GSource runs it. */
  *dispatch(ready: readonly Notifier[]): Co<boolean> {
    if (ready.includes(this.notifier)) this.notifier.read();
    return yield* this.runReady(ready);
  }

  /**
   * True when dispatch(ready) has something to run: a bottom half, a ready
   * handler or an expired timer (the main loop skips it otherwise, and the
   * generators it would make).
   */
  hasWork(ready: readonly Notifier[]): boolean {
    return ready.length > 0 || this.bhQueue.length > 0 || this.tlg.expired;
  }

  /** aio_poll's and aio_dispatch's common end: bottom halves, ready handlers, timers (each only when it has something). */
  private *runReady(ready: readonly Notifier[]): Co<boolean> {
    let progress = this.bhQueue.length > 0 && (yield* this.bhPoll());
    if (ready.length > 0) progress = (yield* this.dispatchHandlers(ready)) || progress;
    if (this.tlg.expired) progress = (yield* this.tlg.runTimers(this.inst)) || progress;
    return progress;
  }

  /** QEMU: aio_bh_poll (util/async.c): runs the BHs scheduled before it started. */
  *bhPoll(): Co<boolean> {
    if (this.bhQueue.length === 0) return false;
    const batch = this.bhQueue;
    this.bhQueue = [];
    let progress = false;
    for (const bh of batch) {
      if (!bh.scheduled || bh.deleted) continue;
      bh.scheduled = false;
      if (!bh.idle) progress = true;
      bh.idle = false;
      this.inst.trace.event(this.platform.current().name, 'aio_bh_poll', { bh: bh.name });
      yield* this.inst.run(bh.name, 'bh', bh.cb());
      if (bh.oneshot) bh.deleted = true;
    }
    return progress;
  }

  /** @internal QEMUBH.schedule/scheduleIdle */
  bhEnqueue(bh: QEMUBH, idle: boolean): void {
    if (bh.deleted) throw new Error(`bottom half ${bh.name} scheduled after qemu_bh_delete`);
    if (bh.scheduled) {
      if (!idle) bh.idle = false;
    } else {
      bh.scheduled = true;
      bh.idle = idle;
      this.bhQueue.push(bh);
    }
    this.inst.trace.event(this.platform.current().name, 'qemu_bh_schedule', { bh: bh.name, idle });
    if (!idle) this.notify();
  }

  /** @internal QEMUBH.cancel/delete */
  bhDequeue(bh: QEMUBH): void {
    bh.scheduled = false;
    const i = this.bhQueue.indexOf(bh);
    if (i >= 0) this.bhQueue.splice(i, 1);
  }

  private *dispatchHandlers(ready: readonly Notifier[]): Co<boolean> {
    let progress = false;
    // Snapshot: handlers may add or remove handlers while they run.
    for (const h of [...this.handlers]) {
      if (!h.notifier.ready || !ready.includes(h.notifier) || !this.enabled(h)) continue;
      if (h.ioRead) {
        yield* this.inst.run(h.name, 'fd read', h.ioRead());
        progress = true;
      }
      if (h.ioWrite) {
        yield* this.inst.run(h.name, 'fd write', h.ioWrite());
        progress = true;
      }
    }
    return progress;
  }
}

/**
 * QEMU: the AioContext lock (ctx->lock, a recursive mutex; aio_context_acquire
 * and aio_context_release in util/async.c), from 2.0 to 8.1. An IOThread's
 * handlers take it around their work; a BQL holder that reaches into the
 * context (bdrv_drain_all, the dataplane stop) takes it too and drops it only
 * inside AIO_WAIT_WHILE's aio_poll. Contended waits are kept (at most
 * LOCK_WAITS_MAX) with who held the lock, for attribution across threads.
 */
export class AioContextLock {
  readonly mutex: Mutex;
  readonly waits: LockWait[] = [];
  private depth = 0;
  private holderSite = '';

  constructor(readonly ctx: string, private readonly platform: Platform, private readonly inst: Instruments) {
    this.mutex = platform.createMutex(`${ctx}.lock`);
  }

  /** What a wait for it is called in slow-handler lines and attribution. */
  get label(): string {
    return `${this.ctx}'s AioContext lock`;
  }

  /** QEMU: aio_context_acquire; site names the caller. */
  *acquire(site: string): Co<void> {
    const p = this.platform;
    const me = p.current();
    if (this.mutex.owner === me) {
      this.depth++;
      return;
    }
    const t0 = p.nowNs();
    const holder = this.mutex.owner?.name ?? '';
    const holderSite = this.holderSite;
    yield* p.lock(this.mutex);
    const waited = p.nowNs() - t0;
    if (waited > 0) {
      this.inst.noteWait(me.name, this.label, waited);
      this.inst.noteBlocked(me.name, t0, waited);
      this.inst.trace.event(me.name, 'qemu_mutex_locked', { mutex: `${this.ctx} AioContext`, site, waited_ns: waited });
      if (this.waits.length < LOCK_WAITS_MAX) {
        this.waits.push({ thread: me.name, site, from_ns: t0, to_ns: t0 + waited, holder, holder_site: holderSite });
      }
    }
    this.depth = 1;
    this.holderSite = site;
  }

  /** QEMU: aio_context_release */
  release(): void {
    const p = this.platform;
    if (this.mutex.owner !== p.current()) {
      throw new InvariantError('lock-discipline', `${p.current().name} releases ${this.label} held by ${this.mutex.owner?.name ?? 'nobody'}`);
    }
    if (--this.depth === 0) {
      this.holderSite = '';
      p.unlock(this.mutex);
    }
  }

  /** Held by the running thread (how often: AIO_WAIT_WHILE needs exactly once). */
  heldDepth(): number {
    return this.mutex.owner === this.platform.current() ? this.depth : 0;
  }
}
