// The host on the other side of the tap device: it pings the guest at an
// interval (ICMP echo with a timeout, like ping -i/-W), measures round-trip
// time and loss, and can send background traffic the guest only consumes.
import type { Platform } from '../../platform.ts';
import { Histogram } from '../../instrument/histogram.ts';
import type { NetSpec } from '../../scenario/scenario.ts';
import type { Packet } from './packet.ts';

export class Peer {
  sent = 0;
  answered = 0;
  late = 0;
  readonly rtt = new Histogram();
  /** (send time, rtt) of every reply, late ones included, for plots. */
  readonly samples: { t_ns: number; rtt_ns: number }[] = [];
  private readonly outstanding = new Map<number, number>();
  private nextId = 1;

  constructor(
    private readonly platform: Platform,
    private readonly spec: NetSpec,
    /** Puts a packet on the wire towards the guest's tap. */
    private readonly toTap: (pkt: Packet) => void,
  ) {}

  start(): void {
    const p = this.platform;
    const { ping_interval_ns: interval, background_rate: bg } = this.spec.peer;
    if (interval > 0) {
      const ping = () => {
        const seq = this.sent++;
        const now = p.nowNs();
        this.outstanding.set(seq, now);
        this.toTap({ id: this.nextId++, kind: 'echo-request', seq, sentNs: now, flow: 0 });
        p.callAfter(interval, ping);
      };
      p.callAfter(interval, ping);
    }
    if (bg > 0) {
      const rng = p.random(`${this.spec.name}.peer.background`);
      const send = () => {
        this.toTap({ id: this.nextId++, kind: 'data', seq: 0, sentNs: p.nowNs(), flow: 0 });
        p.callAfter(Math.max(1, Math.round(rng.exponential(1e9 / bg))), send);
      };
      p.callAfter(Math.max(1, Math.round(rng.exponential(1e9 / bg))), send);
    }
  }

  /** A packet from the guest arrives. */
  receive(pkt: Packet): void {
    if (pkt.kind !== 'echo-reply') return;
    const sentAt = this.outstanding.get(pkt.seq);
    if (sentAt === undefined) return;
    this.outstanding.delete(pkt.seq);
    const rtt = this.platform.nowNs() - sentAt;
    this.samples.push({ t_ns: sentAt, rtt_ns: rtt });
    if (rtt <= this.spec.peer.ping_timeout_ns) {
      this.answered++;
      this.rtt.record(rtt);
    } else {
      this.late++;
    }
  }

  /** Echo requests without an answer within the timeout, as of nowNs. */
  lost(nowNs: number): number {
    let waitingInTime = 0;
    for (const sentAt of this.outstanding.values()) {
      if (nowNs - sentAt < this.spec.peer.ping_timeout_ns) waitingInTime++;
    }
    return this.sent - this.answered - waitingInTime;
  }
}
