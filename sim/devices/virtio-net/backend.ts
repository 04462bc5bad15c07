// virtio-net's backend, the tap device: packets from the wire queue on the tap fd; its read handler
// (QEMU: tap_send, an iohandler on the main loop) hands them to the device
// while the device can receive, and the read handler is removed while it
// cannot (the VM is stopped), so queued packets wait, as
// qemu_flush_queued_packets does on resume. With vhost the tap belongs to the
// vhost worker (VHOST_NET_SET_BACKEND): QEMU's read handler stays off and the
// worker takes the packets itself. Packets the device sends go out on the
// wire to the peer after the wire latency.
import type { DeviceHandle } from '../handle.ts';
import type { Co, Notifier } from '../../platform.ts';
import type { NetSpec } from '../../scenario/scenario.ts';
import type { Packet } from './packet.ts';

/** Linux's default txqueuelen of a tap device. */
export const TAP_QUEUE_LEN = 1000;

export class TapBackend {
  readonly fd: Notifier;
  readonly handlerName: string;
  /** Packets waiting on the tap fd, from `head` on (a queue with O(1) removal). */
  private readonly waiting: Packet[] = [];
  private head = 0;
  delivered = 0;
  /** Packets the tap dropped because its queue was full. */
  dropped = 0;
  private polling = false;

  constructor(
    private readonly h: DeviceHandle,
    private readonly spec: NetSpec,
    /** Device receive path; runs under the BQL in the tap read handler. */
    private readonly receive: (pkt: Packet) => Co<void>,
    /** Where sent packets go (the peer). */
    private readonly wire: (pkt: Packet) => void,
  ) {
    this.fd = h.notifier('tap-fd');
    this.handlerName = `virtio-net.${spec.name}.tap-read`;
  }

  /** Packets waiting to be read. */
  get queued(): number {
    return this.waiting.length - this.head;
  }

  /** QEMU: tap_read_poll (net/tap.c): add or remove the read handler. */
  readPoll(enable: boolean): void {
    if (enable === this.polling) return;
    this.polling = enable;
    this.h.setFdHandler(this.fd, this.handlerName, enable ? () => this.tapSend() : null);
    if (enable && this.queued > 0) this.fd.set();
  }

  /** The vhost worker reads the tap itself (tun_recvmsg): the next waiting packet, if any. */
  take(): Packet | undefined {
    if (this.queued === 0) return undefined;
    const pkt = this.waiting[this.head++]!;
    this.compact();
    this.delivered++;
    return pkt;
  }

  private compact(): void {
    if (this.head > 1024 && this.head * 2 > this.waiting.length) {
      this.waiting.splice(0, this.head);
      this.head = 0;
    }
  }

  /** A packet arrives from the wire. */
  arrive(pkt: Packet): void {
    // Linux: a tap's queue holds txqueuelen packets; more are dropped.
    if (this.queued >= TAP_QUEUE_LEN) {
      this.dropped++;
      return;
    }
    this.waiting.push(pkt);
    this.fd.set();
  }

  /** The device transmits: the packet reaches the peer after the wire latency. */
  transmit(pkt: Packet): void {
    this.h.callAfter(this.spec.peer.wire_latency_ns, () => this.wire(pkt));
  }

  /** QEMU: tap_send (net/tap.c), under the BQL. */
  private *tapSend(): Co<void> {
    this.h.assertBqlHeld(this.handlerName);
    this.fd.read();
    while (this.polling && this.queued > 0) {
      const pkt = this.waiting[this.head++]!;
      this.compact();
      this.delivered++;
      yield* this.receive(pkt);
    }
  }
}
