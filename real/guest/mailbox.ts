/**
 * Typed access to a vCPU's mailbox in guest memory (a DataView over the mmap'd
 * guest RAM, so reads see the guest's latest stores without a copy), and the
 * parameter block for each workload. vCPU n's mailbox is MAILBOX_STRIDE bytes at
 * MAILBOX_ADDR + n * MAILBOX_STRIDE.
 * Leaves out: synchronisation; fields are single aligned loads/stores, which x86
 * keeps atomic, and the host reads progress counters while the guest runs.
 */
import {
  MAILBOX_ADDR, MAILBOX_FIELDS, MAILBOX_STRIDE, VCPUS_MAX, MAILBOX_MAGIC, MAILBOX_VERSION, NotifyKind, Pattern, Workload,
  type MailboxField, type PatternName, type WorkloadName,
} from './layout.ts';

export interface WorkloadParams {
  workload: WorkloadName;
  pattern?: PatternName;
  rangeStart?: number;
  rangePages?: number;
  hotPages?: number;
  hotPercent?: number;
  pagesPerTick?: number;
  tickTsc?: number;
  seed?: number;
  maxTicks?: number;
  heartbeatEvery?: number;
  virtio?: {
    size: number;
    notify: 'pio' | 'mmio';
    notifyAddr: number;
    queueIndex?: number;
    requests: number;
    outLen: number;
    inLen?: number;
    batch?: number;
  };
}

export class Mailbox {
  private readonly view: DataView;

  constructor(memory: ArrayBuffer, guestPhysBase = 0, readonly cpu = 0) {
    if (!Number.isInteger(cpu) || cpu < 0 || cpu >= VCPUS_MAX) throw new RangeError(`mailbox of vCPU ${cpu}: at most ${VCPUS_MAX} vCPUs`);
    this.view = new DataView(memory, MAILBOX_ADDR + cpu * MAILBOX_STRIDE - guestPhysBase, MAILBOX_STRIDE);
  }

  get(field: MailboxField): number {
    const [off, width] = MAILBOX_FIELDS[field];
    if (width === 4) return this.view.getUint32(off, true);
    const v = this.view.getBigUint64(off, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`mailbox ${field} exceeds 2^53`);
    return Number(v);
  }

  set(field: MailboxField, value: number): void {
    const [off, width] = MAILBOX_FIELDS[field];
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`mailbox ${field}: ${value} is not a u${width * 8}`);
    if (width === 4) this.view.setUint32(off, value, true);
    else this.view.setBigUint64(off, BigInt(value), true);
  }

  /** Clears this vCPU's mailbox and writes magic, version and the workload parameters. */
  write(p: WorkloadParams): void {
    new Uint8Array(this.view.buffer, this.view.byteOffset, MAILBOX_STRIDE).fill(0);
    this.set('magic', MAILBOX_MAGIC);
    this.set('version', MAILBOX_VERSION);
    this.set('workload', Workload[p.workload]);
    this.set('pattern', Pattern[p.pattern ?? 'uniform']);
    this.set('range_start', p.rangeStart ?? 0);
    this.set('range_pages', p.rangePages ?? 0);
    this.set('hot_pages', p.hotPages ?? 0);
    this.set('hot_percent', p.hotPercent ?? 0);
    this.set('pages_per_tick', p.pagesPerTick ?? 0);
    this.set('tick_tsc', p.tickTsc ?? 0);
    this.set('seed', p.seed ?? 0);
    this.set('max_ticks', p.maxTicks ?? 0);
    this.set('heartbeat_every', p.heartbeatEvery ?? 0);
    const v = p.virtio;
    if (v) {
      this.set('vq_size', v.size);
      this.set('vq_notify_kind', NotifyKind[v.notify]);
      this.set('vq_notify_addr', v.notifyAddr);
      this.set('vq_queue_index', v.queueIndex ?? 0);
      this.set('vq_requests', v.requests);
      this.set('vq_out_len', v.outLen);
      this.set('vq_in_len', v.inLen ?? 0);
      this.set('vq_batch', v.batch ?? 1);
    }
  }
}
