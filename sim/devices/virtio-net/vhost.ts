// vhost-net: virtio-net's data path in the host kernel (QEMU's
// hw/net/vhost_net.c and hw/virtio/vhost.c; Linux's drivers/vhost/net.c). A
// vhost worker, a kernel thread outside QEMU's own (named vhost-<netdev>
// here), waits on the tx queue's kick eventfd (the guest's ioeventfd, handed
// to the kernel with VHOST_SET_VRING_KICK) and on the tap (VHOST_NET_SET_BACKEND):
// handle_tx pops up to VHOST_NET_PKT_WEIGHT packets and sends them on the
// tap; handle_rx copies packets from the tap into the guest's rx buffers and
// signals the guest through the call eventfd (an irqfd: no QEMU thread, no
// BQL). QEMU's main loop sees none of it: no host-notifier handler, no tap
// read handler. The worker's writes into guest memory bypass KVM's dirty
// log, so while migration logs dirty pages (VHOST_F_LOG_ALL after
// memory_global_dirty_log_start) the worker sets bits in its own log, and
// QEMU merges that log into the migration bitmap at every
// migration_bitmap_sync (memory_global_dirty_log_sync -> vhost_log_sync ->
// vhost_dev_sync_region, which exchanges each log word with 0). vm_stop
// stops it (virtio_net_vhost_status -> vhost_net_stop -> vhost_dev_stop,
// under the BQL): the kernel finishes the work in flight first
// (vhost_net_flush), then QEMU syncs the log a last time (vhost_log_put);
// vm_start starts it again (vhost_net_start). The worker's blocked time is
// its dispatch time, as an event loop's.
// Leaves out: multiqueue (one worker per queue pair), zero-copy tx, busy
// polling (vhost-net's busyloop_timeout), the used ring's event index.
import type { Co, Notifier } from '../../platform.ts';
import type { GuestRam } from '../../guest/ram.ts';
import { bitmapNew } from '../../util/bitmap.ts';
import { sample } from '../../util/dist.ts';
import type { DeviceHandle } from '../handle.ts';
import type { VirtIONet } from './device.ts';
import type { TapBackend } from './backend.ts';

/** Linux: VHOST_NET_PKT_WEIGHT (drivers/vhost/net.c): packets per handle_tx / handle_rx run before requeueing. */
export const VHOST_NET_PKT_WEIGHT = 256;
/** The guest's posted rx buffers, one page each (no mergeable buffers), at the top of RAM below the rings. */
export const RX_BUFFERS = 256;

export class VhostNet {
  /** The worker thread's name: vhost-<netdev>. */
  readonly thread: string;
  /** QEMU: n->vhost_started */
  started = false;
  /** The vhost dirty log (VHOST_SET_LOG_BASE), laid out as KVM's: bit i = page i. */
  readonly log: Uint32Array;
  /** Pages the worker wrote into guest memory, and the syncs that merged the log. */
  pagesWritten = 0;
  logSyncs = 0;
  /** Planted bug (tests of the destination check): the log is never merged into the migration bitmap. */
  skipLogSync = false;
  txPackets = 0;
  rxPackets = 0;
  private readonly ctl: Notifier;
  private readonly flushed: Notifier;
  private busy = false;
  private waiting = false;
  private waitEndNs = -1;
  private rxNext = 0;
  private readonly rxBase: number;
  private readonly rng;

  constructor(
    private readonly h: DeviceHandle,
    private readonly dev: VirtIONet,
    private readonly tap: TapBackend,
    private readonly ram: GuestRam,
  ) {
    this.thread = `vhost-${dev.spec.name}`;
    this.log = bitmapNew(ram.pages);
    this.ctl = h.notifier('vhost-ctl');
    this.flushed = h.notifier('vhost-flushed');
    this.rng = h.random('vhost');
    if (ram.pages < RX_BUFFERS + 2) throw new RangeError(`vhost ${dev.spec.name}: guest memory of ${ram.pages} pages holds no rx ring`);
    this.rxBase = ram.pages - 2 - RX_BUFFERS;
    // QEMU: vhost_dev_init registers the memory listener whose log_sync is vhost_log_sync.
    ram.addLogSyncListener(() => this.logSync());
  }

  /** The worker's thread starts with the device (the kernel creates it at VHOST_SET_OWNER). */
  spawn(): void {
    this.h.spawn(this.thread, () => this.worker());
    this.h.addFinisher(() => this.finish());
  }

  /** QEMU: vhost_net_start (hw/net/vhost_net.c), under the BQL: the kernel serves both queues. */
  start(booted = false): void {
    if (this.started) return;
    if (!booted) this.h.assertBqlHeld('vhost_net_start');
    this.started = true;
    this.h.traceEvent('vhost_net_start', { dev: this.dev.spec.name });
    this.ctl.set();
  }

  /**
   * QEMU: vhost_net_stop -> vhost_dev_stop, under the BQL: the worker finishes
   * the work in flight (vhost_net_flush), then the log is synced a last time.
   */
  *stop(): Co<void> {
    if (!this.started) return;
    yield* this.h.run(`vhost-net.${this.dev.spec.name}.stop`, 'runstate', this.doStop());
  }

  private *doStop(): Co<void> {
    const h = this.h;
    h.assertBqlHeld('vhost_net_stop');
    this.started = false;
    h.traceEvent('vhost_net_stop', { dev: this.dev.spec.name });
    this.ctl.set();
    const t0 = h.nowNs();
    while (this.busy) {
      yield* h.wait([this.flushed], -1);
      this.flushed.read();
    }
    if (h.nowNs() > t0) {
      h.noteWait(`the work in flight of ${this.thread} (vhost_net_flush)`, h.nowNs() - t0);
      h.noteBlocked(h.currentThread(), t0, h.nowNs() - t0);
    }
    // QEMU: vhost_log_put(dev, true): what the worker logged goes into QEMU's bitmap now.
    this.logSync();
  }

  /**
   * QEMU: vhost_log_sync -> vhost_sync_dirty_bitmap -> vhost_dev_sync_region:
   * each log word is exchanged with 0 and its bits set in the migration's
   * dirty bitmap (the model's dirty log, which migration_bitmap_sync reads next).
   */
  logSync(): void {
    if (this.skipLogSync) return;
    this.logSyncs++;
    const log = this.log;
    const dirty = this.ram.dirtyLog;
    for (let w = 0; w < log.length; w++) {
      const bits = log[w]!;
      if (bits === 0) continue;
      log[w] = 0;
      dirty[w] = dirty[w]! | bits;
    }
  }

  /** Linux: vhost_worker (drivers/vhost/vhost.c) running handle_tx_kick / handle_rx_net. */
  private *worker(): Co<void> {
    const h = this.h;
    for (;;) {
      if (this.waitEndNs >= 0) h.noteBlocked(this.thread, this.waitEndNs, h.nowNs() - this.waitEndNs);
      const fds = this.started ? [this.dev.hostNotifier, this.tap.fd, this.ctl] : [this.ctl];
      this.waiting = true;
      yield* h.wait(fds, -1);
      this.waiting = false;
      this.waitEndNs = h.nowNs();
      this.ctl.read();
      if (!this.started) continue;
      this.busy = true;
      if (this.dev.hostNotifier.ready) yield* h.run(`vhost-net.${this.dev.spec.name}.handle-tx`, 'vhost', this.handleTx());
      if (this.tap.fd.ready) yield* h.run(`vhost-net.${this.dev.spec.name}.handle-rx`, 'vhost', this.handleRx());
      this.busy = false;
      // A vhost_net_stop waiting for the flush may go on.
      if (!this.started) this.flushed.set();
    }
  }

  /** Linux: handle_tx (drivers/vhost/net.c): up to VHOST_NET_PKT_WEIGHT packets from the tx ring to the tap. */
  private *handleTx(): Co<void> {
    const dev = this.dev;
    dev.hostNotifier.read();
    dev.txVq.setNotification(false);
    yield* this.h.cpu(sample(dev.spec.tx_bh_cost, this.rng));
    let n = 0;
    for (; n < VHOST_NET_PKT_WEIGHT; n++) {
      const pkt = dev.txVq.pop();
      if (!pkt) break;
      if (pkt.flow) this.h.flowEnd(`${dev.spec.name}.kick`, pkt.flow);
      dev.txVq.push(pkt);
      this.writeUsed(this.ram.pages - 1);
      this.txPackets++;
      dev.sent++;
      this.tap.transmit(pkt);
    }
    dev.txVq.setNotification(true);
    // Weight used up, or the guest added more meanwhile: vhost_poll_queue runs us again.
    if (n >= VHOST_NET_PKT_WEIGHT || !dev.txVq.empty) dev.hostNotifier.set();
  }

  /** Linux: handle_rx: packets from the tap into the guest's rx buffers, each signalled through the call eventfd. */
  private *handleRx(): Co<void> {
    this.tap.fd.read();
    for (let n = 0; n < VHOST_NET_PKT_WEIGHT; n++) {
      const pkt = this.tap.take();
      if (!pkt) return;
      this.writePage(this.rxBase + this.rxNext);
      this.rxNext = (this.rxNext + 1) % RX_BUFFERS;
      this.writeUsed(this.ram.pages - 2);
      this.rxPackets++;
      // virtio_net_receive's cost and the guest's rx interrupt, from the worker (irqfd).
      yield* this.dev.receive(pkt);
    }
    // Weight used up: vhost_poll_queue runs us again.
    if (this.tap.queued > 0) this.tap.fd.set();
  }

  /** The used ring's page: written for every used element (vhost logs it too: vq->log_used). */
  private writeUsed(page: number): void {
    this.writePage(page);
  }

  /** Linux: copy_to_user into guest memory, then vhost_log_write while VHOST_F_LOG_ALL is on. */
  private writePage(page: number): void {
    this.ram.hostWrite(page);
    this.pagesWritten++;
    if (this.ram.logging) {
      const w = page >>> 5;
      this.log[w] = this.log[w]! | (1 << (page & 31));
    }
  }

  /** At the end of a run: a worker stuck in a run counts as blocked until now. */
  private finish(): void {
    if (!this.waiting && this.waitEndNs >= 0) this.h.noteBlocked(this.thread, this.waitEndNs, this.h.nowNs() - this.waitEndNs);
  }
}
