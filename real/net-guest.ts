// The guest's half of virtio-net on KVM: the payload. An echo request the
// device receives is handed to the guest through its vCPU's mailbox
// (ping_req = sequence + 1); the payload answers it on the tx virtqueue with an
// echo-reply request and a kick, so the reply travels the device's tx path
// (host notifier -> tx bottom half -> tap -> peer), as the modelled guest
// driver's does. The payload holds one ping at a time: further requests wait
// here until it acknowledged the last one. Without a queue it answers with a
// PORT_PONG exit instead (answered()).
// Leaves out: an rx ring (received packets do not go through guest memory),
// interrupts (the payload polls its mailbox once per tick).
import type { NetGuestDriver } from '../sim/devices/virtio-net/driver.ts';
import type { Packet } from '../sim/devices/virtio-net/packet.ts';
import type { Descriptor } from './split-ring.ts';
import { VQ_REPLY } from './guest/layout.ts';
import type { Mailbox } from './guest/mailbox.ts';
import { MAILBOX_ADDR, MAILBOX_STRIDE } from './guest/layout.ts';

export class PayloadNetDriver implements NetGuestDriver {
  replies = 0;
  consumed = 0;
  /** Echo requests waiting for the payload to take them (sequence numbers). */
  readonly waiting: number[] = [];

  constructor(
    private readonly mailbox: Mailbox,
    /** The host wrote guest memory (for migration's dirty log). */
    private readonly markDirty: (addr: number, len: number) => void = () => {},
  ) {}

  /** The device delivered a packet (virtio_net_receive). */
  rx(pkt: Packet): void {
    this.consumed++;
    if (pkt.kind !== 'echo-request') return;
    this.waiting.push(pkt.seq);
    this.offer();
  }

  /** The payload answered ping value `value` (an echo reply popped from the ring, or PORT_PONG). */
  answered(value: number): number {
    this.replies++;
    this.offer();
    return value - 1;
  }

  /** Hands the next waiting request to the payload once it acknowledged the previous one. */
  offer(): void {
    if (this.waiting.length === 0) return;
    if (this.mailbox.get('ping_req') !== this.mailbox.get('ping_ack')) return;
    this.mailbox.set('ping_req', this.waiting.shift()! + 1);
    this.markDirty(MAILBOX_ADDR + this.mailbox.cpu * MAILBOX_STRIDE, MAILBOX_STRIDE);
  }

  /** Makes the device's Packet from a chain the payload posted on the tx ring. */
  decode(chain: readonly Descriptor[], bytes: DataView, nowNs: number): Packet {
    const out = chain[0]!;
    const number = out.len >= 8 ? bytes.getUint32(out.addr, true) : 0;
    const lenWord = out.len >= 8 ? bytes.getUint32(out.addr + 4, true) : 0;
    if ((lenWord & VQ_REPLY) !== 0 && out.len >= 16) {
      const seq = this.answered(Number(bytes.getBigUint64(out.addr + 8, true)));
      return { id: number, kind: 'echo-reply', seq, sentNs: nowNs, flow: 0 };
    }
    return { id: number, kind: 'data', seq: 0, sentNs: nowNs, flow: 0 };
  }

  save(): { waiting: number[]; replies: number; consumed: number } {
    return { waiting: [...this.waiting], replies: this.replies, consumed: this.consumed };
  }

  load(s: { waiting: number[]; replies: number; consumed: number }): void {
    this.waiting.splice(0, this.waiting.length, ...s.waiting);
    this.replies = s.replies;
    this.consumed = s.consumed;
  }
}
