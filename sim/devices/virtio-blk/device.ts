// virtio-blk, the device logic. A kick on the host notifier (ioeventfd) runs
// virtio_blk_handle_output on the main loop under the BQL, or, with a
// dataplane (dataplane.ts), in its IOThread without it (under the IOThread's
// AioContext lock where the version has one): it pops requests,
// merges adjacent writes into one backend request (QEMU's multiwrite,
// MultiReqBuffer) and submits them to the block backend. Completions run from
// the backend's fd in qemu_aio_context: the request is pushed to the used ring
// and the guest interrupted. With werror=stop a failed request is kept in
// s->rq and the VM stops; when the VM resumes, the dma-restart bottom half
// resubmits them (with a dataplane, its start does).
// Leaves out: discard/write-zeroes, multiqueue, SCSI passthrough.
import type { AioContext, QEMUBH } from '../../main-loop/aio.ts';
import type { DeviceHandle } from '../handle.ts';
import type { Co, Notifier } from '../../platform.ts';
import type { BlkSpec } from '../../scenario/scenario.ts';
import { sample } from '../../util/dist.ts';
import type { BlockBackend } from '../../block/backend.ts';
import { SimVirtQueue, type VirtQueue } from '../virtqueue.ts';
import type { VirtIOBlockReq } from './request.ts';

/** What the device sees of its dataplane (dataplane.ts): where it runs, and its guest notification. */
export interface BlkDataPlane {
  readonly started: boolean;
  /** The IOThread's id and context. */
  readonly iothread: string;
  readonly ctx: AioContext;
  /** QEMU: virtio_blk_data_plane_notify */
  notify(raise: () => void): void;
}

/** QEMU: VIRTIO_BLK_MAX_MERGE_REQS-like cap on requests merged into one. */
export const MERGE_REQS_MAX = 32;
/** Guest kernel time to handle one completion interrupt. */
export const COMPLETION_IRQ_COST_NS = 5_000;

export class VirtIOBlock {
  readonly vq: VirtQueue<VirtIOBlockReq>;
  /** The ioeventfd the guest's kick writes. */
  readonly hostNotifier: Notifier;
  /** QEMU: VirtIOBlock.rq: failed requests waiting for the VM to resume. */
  rq: VirtIOBlockReq[] = [];
  readonly dmaRestartBh: QEMUBH;
  /** The guest driver's completion handler (its interrupt handler), set by the event glue. */
  onComplete: (req: VirtIOBlockReq, error: string | null) => void = () => {};
  merged = 0;
  restarted = 0;
  /** QEMU: s->dataplane, with iothread=; set by the event glue. */
  dataplane: BlkDataPlane | null = null;
  private readonly rng;

  constructor(
    private readonly h: DeviceHandle,
    readonly spec: BlkSpec,
    readonly backend: BlockBackend,
  ) {
    this.rng = h.random('device');
    this.vq = new SimVirtQueue(`${spec.name}.vq`, spec.queue_depth * 4);
    this.hostNotifier = h.notifier('ioeventfd');
    this.dmaRestartBh = h.bhNew(`virtio-blk.${spec.name}.dma-restart-bh`, () => this.dmaRestartBhFn());
  }

  /** Guest side of a kick: the ioeventfd fires; no exit to userspace. */
  kick(req: VirtIOBlockReq): void {
    req.flow = this.h.flowStart(`${this.spec.name}.kick`);
    this.hostNotifier.set();
  }

  /**
   * QEMU: virtio_blk_handle_output -> virtio_blk_handle_vq (hw/block/virtio-blk.c):
   * under the BQL on the main loop; in the IOThread with a dataplane, under its
   * AioContext lock up to 8.1.
   */
  *handleOutput(): Co<void> {
    const h = this.h;
    const site = `virtio-blk.${this.spec.name}.host-notifier-read`;
    const dp = this.dataplane;
    if (dp) h.assertInThread(site, dp.iothread);
    else h.assertBqlHeld(site);
    const lock = dp?.ctx.lock ?? null;
    if (lock) yield* lock.acquire('virtio_blk_handle_vq');
    this.hostNotifier.read();
    const reqs: VirtIOBlockReq[] = [];
    for (let r = this.vq.pop(); r; r = this.vq.pop()) {
      if (r.flow) h.flowEnd(`${this.spec.name}.kick`, r.flow);
      reqs.push(r);
    }
    for (const _ of reqs) yield* h.cpu(sample(this.spec.request_cost, this.rng));
    this.submitAll(reqs);
    if (lock) lock.release();
  }

  /** QEMU: virtio_blk_handle_request + virtio_blk_submit_multireq: writes merge, others go alone. */
  submitAll(reqs: readonly VirtIOBlockReq[]): void {
    let writes: VirtIOBlockReq[] = [];
    const flushWrites = () => {
      if (writes.length > 0) this.submitMultiwrite(writes);
      writes = [];
    };
    for (const r of reqs) {
      if (r.op === 'write') {
        writes.push(r);
        continue;
      }
      flushWrites();
      this.submit([r], r.op, r.block, r.blocks, []);
    }
    flushWrites();
  }

  /** QEMU: virtio_blk_submit_multireq: sort by sector, merge adjacent runs. */
  private submitMultiwrite(writes: VirtIOBlockReq[]): void {
    writes.sort((a, b) => a.block - b.block || a.id - b.id);
    let run: VirtIOBlockReq[] = [];
    const submitRun = () => {
      if (run.length === 0) return;
      const first = run[0]!;
      const versions = run.flatMap((r) => r.versions);
      if (run.length > 1) this.merged += run.length - 1;
      this.submit(run, 'write', first.block, versions.length, versions);
      run = [];
    };
    for (const w of writes) {
      const last = run[run.length - 1];
      if (last && (last.block + last.blocks !== w.block || run.length >= MERGE_REQS_MAX)) submitRun();
      run.push(w);
    }
    submitRun();
  }

  private submit(reqs: VirtIOBlockReq[], op: VirtIOBlockReq['op'], block: number, blocks: number, versions: number[]): void {
    this.backend.submit({ op, block, blocks, versions, done: (err) => this.rwComplete(reqs, err) });
  }

  /** QEMU: virtio_blk_rw_complete (hw/block/virtio-blk.c) */
  private rwComplete(reqs: VirtIOBlockReq[], error: string | null): void {
    if (error && this.spec.on_error === 'stop') {
      // QEMU: virtio_blk_handle_rw_error with BLOCK_ERROR_ACTION_STOP.
      this.rq.push(...reqs);
      this.h.requestVmStop('io-error');
      return;
    }
    for (const r of reqs) this.complete(r, error);
  }

  /** Pushes a finished request to the used ring and interrupts the guest. */
  private complete(req: VirtIOBlockReq, error: string | null): void {
    this.vq.push(req);
    this.h.traceEvent('virtio_blk_req_complete', {
      dev: this.spec.name, req: req.id, status: error ? 1 : 0,
    });
    const onComplete = this.onComplete;
    const raise = () => this.h.guest.raiseIrq(this.spec.vcpu, {
      name: `virtio-blk.${this.spec.name}.irq`,
      costNs: COMPLETION_IRQ_COST_NS,
      run: () => {
        onComplete(req, error);
        return null;
      },
    });
    // QEMU: virtio_blk_req_complete: a started dataplane notifies from its BH (irqfd, no BQL).
    if (this.dataplane?.started) this.dataplane.notify(raise);
    else raise();
  }

  /**
   * QEMU: virtio_blk_dma_restart_cb: a VM change-state handler. With the
   * ioeventfd on (a dataplane), it leaves s->rq to the dataplane's start.
   */
  dmaRestartCb(running: boolean): void {
    if (running && this.rq.length > 0 && !this.dataplane) this.dmaRestartBh.schedule();
  }

  /** QEMU: virtio_blk_dma_restart_bh (hw/block/virtio-blk.c) */
  private *dmaRestartBhFn(): Generator<never, void> {
    this.h.assertBqlHeld(`virtio-blk.${this.spec.name}.dma-restart-bh`);
    this.processQueuedRequests();
  }

  /** QEMU: virtio_blk_process_queued_requests: s->rq resubmitted. */
  processQueuedRequests(): void {
    const reqs = this.rq;
    this.rq = [];
    this.restarted += reqs.length;
    this.submitAll(reqs);
  }
}
