// An IOThread (QEMU's -object iothread, iothread.c): a thread with its own
// AioContext that runs aio_poll(ctx, true) forever (iothread_run). Devices
// bound to it (virtio-blk's dataplane) register their host notifiers and
// block completions in its context, so their handlers run here, without the
// BQL. Another thread reaches it only through the context: a bottom half
// scheduled from there wakes the blocked poll (aio_notify), and a waiter in
// qemu_aio_context is woken by aio_wait_kick. The context has adaptive
// polling (poll-max-ns, poll-grow, poll-shrink) and, in QEMU 2.0 to 8.1, its
// AioContext lock. The thread's blocked time is its dispatch time: from its
// wait's return to its next wait.
// Leaves out: the IOThread's GMainContext (iothread_get_g_main_context), stop
// and join (IOThreads live as long as the run), thread affinity.
import type { Co, Platform, PlatformThread } from '../platform.ts';
import type { Instruments } from '../instrument/instrument.ts';
import type { IothreadSpec } from '../scenario/iothreads.ts';
import { AioContext, AioContextLock } from './aio.ts';
import type { QEMUClocks } from './timer.ts';

export class IOThread {
  readonly id: string;
  /** QEMU: iothread->ctx */
  readonly ctx: AioContext;
  /** aio_poll iterations run. */
  iterations = 0;
  thread: PlatformThread | null = null;

  constructor(
    readonly spec: IothreadSpec,
    private readonly platform: Platform,
    private readonly inst: Instruments,
    clocks: QEMUClocks,
    /** The version's block-layer locking: 'aio-context' gives the context its lock. */
    locking: 'aio-context' | 'graph',
    keepPolls = false,
  ) {
    this.id = spec.id;
    this.ctx = new AioContext(spec.id, platform, inst, clocks, keepPolls, {
      maxNs: spec.poll_max_ns, grow: spec.poll_grow, shrink: spec.poll_shrink,
    });
    this.ctx.home = spec.id;
    if (locking === 'aio-context') this.ctx.lock = new AioContextLock(spec.id, platform, inst);
  }

  /** QEMU: iothread_complete -> qemu_thread_create(iothread_run); the thread is named by the id. */
  start(): void {
    this.thread = this.platform.spawn(this.id, () => this.run(), { ownCore: true });
  }

  /** QEMU: iothread_run (iothread.c) */
  private *run(): Co<void> {
    const p = this.platform;
    for (;;) {
      this.noteDispatch(p.nowNs());
      this.iterations++;
      yield* this.ctx.poll(true);
    }
  }

  /** At the end of a run: a thread stuck in a handler counts as blocked until now. */
  finish(): void {
    if (!this.ctx.waiting) this.noteDispatch(this.platform.nowNs());
  }

  /** The stretch from the last wait's return to now, when the loop did nothing but dispatch. */
  private noteDispatch(now: number): void {
    const last = this.ctx.lastPoll;
    if (!last) return;
    const end = last.start_ns + last.waited_ns;
    this.inst.noteBlocked(this.id, end, now - end);
  }
}
