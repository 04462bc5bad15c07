// virtio-blk's dataplane (QEMU's hw/block/dataplane/virtio-blk.c): with
// iothread=ID the device's host notifier and its block completions live in
// that IOThread's AioContext, so virtio_blk_handle_vq and the completions
// run there, without the BQL, and the guest is notified from a bottom half
// in the IOThread (notify_guest_bh -> virtio_notify_irqfd, no BQL either).
// It starts when the VM runs and stops when it stops (vm_state_notify ->
// virtio_pci_vmstate_change -> virtio_bus_{start,stop}_ioeventfd), under the
// BQL. Stopping waits for the IOThread: in 7.2 the caller first takes the
// IOThread's AioContext lock (held by the IOThread's handler while it runs),
// runs virtio_blk_data_plane_stop_bh in the IOThread (aio_wait_bh_oneshot:
// the host notifier is detached and what the guest kicked before is handled)
// and then moves the disk back to qemu_aio_context with blk_set_aio_context,
// which drains its in-flight requests: AIO_WAIT_WHILE polls qemu_aio_context
// until the IOThread's completions are in. 8.2 on takes no AioContext lock
// and drains with blk_drain first; the waits are the same. Starting moves the
// disk to the IOThread, resubmits requests kept in s->rq
// (virtio_blk_process_queued_requests) and kicks the host notifier once.
// With 8.2's BlockDevOps, a drained section detaches the host notifier
// (virtio_blk_drained_begin) and attaches it again at its end.
// What still takes the BQL: the start and stop themselves, config and status
// changes (virtio_notify_config), and the VM change-state handlers.
// Leaves out: several virtqueues and iothread-vq-mapping (8.2), a failed
// start (dataplane_disabled), the notify BH's per-queue bitmap.
import type { AioContext, QEMUBH } from '../../main-loop/aio.ts';
import type { IOThread } from '../../main-loop/iothread.ts';
import type { BlockLayer } from '../../block/block-layer.ts';
import type { BlockBackend, BlockDevOps } from '../../block/backend.ts';
import type { Co } from '../../platform.ts';
import type { DeviceHandle } from '../handle.ts';
import type { BlkDataPlane, VirtIOBlock } from './device.ts';

export class VirtIOBlockDataPlane implements BlockDevOps, BlkDataPlane {
  /** QEMU: vblk->dataplane_started */
  started = false;
  readonly ctx: AioContext;
  readonly iothread: string;
  /** QEMU: s->bh, notify_guest_bh, in the IOThread. */
  readonly notifyBh: QEMUBH;
  private readonly pending: (() => void)[] = [];
  private readonly handlerName: string;
  private drained = false;

  constructor(
    private readonly h: DeviceHandle,
    private readonly dev: VirtIOBlock,
    iothread: IOThread,
    private readonly block: BlockLayer,
    private readonly backend: BlockBackend,
  ) {
    this.ctx = iothread.ctx;
    this.iothread = iothread.id;
    this.handlerName = `virtio-blk.${dev.spec.name}.host-notifier-read`;
    this.notifyBh = h.bhNewIn(this.ctx, `virtio-blk.${dev.spec.name}.notify-bh`, () => this.notifyGuestBh());
    // 8.2 on: drained sections reach the device through its BlockDevOps.
    if (h.profile.block_locking === 'graph') backend.devOps = this;
  }

  /** QEMU: virtio_blk_data_plane_notify: the completion interrupt waits for notify_guest_bh. */
  notify(raise: () => void): void {
    this.pending.push(raise);
    this.notifyBh.schedule();
  }

  /** QEMU: notify_guest_bh -> virtio_notify_irqfd: every pending completion reaches the guest, no BQL. */
  private *notifyGuestBh(): Co<void> {
    this.h.assertInThread(`virtio-blk.${this.dev.spec.name}.notify-bh`, this.iothread);
    this.flushNotify();
  }

  private flushNotify(): void {
    for (const raise of this.pending.splice(0)) raise();
  }

  /**
   * QEMU: virtio_blk_data_plane_start (hw/block/dataplane/virtio-blk.c), under
   * the BQL; booted: the guest driver's DRIVER_OK before the run began (no thread yet).
   */
  start(booted = false): void {
    const h = this.h;
    if (this.started) return;
    if (!booted) h.assertBqlHeld('virtio_blk_data_plane_start');
    // blk_set_aio_context(s->ctx): the stop drained the disk, so nothing waits here.
    this.backend.moveTo(this.ctx);
    this.started = true;
    h.traceEvent('virtio_blk_data_plane_start', { dev: this.dev.spec.name, iothread: this.iothread });
    // Requests kept in s->rq (werror=stop) before the ones in the ring.
    this.dev.processQueuedRequests();
    // "Kick right away to begin processing requests already in vring", then attach.
    this.dev.hostNotifier.set();
    if (!this.drained) this.attach();
  }

  /** QEMU: virtio_blk_data_plane_stop, from vm_stop's vm_state_notify under the BQL; blocks until the IOThread is done. */
  *stop(): Co<void> {
    if (!this.started) return;
    yield* this.h.run(`virtio-blk.${this.dev.spec.name}.dataplane-stop`, 'runstate', this.doStop());
  }

  private *doStop(): Co<void> {
    const h = this.h;
    h.assertBqlHeld('virtio_blk_data_plane_stop');
    h.traceEvent('virtio_blk_data_plane_stop', { dev: this.dev.spec.name, iothread: this.iothread });
    const lock = this.ctx.lock;
    // 7.2: aio_context_acquire(s->ctx) first, held except inside AIO_WAIT_WHILE's polls.
    if (lock) yield* lock.acquire('virtio_blk_data_plane_stop');
    yield* h.aioWaitBhOneshot(this.ctx, `virtio-blk.${this.dev.spec.name}.dataplane-stop-bh`, () => this.stopBh());
    // 8.2 on clears dataplane_started before draining; 7.2 only at the end (completions
    // meanwhile still notify from the BH, and the final notify below catches them).
    const graph = h.profile.block_locking === 'graph';
    if (graph) {
      this.started = false;
      // 8.2 on: "Wait for virtio_blk_dma_restart_bh() and in flight I/O to complete".
      yield* this.block.drain(this.backend, 'virtio_blk_data_plane_stop');
    }
    // (7.2: blk_set_aio_context drains.) Switch the disk back to the main loop.
    yield* this.block.setAioContext(this.backend, h.mainContext, 'virtio_blk_data_plane_stop');
    if (lock) lock.release();
    this.started = false;
    // qemu_bh_cancel(s->bh); notify_guest_bh(s): the final chance to notify the guest.
    this.notifyBh.cancel();
    this.flushNotify();
  }

  /** QEMU: virtio_blk_data_plane_stop_bh, in the IOThread: detach, then handle what was kicked before. */
  private *stopBh(): Co<void> {
    this.h.assertInThread(`virtio-blk.${this.dev.spec.name}.dataplane-stop-bh`, this.iothread);
    this.detach();
    // "Test and clear notifier after disabling event, in case poll callback didn't have time to run."
    if (this.dev.hostNotifier.ready) yield* this.dev.handleOutput();
  }

  /** QEMU 8.2: virtio_blk_drained_begin: no new requests from the guest while drained. */
  drainedBegin(): void {
    this.drained = true;
    if (this.started) this.detach();
  }

  /** QEMU 8.2: virtio_blk_drained_end */
  drainedEnd(): void {
    this.drained = false;
    if (this.started) this.attach();
  }

  /** QEMU: virtio_queue_aio_attach_host_notifier: an external handler that adaptive polling polls. */
  private attach(): void {
    this.h.setAioFdHandler(this.ctx, this.dev.hostNotifier, this.handlerName, () => this.dev.handleOutput(), { external: true, poll: true });
    // QEMU: aio_set_fd_handler ends in aio_notify: the IOThread polls the new fd from its next wait.
    this.ctx.notify();
  }

  /** QEMU: virtio_queue_aio_detach_host_notifier */
  private detach(): void {
    this.h.setAioFdHandler(this.ctx, this.dev.hostNotifier, this.handlerName, null);
  }
}
