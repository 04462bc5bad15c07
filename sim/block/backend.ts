// A block backend: the image behind a virtio-blk device (QEMU's BlockBackend
// and BlockDriverState over a file or NFS). Requests take a service time drawn
// per operation (read, write, flush), at most queue_depth are in flight, and
// the fault schedule can stall the backend for a window, slow its flushes
// (the talk's 40-50 s NFS flush) or fail requests. Completions are signalled
// on an fd in the backend's AioContext (qemu_aio_context, or an IOThread's
// while a dataplane runs there: blk_set_aio_context moves it), whose handler
// runs the request callbacks, as linux-aio and the thread pool do; in an
// IOThread it takes the context's lock where the version has one (7.2's
// qemu_laio_process_completions_and_submit) and kicks a thread waiting in
// another context (bdrv_dec_in_flight -> aio_wait_kick). A drained section
// (quiesce) tells the device, where the version does it that way
// (BlockDevOps.drained_begin, 8.2 on). The content model keeps, per block of
// request size, the version in the volatile cache and on stable storage: a
// flush makes the writes completed before it was issued stable.
// Leaves out: the format layer (qcow2), throttling groups, copy-on-read.
import type { Co, Notifier, Platform } from '../platform.ts';
import type { AioContext } from '../main-loop/aio.ts';
import type { AioWait } from '../main-loop/aio-wait.ts';
import type { BlkSpec } from '../scenario/scenario.ts';
import { type Dist, sample } from '../util/dist.ts';
import type { FaultSchedule } from '../faults.ts';
import type { Rng } from '../scheduler/random.ts';
import type { Instruments } from '../instrument/instrument.ts';

export type BlockOp = 'read' | 'write' | 'flush';

/** Fault-delayed requests kept for attribution. */
export const DELAYS_MAX = 10_000;

export interface BlockRequest {
  readonly op: BlockOp;
  /** First block and block count (reads and writes). */
  readonly block: number;
  readonly blocks: number;
  /** Content version each written block gets. */
  readonly versions: readonly number[];
  /** Runs in the completion handler (under the BQL on the main loop). */
  readonly done: (error: string | null) => void;
}

/** QEMU: BlockDevOps' drained_begin / drained_end (include/sysemu/block-backend-common.h), 8.2 on. */
export interface BlockDevOps {
  drainedBegin(): void;
  drainedEnd(): void;
}

interface Issued {
  readonly req: BlockRequest;
  readonly issuedNs: number;
  readonly stalled: boolean;
  readonly fault: string | null;
  /** Flush: the cache blocks and versions it makes stable. */
  readonly snapshot: Map<number, number> | null;
  /** Flush: the write_gen when it was issued. */
  readonly gen: number;
  error: string | null;
}

export class BlockBackend {
  /** Requests submitted and not yet completed through their callback. */
  inFlight = 0;
  /** The completion fd (a linux-aio eventfd) in qemu_aio_context. */
  readonly completionFd: Notifier;
  readonly handlerName: string;
  readonly stable: Uint32Array;
  readonly cache: Uint32Array;
  readonly counts = { read: 0, write: 0, flush: 0, errors: 0 };
  /** QEMU: BlockDriverState.write_gen: bumped by every completed write. */
  writeGen = 0;
  /** QEMU: BlockDriverState.flushed_gen: the write_gen the last successful flush covered. */
  flushedGen = 0;
  /** Requests a fault delayed: which fault, when issued, when done (at most DELAYS_MAX kept). */
  readonly delays: { fault: string; op: BlockOp; from_ns: number; to_ns: number }[] = [];
  /** QEMU: blk_get_aio_context: where completions run. */
  ctx: AioContext;
  /** QEMU: BlockDriverState.quiesce_counter: inside a drained section while > 0. */
  quiesceCounter = 0;
  /** The device's drained-section callbacks (BlockDevOps), if it has them. */
  devOps: BlockDevOps | null = null;
  /** Set by the block layer: how completions in an IOThread wake a waiter elsewhere. */
  aioWait: AioWait | null = null;
  private readonly dirty = new Set<number>();
  private readonly waiting: BlockRequest[] = [];
  private readonly completed: Issued[] = [];
  private issued = 0;
  private stalledNow = 0;
  private retryTimer = -1;
  private readonly rng: Rng;

  constructor(
    readonly name: string,
    private readonly platform: Platform,
    private readonly inst: Instruments,
    ctx: AioContext,
    readonly spec: BlkSpec,
    private readonly faults: FaultSchedule,
  ) {
    this.rng = platform.random(`${name}.latency`);
    this.stable = new Uint32Array(spec.io.sectors);
    this.cache = new Uint32Array(spec.io.sectors);
    this.completionFd = platform.createNotifier(`${name}.aio-fd`);
    this.handlerName = `virtio-blk.${name}.aio-completion`;
    this.ctx = ctx;
    this.attach(ctx);
  }

  /**
   * QEMU: the AioContext switch of blk_set_aio_context (bdrv_attach_aio_context):
   * the completion handler moves to ctx. The caller has drained the backend.
   */
  moveTo(ctx: AioContext): void {
    if (ctx === this.ctx) return;
    this.ctx.setFdHandler(this.completionFd, this.handlerName, null);
    this.ctx = ctx;
    this.attach(ctx);
    // QEMU: aio_set_fd_handler's aio_notify: the new context polls the fd from its next wait.
    ctx.notify();
  }

  private attach(ctx: AioContext): void {
    // QEMU: linux-aio's completion eventfd, with qemu_laio_poll_cb for adaptive polling.
    ctx.setFdHandler(this.completionFd, this.handlerName, () => this.completionHandler(), null, { poll: true });
  }

  /** QEMU: blk_aio_preadv / blk_aio_pwritev / blk_aio_flush (block/block-backend.c) */
  submit(req: BlockRequest): void {
    this.inFlight++;
    this.inst.trace.event(this.platform.current().name, 'blk_co_submit', { dev: this.name, op: req.op, block: req.block, n: req.blocks });
    if (this.issued >= this.spec.queue_depth) this.waiting.push(req);
    else this.issue(req);
  }

  /** QEMU: bdrv_co_flush's early exit: nothing written since the last flush. */
  get clean(): boolean {
    return this.writeGen === this.flushedGen;
  }

  /** Requests blocked by a stall or a slow flush right now. */
  get stalled(): number {
    return this.stalledNow;
  }

  private issue(req: BlockRequest): void {
    const p = this.platform;
    const now = p.nowNs();
    this.issued++;
    const latency = sample(this.latencyOf(req.op), this.rng);
    let faultNs = 0;
    let error: string | null = null;
    const stall = this.faults.active(this.name, 'stall', now);
    if (stall) faultNs = stall.at_ns + stall.for_ns - now;
    const slow = req.op === 'flush' ? this.faults.active(this.name, 'slow-flush', now) : null;
    if (slow?.latency) faultNs = Math.max(faultNs, sample(slow.latency, this.rng));
    const failing = this.faults.active(this.name, 'io-error', now);
    if (failing && failing.ops.includes(req.op)) error = `EIO (fault ${failing.name})`;
    const stalled = faultNs > 0;
    const fault = stalled ? (slow?.latency ? slow.name : stall?.name ?? null) : null;
    const snapshot = req.op === 'flush' ? this.snapshotCache() : null;
    const item: Issued = { req, issuedNs: now, stalled, fault, snapshot, gen: this.writeGen, error };
    if (stalled) {
      this.stalledNow++;
      this.armRetry();
    }
    p.submitIo(this.name, {
      kind: req.op,
      offset: req.block * this.spec.io.request_bytes,
      length: req.blocks * this.spec.io.request_bytes,
      latencyNs: latency,
      faultNs,
      error,
    }, (result) => this.complete(item, result.error));
  }

  private latencyOf(op: BlockOp): Dist {
    return op === 'read' ? this.spec.read : op === 'write' ? this.spec.write : this.spec.flush;
  }

  /** The backend finished a request: record its effect, signal the completion fd. */
  private complete(item: Issued, error: string | null): void {
    item.error = error;
    const req = item.req;
    if (error === null) {
      if (req.op === 'write') {
        for (let i = 0; i < req.blocks; i++) {
          const b = req.block + i;
          this.cache[b] = req.versions[i]!;
          this.dirty.add(b);
        }
        this.writeGen++;
      } else if (req.op === 'flush' && item.snapshot) {
        this.flushedGen = Math.max(this.flushedGen, item.gen);
        for (const [b, v] of item.snapshot) {
          if (v > this.stable[b]!) this.stable[b] = v;
          if (this.cache[b] === this.stable[b]) this.dirty.delete(b);
        }
      }
    } else {
      this.counts.errors++;
    }
    this.counts[req.op]++;
    if (item.stalled) {
      this.stalledNow--;
      if (item.fault && this.delays.length < DELAYS_MAX) {
        this.delays.push({ fault: item.fault, op: req.op, from_ns: item.issuedNs, to_ns: this.platform.nowNs() });
      }
    }
    this.issued--;
    this.completed.push(item);
    this.completionFd.set();
    const next = this.waiting.shift();
    if (next) this.issue(next);
  }

  /** The completion fd's read handler: runs callbacks of finished requests. */
  private *completionHandler(): Co<void> {
    this.completionFd.read();
    const ctx = this.ctx;
    const lock = ctx.lock;
    if (lock) yield* lock.acquire(`${this.handlerName}`);
    const batch = this.completed.splice(0);
    for (const item of batch) {
      this.inFlight--;
      this.inst.trace.event(this.platform.current().name, 'blk_co_complete', {
        dev: this.name, op: item.req.op, ns: this.platform.nowNs() - item.issuedNs, error: item.error ?? '',
      });
      item.req.done(item.error);
    }
    if (lock) lock.release();
    // QEMU: bdrv_dec_in_flight -> aio_wait_kick. A completion in qemu_aio_context
    // itself needs no kick to be seen by a waiter polling that context.
    if (batch.length > 0 && this.aioWait && ctx !== this.aioWait.mainCtx) this.aioWait.kick();
  }

  private snapshotCache(): Map<number, number> {
    const m = new Map<number, number>();
    for (const b of this.dirty) m.set(b, this.cache[b]!);
    return m;
  }

  /**
   * While requests are stalled, a retry_interval wakes the completion fd
   * without completing anything (an NFS client retrying): each wakeup is one
   * more aio_poll iteration of a waiting drain, as in the talk's log.
   */
  private armRetry(): void {
    const interval = this.spec.retry_interval_ns;
    if (interval <= 0 || this.retryTimer >= 0) return;
    const tick = () => {
      this.retryTimer = -1;
      if (this.stalledNow === 0) return;
      this.completionFd.set();
      this.retryTimer = this.platform.callAfter(interval, tick);
    };
    this.retryTimer = this.platform.callAfter(interval, tick);
  }
}
