// Waiting across AioContexts, as QEMU's util/aio-wait.c and
// include/block/aio-wait.h do it. A thread that waits for work in another
// thread's context (the BQL holder draining a disk that runs in an IOThread)
// cannot poll that context: only its home thread may. AIO_WAIT_WHILE
// instead polls qemu_aio_context, blocking, until the condition turns false,
// and the other thread's completions wake it with aio_wait_kick, a dummy
// oneshot bottom half in qemu_aio_context scheduled while anyone waits.
// Where the version has AioContext locks (2.0 to 8.1), a caller holding the
// other context's lock drops it around each aio_poll (AIO_WAIT_WHILE) so the
// IOThread's handlers can take it; from 8.2 nobody holds one
// (AIO_WAIT_WHILE_UNLOCKED). aio_wait_bh_oneshot runs a bottom half in a
// context and waits for it the same way. Each wait is kept as one stretch of
// blocked time of the waiting thread.
// Leaves out: waiting from a coroutine (bdrv_co_yield_to_drain).
import type { Co, Platform } from '../platform.ts';
import type { Instruments } from '../instrument/instrument.ts';
import type { AioContext, AioContextLock } from './aio.ts';

/** How a wait is reported and bounded. */
export interface AioWaitOptions {
  /** What is waited for, for reports ("in-flight requests on disk0 in iothread0"). */
  readonly what: string;
  /** Checked before each aio_poll: true gives up (a deadline passed). */
  readonly stop?: () => boolean;
  /** After each aio_poll (to record the iteration). */
  readonly after?: () => void;
  /**
   * Locks taken and dropped around each check of the condition (QEMU 7.2's
   * bdrv_drain_all_poll acquires every node's context to look at it).
   */
  readonly checkLocks?: readonly AioContextLock[];
}

/** QEMU: global_aio_wait (util/aio-wait.c). */
export class AioWait {
  /** QEMU: AioWait.num_waiters */
  numWaiters = 0;
  /** aio_wait_kick calls that scheduled a wakeup. */
  kicks = 0;

  constructor(
    private readonly platform: Platform,
    private readonly inst: Instruments,
    /** qemu_aio_context: where waiters poll and kicks land. */
    readonly mainCtx: AioContext,
  ) {}

  /** QEMU: aio_wait_kick: while someone waits, a dummy oneshot BH in qemu_aio_context wakes its aio_poll. */
  kick(): void {
    if (this.numWaiters === 0) return;
    this.kicks++;
    this.mainCtx.bhScheduleOneshot('aio_wait_kick', function* () {});
  }

  /**
   * QEMU: AIO_WAIT_WHILE(ctx, cond) / AIO_WAIT_WHILE_UNLOCKED. In ctx's home
   * thread it polls ctx itself; anywhere else (ctx null, or another thread's
   * context) it polls qemu_aio_context, dropping ctx's lock around each poll
   * when the caller holds it. Returns false when options.stop gave up.
   */
  *waitWhile(ctx: AioContext | null, cond: () => boolean, options: AioWaitOptions): Co<boolean> {
    const p = this.platform;
    const thread = p.current().name;
    const home = ctx !== null && ctx.home === thread;
    const poller = home ? ctx : this.mainCtx;
    const lock = !home && ctx !== null ? ctx.lock : null;
    const start = p.nowNs();
    this.numWaiters++;
    try {
      while (yield* this.check(cond, options.checkLocks)) {
        if (options.stop?.()) return false;
        const held = lock !== null && lock.heldDepth() > 0;
        if (held) lock.release();
        yield* poller.poll(true, options.what);
        if (held) yield* lock.acquire('AIO_WAIT_WHILE');
        options.after?.();
      }
      return true;
    } finally {
      this.numWaiters--;
      if (p.nowNs() > start) this.inst.noteBlocked(thread, start, p.nowNs() - start);
    }
  }

  /**
   * QEMU: aio_wait_bh_oneshot (util/aio-wait.c): runs cb as a bottom half in
   * ctx, in ctx's thread, and waits until it ran.
   */
  *bhOneshot(ctx: AioContext, name: string, cb: () => Co<void>): Co<void> {
    let done = false;
    const kick = () => this.kick();
    ctx.bhScheduleOneshot(name, function* () {
      yield* cb();
      done = true;
      kick();
    });
    yield* this.waitWhile(ctx, () => !done, { what: `${name} in ${ctx.name}` });
  }

  /** The condition, looked at under each lock of locks when given. */
  private *check(cond: () => boolean, locks: readonly AioContextLock[] | undefined): Co<boolean> {
    if (!locks || locks.length === 0) return cond();
    for (const l of locks) yield* l.acquire('bdrv_drain_all_poll');
    const r = cond();
    for (const l of locks) l.release();
    return r;
  }
}
