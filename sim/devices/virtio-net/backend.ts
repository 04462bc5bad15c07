// virtio-net's backend, the tap device: packets from the wire queue on the tap fd; its read handler
// (QEMU: tap_send, an iohandler on the main loop) hands them to the device
// while the device can receive, and the read handler is removed while it
// cannot (the VM is stopped), so queued packets wait, as
// qemu_flush_queued_packets does on resume. Packets the device sends go out on
// the wire to the peer after the wire latency.
import type { DeviceHandle } from '../handle.ts';
import type { Co, Notifier } from '../../platform.ts';
import type { NetSpec } from '../../scenario/scenario.ts';
import type { Packet } from './packet.ts';

export class TapBackend {
  readonly fd: Notifier;
  readonly handlerName: string;
  readonly queue: Packet[] = [];
  delivered = 0;
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

  /** QEMU: tap_read_poll (net/tap.c): add or remove the read handler. */
  readPoll(enable: boolean): void {
    if (enable === this.polling) return;
    this.polling = enable;
    this.h.setFdHandler(this.fd, this.handlerName, enable ? () => this.tapSend() : null);
    if (enable && this.queue.length > 0) this.fd.set();
  }

  /** A packet arrives from the wire. */
  arrive(pkt: Packet): void {
    this.queue.push(pkt);
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
    while (this.polling && this.queue.length > 0) {
      const pkt = this.queue.shift()!;
      this.delivered++;
      yield* this.receive(pkt);
    }
  }
}
