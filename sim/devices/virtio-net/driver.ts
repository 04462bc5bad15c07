// The guest's half of virtio-net: the guest kernel takes received packets in
// its rx interrupt, on its vCPU, and answers an echo request by queueing the
// reply on the tx ring and kicking the host notifier (an ioeventfd: no exit
// to userspace). It answers only while its vCPU runs guest code.
import type { GuestPort } from '../../guest/guest.ts';
import type { NetSpec } from '../../scenario/scenario.ts';
import type { VirtIONet } from './device.ts';
import type { Packet } from './packet.ts';

/** The guest's half of a virtio-net device, as the device and the reports see it. */
export interface NetGuestDriver {
  /** Echo replies sent and packets consumed so far. */
  readonly replies: number;
  readonly consumed: number;
  /** The device delivered a packet. */
  rx(pkt: Packet): void;
}

export class VirtIONetDriver implements NetGuestDriver {
  replies = 0;
  consumed = 0;

  constructor(
    private readonly guest: GuestPort,
    private readonly dev: () => VirtIONet,
    private readonly spec: NetSpec,
  ) {}

  /** The device delivered a packet: the guest handles it in its rx interrupt. */
  rx(pkt: Packet): void {
    this.guest.raiseIrq(this.spec.vcpu, {
      name: `virtio-net.${this.spec.name}.rx-irq`,
      costNs: this.guest.spec.ping_reply_cost_ns,
      run: () => {
        this.consumed++;
        if (pkt.kind !== 'echo-request') return null;
        const dev = this.dev();
        const reply: Packet = { id: pkt.id, kind: 'echo-reply', seq: pkt.seq, sentNs: pkt.sentNs, flow: 0 };
        this.replies++;
        if (dev.txVq.add(reply)) dev.kick(reply);
        return null;
      },
    });
  }
}
