// virtio-net, the device logic, as in the talk. The guest's tx kick lands on
// the host notifier (ioeventfd), whose read handler runs on the main loop under
// the BQL (virtio_pci_host_notifier_read -> virtio_net_handle_tx_bh): if a
// flush is already pending (tx_waiting) it returns; otherwise it sets
// tx_waiting, disables notifications and schedules the tx bottom half, which
// flushes up to tx_burst packets to the tap and re-enables notifications.
// Received packets go to the rx ring and interrupt the guest. The handler cost
// is the scenario's (the talk measured 358 ms in the host-notifier read).
// With tx=timer (virtio_net_handle_tx_timer) the kick instead arms the tx
// timer on QEMU_CLOCK_VIRTUAL for x-txtimer (150 us) and suppresses further
// kicks, so a batch builds up; a kick while the timer is armed flushes at
// once; virtio_net_tx_timer flushes up to tx_burst and re-arms while the
// guest keeps sending. With vhost (vhost.ts) none of this runs: the vhost
// worker serves both queues.
// The tx queue is modelled in simulation and the payload's split ring on KVM.
// Leaves out: multiqueue, mergeable rx buffers, link status.
import type { QEMUBH } from '../../main-loop/aio.ts';
import { QEMUClockType, type QEMUTimer } from '../../main-loop/timer.ts';
import type { DeviceHandle } from '../handle.ts';
import type { Co, Notifier } from '../../platform.ts';
import type { NetSpec } from '../../scenario/scenario.ts';
import { sample } from '../../util/dist.ts';
import { SimVirtQueue, type VirtQueue } from '../virtqueue.ts';
import type { Packet } from './packet.ts';
import type { TapBackend } from './backend.ts';

export class VirtIONet {
  readonly txVq: VirtQueue<Packet>;
  /** The ioeventfd the guest's tx kick writes. */
  readonly hostNotifier: Notifier;
  /** QEMU: q->tx_bh (tx=bh) or q->tx_timer (tx=timer); the other is null. */
  readonly txBh: QEMUBH | null;
  readonly txTimer: QEMUTimer | null;
  /** QEMU: VirtIONetQueue.tx_waiting */
  txWaiting = false;
  tap!: TapBackend;
  sent = 0;
  received = 0;
  private readonly rng;

  constructor(
    private readonly h: DeviceHandle,
    readonly spec: NetSpec,
    /** The guest kernel's receive path (runs in guest mode on spec.vcpu). */
    private readonly guestRx: (pkt: Packet) => void,
    /** The tx queue (default: the modelled one). */
    txVq?: VirtQueue<Packet>,
  ) {
    this.rng = h.random('device');
    this.txVq = txVq ?? new SimVirtQueue(`${spec.name}.tx`, 256);
    this.hostNotifier = h.notifier('ioeventfd');
    // QEMU: virtio_net_add_queue: a tx timer with tx=timer, else the tx bottom half.
    const timer = spec.tx === 'timer';
    this.txBh = timer ? null : h.bhNew(`virtio-net.${spec.name}.tx-bh`, () => this.txBhFn());
    this.txTimer = timer ? h.timerNew(QEMUClockType.VIRTUAL, `virtio-net.${spec.name}.tx-timer`, () => this.txTimerFn()) : null;
  }

  /** Guest side of a kick: the ioeventfd fires; no exit to userspace. */
  kick(pkt: Packet): void {
    pkt.flow = this.h.flowStart(`${this.spec.name}.kick`);
    this.hostNotifier.set();
  }

  /**
   * QEMU: virtio_pci_host_notifier_read (hw/virtio/virtio-pci.c, 2012) ->
   * virtio_net_handle_tx_bh (hw/net/virtio-net.c), under the BQL.
   */
  *hostNotifierRead(): Co<void> {
    const h = this.h;
    h.assertBqlHeld(`virtio-net.${this.spec.name}.host-notifier-read`);
    this.hostNotifier.read();
    const slow = h.activeFault('handler-cost');
    yield* h.cpu(sample(slow?.latency ?? this.spec.host_notifier_cost, this.rng));
    if (this.txTimer) {
      yield* this.handleTxTimer(this.txTimer);
      return;
    }
    if (this.txWaiting) return;
    this.txWaiting = true;
    // "This happens when device was stopped but VcpuThread wasn't."
    if (!h.running) return;
    this.txVq.setNotification(false);
    this.txBh!.schedule();
  }

  /** QEMU: virtio_net_handle_tx_timer (hw/net/virtio-net.c): arm the timer, or flush now if it is armed. */
  private *handleTxTimer(timer: QEMUTimer): Co<void> {
    // "This happens when device was stopped but VCPU wasn't."
    if (!this.h.running) {
      this.txWaiting = true;
      return;
    }
    if (this.txWaiting) {
      // "We already have queued packets, immediately flush"
      timer.del();
      yield* this.txTimerFn();
      return;
    }
    timer.mod(this.h.virtualNowNs() + this.spec.x_txtimer_ns);
    this.txWaiting = true;
    this.txVq.setNotification(false);
  }

  /** QEMU: virtio_net_tx_timer (hw/net/virtio-net.c), a QEMU_CLOCK_VIRTUAL timer on the main loop. */
  private *txTimerFn(): Co<void> {
    const timer = this.txTimer!;
    // Re-enabled notifications, the timer flushes what came in meanwhile before it re-arms.
    yield* this.txFlushRearm(`virtio-net.${this.spec.name}.tx-timer`, () => timer.mod(this.h.virtualNowNs() + this.spec.x_txtimer_ns), true);
  }

  /** QEMU: virtio_net_tx_bh (hw/net/virtio-net.c) */
  private *txBhFn(): Co<void> {
    const bh = this.txBh!;
    yield* this.txFlushRearm(`virtio-net.${this.spec.name}.tx-bh`, () => bh.schedule(), false);
  }

  /**
   * What virtio_net_tx_bh and virtio_net_tx_timer share: flush up to tx_burst;
   * a full burst re-arms at once (more may be waiting); else notifications go
   * back on and, if the guest added more meanwhile (the timer: and a second
   * flush sent some), they go off again and it re-arms. Stopped: tx_waiting
   * stays set and the resume re-arms.
   */
  private *txFlushRearm(site: string, rearm: () => void, flushAgain: boolean): Co<void> {
    this.h.assertBqlHeld(site);
    if (!this.h.running) return;
    this.txWaiting = false;
    const sent = yield* this.flushTx();
    if (sent >= this.spec.tx_burst) {
      rearm();
      this.txWaiting = true;
      return;
    }
    this.txVq.setNotification(true);
    if (this.txVq.empty) return;
    if (flushAgain && (yield* this.flushTx()) === 0) return;
    this.txVq.setNotification(false);
    rearm();
    this.txWaiting = true;
  }

  /** QEMU: virtio_net_flush_tx: up to tx_burst packets to the tap. */
  private *flushTx(): Co<number> {
    yield* this.h.cpu(sample(this.spec.tx_bh_cost, this.rng));
    let n = 0;
    for (; n < this.spec.tx_burst; n++) {
      const pkt = this.txVq.pop();
      if (!pkt) break;
      if (pkt.flow) this.h.flowEnd(`${this.spec.name}.kick`, pkt.flow);
      this.txVq.push(pkt);
      this.sent++;
      this.tap.transmit(pkt);
    }
    return n;
  }

  /** QEMU: virtio_net_receive (hw/net/virtio-net.c), from the tap read handler. */
  *receive(pkt: Packet): Co<void> {
    yield* this.h.cpu(sample(this.spec.rx_cost, this.rng));
    this.received++;
    this.guestRx(pkt);
  }

  /** QEMU: virtio_net_set_status on a VM state change: the tx flush waits while stopped. */
  vmStateChange(running: boolean): void {
    this.tap.readPoll(running);
    if (this.txTimer) {
      if (running && this.txWaiting) this.txTimer.mod(this.h.virtualNowNs() + this.spec.x_txtimer_ns);
      if (!running) this.txTimer.del();
      return;
    }
    if (running && this.txWaiting) this.txBh!.schedule();
    if (!running) this.txBh!.cancel();
  }
}
