// The block layer's global operations that vm_stop runs under the BQL:
// bdrv_drain_all waits until no request is in flight, bdrv_flush_all flushes
// the backends one after another, each waited for (skipping one with nothing
// written since its last flush, as QEMU >= 2.7 does). Both wait in nested
// aio_poll(qemu_aio_context, true): upstream QEMU has no timeout there, which
// is the talk's 40-50 s select(). A deadline (the talk's proposed fix) makes
// the wait give up; each poll iteration is recorded with its elapsed time and
// the fds it waited on, like the talk's "qaw 3: 10011 ms rfd 1 wfd 0".
import type { AioContext } from '../main-loop/aio.ts';
import type { Bql } from '../main-loop/bql.ts';
import type { Co, Platform } from '../platform.ts';
import type { BlockLayerHooks } from '../machine.ts';
import type { Instruments } from '../instrument/instrument.ts';
import { QEMUClockType } from '../main-loop/timer.ts';
import type { BlockBackend } from './backend.ts';

export interface DrainIteration {
  readonly phase: 'drain' | 'flush';
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
  ) {}

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
    const ok = yield* this.pollUntil('drain', () => this.inFlight() === 0);
    if (!ok) this.timedOut = true;
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
      b.submit({
        op: 'flush', block: 0, blocks: 0, versions: [],
        done: (e) => {
          done = true;
          if (e && !error) error = `${b.name}: flush failed: ${e}`;
        },
      });
      if (!(yield* this.pollUntil('flush', () => done))) return TIMEOUT;
    }
    return error;
  }

  private timedOut = false;

  /** Nested aio_poll(qemu_aio_context, true) until done() or the deadline. */
  private *pollUntil(phase: 'drain' | 'flush', done: () => boolean): Co<boolean> {
    const p = this.platform;
    const start = p.nowNs();
    const deadline = this.deadlineNs;
    const timer = deadline >= 0
      ? this.ctx.tlg.timerNew(QEMUClockType.REALTIME, `bdrv_${phase}_all.timeout`, function* () {})
      : null;
    timer?.mod(deadline);
    const what = `${phase === 'drain' ? 'in-flight requests' : 'flush'} on ${this.backends.map((b) => b.name).join(', ')}`;
    let n = 0;
    try {
      while (!done()) {
        if (deadline >= 0 && p.nowNs() >= deadline) return false;
        yield* this.ctx.poll(true, what);
        const last = this.ctx.lastPoll;
        n++;
        this.iterations.push({
          phase, n, at_ns: p.nowNs(), elapsed_ns: p.nowNs() - start,
          waited_ns: last?.waited_ns ?? 0, rfd: last?.rfd ?? 0, wfd: last?.wfd ?? 0, in_flight: this.inFlight(),
        });
      }
      return true;
    } finally {
      timer?.del();
    }
  }
}
