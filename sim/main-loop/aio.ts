// AioContext: an event loop of fd handlers, bottom halves and timers that
// aio_poll() runs. Nested aio_poll(ctx, true) inside a handler is how QEMU
// waits for in-flight block I/O (bdrv_drain_all, bdrv_flush_all): it blocks
// the calling thread, holding whatever locks it holds (the BQL), and runs only
// this context's handlers, never the main loop's iohandlers.
// Leaves out: adaptive polling (poll_max_ns), io_uring/epoll fd monitors,
// coroutine wakeups (aio_co_schedule), external-client disabling.
import type { Co, Notifier, Platform } from '../platform.ts';
import type { Instruments } from '../instrument/instrument.ts';
import { type QEMUClocks, QEMUTimerListGroup, soonest } from './timer.ts';

export type HandlerBody = () => Co<void>;

export interface AioHandler {
  readonly name: string;
  readonly notifier: Notifier;
  readonly ioRead: HandlerBody | null;
  readonly ioWrite: HandlerBody | null;
}

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

  constructor(
    readonly name: string,
    private readonly platform: Platform,
    private readonly inst: Instruments,
    clocks: QEMUClocks,
    /** Keep every PollInfo (for reports); off for long runs. */
    private readonly keepPolls = false,
  ) {
    this.notifier = platform.createNotifier(`${name}.notifier`);
    this.tlg = new QEMUTimerListGroup(clocks, () => this.notify());
  }

  /** QEMU: aio_set_fd_handler (util/aio-posix.c); null handlers remove it. */
  setFdHandler(notifier: Notifier, name: string, ioRead: HandlerBody | null, ioWrite: HandlerBody | null = null): void {
    const i = this.handlers.findIndex((h) => h.notifier === notifier);
    if (i >= 0) this.handlers.splice(i, 1);
    if (ioRead || ioWrite) this.handlers.push({ name, notifier, ioRead, ioWrite });
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
    const fds = this.handlers.map((h) => h.notifier);
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
   */
  *poll(blocking: boolean, reason = ''): Co<boolean> {
    const p = this.platform;
    const thread = p.current().name;
    const timeout = blocking ? this.computeTimeout() : 0;
    const start = p.nowNs();
    if (timeout !== 0) this.notifyMe++;
    const ready = yield* p.wait(this.fds(), timeout);
    if (timeout !== 0) this.notifyMe--;
    const waited = p.nowNs() - start;
    this.notifier.read(); // QEMU: aio_notify_accept
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
    this.inst.trace.event(thread, 'aio_poll', {
      ctx: this.name, blocking, timeout_ns: timeout, waited_ns: waited, rfd: info.rfd, wfd: info.wfd,
    });
    let progress = yield* this.bhPoll();
    progress = (yield* this.dispatchHandlers(ready)) || progress;
    progress = (yield* this.tlg.runTimers(this.inst)) || progress;
    return progress;
  }

  /** QEMU: aio_dispatch (util/aio-posix.c), as the main loop's GSource runs it. */
  *dispatch(ready: readonly Notifier[]): Co<boolean> {
    if (ready.includes(this.notifier)) this.notifier.read();
    let progress = yield* this.bhPoll();
    progress = (yield* this.dispatchHandlers(ready)) || progress;
    progress = (yield* this.tlg.runTimers(this.inst)) || progress;
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
      if (!h.notifier.ready || !ready.includes(h.notifier)) continue;
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
