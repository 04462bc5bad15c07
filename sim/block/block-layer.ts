// The block layer's global operations that vm_stop runs under the BQL:
// bdrv_drain_all waits until no request is in flight, bdrv_flush_all flushes
// the backends one after another, each waited for (skipping one with nothing
// written since its last flush, as QEMU >= 2.7 does). Both wait in nested
// aio_poll(qemu_aio_context, true): upstream QEMU has no timeout there, which
// is the talk's 40-50 s select(). A deadline (the talk's proposed fix) makes
// the wait give up; each poll iteration is recorded with its elapsed time and
// the fds it waited on, like the talk's "qaw 3: 10011 ms rfd 1 wfd 0".
// Across AioContexts (a disk whose dataplane runs in an IOThread) every wait
// is AIO_WAIT_WHILE (main-loop/aio-wait.ts): the caller polls
// qemu_aio_context and the IOThread's completions kick it; where the version
// has AioContext locks (2.0 to 8.1) the caller takes the IOThread's context
// lock around what it does there and drops it inside each poll. A drained
// section (bdrv_drained_begin) keeps the device from starting new requests:
// aio_disable_external on the node's context up to 8.1, the device's own
// drained_begin from 8.2. blk_set_aio_context (the dataplane's start and stop)
// drains the backend and moves its completions to the new context.
import type { AioContext, AioContextLock } from '../main-loop/aio.ts';
import type { AioWait } from '../main-loop/aio-wait.ts';
import type { Bql } from '../main-loop/bql.ts';
import type { Co, Platform } from '../platform.ts';
import type { BlockLayerHooks } from '../machine.ts';
import type { Instruments } from '../instrument/instrument.ts';
import { QEMUClockType } from '../main-loop/timer.ts';
import type { BlockBackend } from './backend.ts';

export interface DrainIteration {
  readonly phase: 'drain' | 'flush';
  /** Who drained, when not bdrv_drain_all / bdrv_flush_all (e.g. virtio_blk_data_plane_stop). */
  readonly site?: string;
  /** The AioContext whose requests were waited for, when not qemu_aio_context. */
  readonly ctx?: string;
  readonly n: number;
  readonly at_ns: number;
  /** Time since the phase began, when this iteration returned. */
  readonly elapsed_ns: number;
  readonly waited_ns: number;
  readonly rfd: number;
  readonly wfd: number;
  readonly in_flight: number;
}

export const TIMEOUT = 'timeout';

export class BlockLayer implements BlockLayerHooks {
  readonly backends: BlockBackend[] = [];
  readonly iterations: DrainIteration[] = [];
  /** Deadline for the next drain/flush (absolute ns), set by a migration policy. */
  deadlineNs = -1;
  /** Planted bug (tests of the destination check): flushAll does nothing. */
  skipFlush = false;

  constructor(
    private readonly platform: Platform,
    private readonly bql: Bql,
    private readonly ctx: AioContext,
    private readonly inst: Instruments,
    /** QEMU >= 2.7: bdrv_co_flush skips a node with nothing written since its last flush. */
    private readonly skipClean = true,
    /** How waits cross AioContexts (global_aio_wait). */
    private readonly aioWait: AioWait | null = null,
    /** The version's block-layer locking (sim/scenario/qemu.ts). */
    private readonly locking: 'bql' | 'aio-context' | 'graph' = 'bql',
  ) {}

  /** QEMU: blk_new + blk_insert_bs: the backend joins the node list bdrv_drain_all walks. */
  add(backend: BlockBackend): void {
    backend.aioWait = this.aioWait;
    this.backends.push(backend);
  }

  inFlight(): number {
    return this.backends.reduce((s, b) => s + b.inFlight, 0);
  }

  /** QEMU: bdrv_drain_all (block/io.c) */
  *drainAll(): Co<void> {
    yield* this.inst.run('bdrv_drain_all', 'block', this.doDrainAll());
  }

  /** QEMU: bdrv_flush_all (block/io.c); null on success. */
  *flushAll(): Co<string | null> {
    return yield* this.inst.run('bdrv_flush_all', 'block', this.doFlushAll());
  }

  private *doDrainAll(): Co<void> {
    this.bql.assertHeld('bdrv_drain_all');
    // QEMU: bdrv_drain_all_begin: quiesce every node, each under its context's lock, then poll.
    for (const b of this.backends) {
      const l = b.ctx.lock;
      if (l) yield* l.acquire('bdrv_drain_all_begin');
      this.quiesce(b);
      if (l) l.release();
    }
    try {
      const locks = this.backends.map((b) => b.ctx.lock).filter((l): l is AioContextLock => l !== null);
      const ok = yield* this.pollUntil('drain', () => this.inFlight() === 0, null, this.backends, locks);
      if (!ok) this.timedOut = true;
    } finally {
      // QEMU: bdrv_drain_all_end
      for (const b of this.backends) this.unquiesce(b);
    }
  }

  private *doFlushAll(): Co<string | null> {
    this.bql.assertHeld('bdrv_flush_all');
    if (this.timedOut) {
      this.timedOut = false;
      return TIMEOUT;
    }
    if (this.skipFlush) return null;
    // QEMU: bdrv_flush_all flushes one node after another, keeping the first error.
    let error: string | null = null;
    for (const b of this.backends) {
      if (this.skipClean && b.clean) continue;
      let done = false;
      const l = b.ctx.lock;
      if (l) yield* l.acquire('bdrv_flush_all');
      b.submit({
        op: 'flush', block: 0, blocks: 0, versions: [],
        done: (e) => {
          done = true;
          if (e && !error) error = `${b.name}: flush failed: ${e}`;
        },
      });
      // QEMU: bdrv_flush -> bdrv_poll_co: BDRV_POLL_WHILE in the node's context.
      const ok = yield* this.pollUntil('flush', () => done, this.remote(b), [b]);
      if (l) l.release();
      if (!ok) return TIMEOUT;
    }
    return error;
  }

  /**
   * QEMU: blk_drain (block/block-backend.c): a drained section around one
   * backend, waiting for its requests wherever they run. site names the caller.
   */
  *drain(b: BlockBackend, site: string): Co<void> {
    yield* this.inst.run('blk_drain', 'block', this.doDrain(b, site));
  }

  private *doDrain(b: BlockBackend, site: string): Co<void> {
    this.quiesce(b);
    try {
      yield* this.pollUntil('drain', () => b.inFlight === 0, this.remote(b), [b], [], site);
    } finally {
      this.unquiesce(b);
    }
  }

  /**
   * QEMU: blk_set_aio_context -> bdrv_try_change_aio_context: the backend is
   * drained (in its old context), then its completions move to ctx.
   */
  *setAioContext(b: BlockBackend, ctx: AioContext, site: string): Co<void> {
    if (b.ctx === ctx) return;
    yield* this.inst.run('blk_set_aio_context', 'block', this.doSetAioContext(b, ctx, site));
  }

  private *doSetAioContext(b: BlockBackend, ctx: AioContext, site: string): Co<void> {
    this.quiesce(b);
    try {
      yield* this.pollUntil('drain', () => b.inFlight === 0, this.remote(b), [b], [], site);
      // QEMU: bdrv_detach_aio_context / bdrv_attach_aio_context: a drained node's disabled externals move with it.
      if (this.locking === 'aio-context') b.ctx.enableExternal();
      b.moveTo(ctx);
      if (this.locking === 'aio-context') b.ctx.disableExternal();
    } finally {
      this.unquiesce(b);
    }
  }

  /** QEMU: bdrv_do_drained_begin_quiesce: the first quiesce stops new requests from the device. */
  private quiesce(b: BlockBackend): void {
    if (b.quiesceCounter++ > 0) return;
    if (this.locking === 'aio-context') b.ctx.disableExternal();
    else if (this.locking === 'graph') b.devOps?.drainedBegin();
  }

  /** QEMU: bdrv_do_drained_end */
  private unquiesce(b: BlockBackend): void {
    if (--b.quiesceCounter > 0) return;
    if (this.locking === 'aio-context') b.ctx.enableExternal();
    else if (this.locking === 'graph') b.devOps?.drainedEnd();
  }

  /** The backend's context when another thread's (an IOThread), else null (AIO_WAIT_WHILE polls qemu_aio_context). */
  private remote(b: BlockBackend): AioContext | null {
    return b.ctx === this.ctx ? null : b.ctx;
  }

  private timedOut = false;

  /**
   * Nested aio_poll(qemu_aio_context, true) until done() or the deadline:
   * AIO_WAIT_WHILE(ctx, !done()), ctx being the waited-for requests' context
   * when it is an IOThread's. checkLocks: taken around each look at done().
   */
  private *pollUntil(
    phase: 'drain' | 'flush', done: () => boolean, ctx: AioContext | null,
    of: readonly BlockBackend[], checkLocks: readonly AioContextLock[] = [], site?: string,
  ): Co<boolean> {
    const p = this.platform;
    const start = p.nowNs();
    const deadline = this.deadlineNs;
    const timer = deadline >= 0
      ? this.ctx.tlg.timerNew(QEMUClockType.REALTIME, `bdrv_${phase}_all.timeout`, function* () {})
      : null;
    timer?.mod(deadline);
    const names = of.map((b) => (b.ctx === this.ctx ? b.name : `${b.name} in ${b.ctx.name}`)).join(', ');
    const what = `${phase === 'drain' ? 'in-flight requests' : 'flush'} on ${names}`;
    let n = 0;
    const record = () => {
      const last = this.ctx.lastPoll;
      n++;
      const it: DrainIteration = {
        phase, n, at_ns: p.nowNs(), elapsed_ns: p.nowNs() - start,
        waited_ns: last?.waited_ns ?? 0, rfd: last?.rfd ?? 0, wfd: last?.wfd ?? 0, in_flight: this.inFlight(),
      };
      this.iterations.push(site || ctx ? { ...it, ...(site ? { site } : {}), ...(ctx ? { ctx: ctx.name } : {}) } : it);
    };
    const stop = () => deadline >= 0 && p.nowNs() >= deadline;
    try {
      if (this.aioWait) {
        return yield* this.aioWait.waitWhile(ctx, () => !done(), { what, stop, after: record, checkLocks });
      }
      while (!done()) {
        if (stop()) return false;
        yield* this.ctx.poll(true, what);
        record();
      }
      return true;
    } finally {
      timer?.del();
    }
  }
}
