// QEMU's main loop (the "iothread"): main_loop_wait computes a timeout from
// the timer lists and the AioContexts, drops the BQL only around the poll,
// then dispatches iohandlers (qemu_set_fd_handler, in iohandler_ctx), the
// qemu_aio_context (bottom halves, block completions, its timers) and the main
// loop's own timers. Every dispatched handler runs under the BQL; the time
// from the poll's return to the next poll is "main loop blocked" time.
// Leaves out: glib sources other than the two AioContexts, slirp, the
// main-loop poll notifiers.
import { AioContext, type HandlerBody } from './aio.ts';
import type { Bql } from './bql.ts';
import type { Instruments } from '../instrument/instrument.ts';
import type { Co, Notifier, Platform } from '../platform.ts';
import { type QEMUClocks, QEMUTimerListGroup, soonest } from './timer.ts';

export class MainLoop {
  /** QEMU: qemu_aio_context: block layer completions, BHs, its timers. */
  readonly aioContext: AioContext;
  /** QEMU: iohandler_ctx: qemu_set_fd_handler handlers; aio_poll(qemu_aio_context) never runs them. */
  readonly iohandlerCtx: AioContext;
  /** QEMU: main_loop_tlg: timers created with timer_new_ns() in the main loop. */
  readonly tlg: QEMUTimerListGroup;
  /** Wakes a main loop blocked in its poll (qemu_notify_event). */
  readonly wakeup: Notifier;
  iterations = 0;
  /** Runs after every main_loop_wait (main_loop_should_exit). */
  afterWait: (() => Co<void>) | null = null;
  private lastPollReturnNs = -1;
  private polling = false;

  constructor(
    private readonly platform: Platform,
    private readonly inst: Instruments,
    private readonly bql: Bql,
    clocks: QEMUClocks,
    keepPolls = false,
  ) {
    this.aioContext = new AioContext('qemu_aio_context', platform, inst, clocks, keepPolls);
    this.iohandlerCtx = new AioContext('iohandler_ctx', platform, inst, clocks);
    this.wakeup = platform.createNotifier('main-loop.wakeup');
    this.tlg = new QEMUTimerListGroup(clocks, () => this.notifyEvent());
  }

  /** QEMU: qemu_set_fd_handler (util/main-loop.c); a null handler removes it. */
  setFdHandler(fd: Notifier, name: string, ioRead: HandlerBody | null, ioWrite: HandlerBody | null = null): void {
    this.iohandlerCtx.setFdHandler(fd, name, ioRead, ioWrite);
  }

  /** QEMU: qemu_notify_event (util/main-loop.c): wakes the loop if it is blocked in its poll. */
  notifyEvent(): void {
    if (this.polling && !this.wakeup.ready) this.wakeup.set();
  }

  /** At the end of a run: a main loop stuck outside its poll counts as blocked until now. */
  finish(): void {
    if (!this.polling && this.lastPollReturnNs >= 0) {
      const now = this.platform.nowNs();
      this.inst.noteMainLoopBlocked(this.lastPollReturnNs, now - this.lastPollReturnNs);
      this.lastPollReturnNs = now;
    }
  }

  /** Starts the main-loop thread: takes the BQL and loops in main_loop_wait. */
  start(): void {
    this.platform.spawn('main-loop', () => this.threadFn());
  }

  /** QEMU: qemu_main_loop (system/runstate.c) */
  private *threadFn(): Co<void> {
    yield* this.bql.lock('qemu_init');
    // The VM runs until the run ends: shutdown is not modelled.
    for (;;) {
      yield* this.mainLoopWait(false);
      if (this.afterWait) yield* this.afterWait();
    }
  }

  /** QEMU: main_loop_wait (util/main-loop.c) */
  *mainLoopWait(nonblocking: boolean): Co<void> {
    const p = this.platform;
    this.bql.assertHeld('main_loop_wait');
    this.iterations++;
    let timeout = nonblocking ? 0 : -1;
    timeout = soonest(timeout, this.tlg.deadlineNs());
    timeout = soonest(timeout, this.aioContext.computeTimeout());
    timeout = soonest(timeout, this.iohandlerCtx.computeTimeout());

    const fds = [...this.iohandlerCtx.fds(), ...this.aioContext.fds(), this.wakeup];
    if (this.lastPollReturnNs >= 0) {
      this.inst.noteMainLoopBlocked(this.lastPollReturnNs, p.nowNs() - this.lastPollReturnNs);
    }
    // QEMU: os_host_main_loop_wait: the BQL is dropped only around the poll.
    this.bql.unlock();
    this.polling = true;
    this.aioContext.notifyMe++;
    this.iohandlerCtx.notifyMe++;
    const ready = yield* p.wait(fds, timeout);
    this.aioContext.notifyMe--;
    this.iohandlerCtx.notifyMe--;
    this.polling = false;
    this.lastPollReturnNs = p.nowNs();
    yield* this.bql.lock('main_loop_wait');
    if (ready.includes(this.wakeup)) this.wakeup.read();
    this.inst.trace.event('main-loop', 'main_loop_wait', { timeout_ns: timeout, ready: ready.length });

    // glib dispatch: the two AioContext sources, then the main loop's timers.
    // (Each only when it has something to run: nothing else changes.)
    if (this.aioContext.hasWork(ready)) yield* this.aioContext.dispatch(ready);
    if (this.iohandlerCtx.hasWork(ready)) yield* this.iohandlerCtx.dispatch(ready);
    // QEMU: qemu_clock_run_all_timers
    if (this.tlg.expired) yield* this.tlg.runTimers(this.inst);
  }
}
