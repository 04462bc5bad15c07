// The device side of a virtio 1.0 split virtqueue in guest memory, behind the
// VirtQueue interface the device logic uses (sim/devices/virtqueue.ts): pop()
// reads avail->idx, takes the next head, walks its descriptor chain and
// decodes it into the device's element type; push() writes the used element
// and publishes used->idx; setNotification() sets or clears
// VRING_USED_F_NO_NOTIFY in used->flags, which the guest's driver reads before
// it kicks. The index and flag stores are atomic (sequentially consistent), so
// the guest on another CPU sees the element before the index, and every store
// is reported to the dirty log (markDirty). The device's
// private state (last_avail_idx and the shadow used index) is what migration
// carries for the queue.
// Leaves out: indirect descriptors, event-idx, packed rings; a malformed chain
// marks the queue broken (QEMU: virtio_error) instead of resetting the device.
import type { VirtQueue } from '../sim/devices/virtqueue.ts';
import { VRING_DESC_F_NEXT, VRING_DESC_F_WRITE, VRING_USED_F_NO_NOTIFY } from './guest/layout.ts';

/** One descriptor of a chain. */
export interface Descriptor {
  readonly addr: number;
  readonly len: number;
  readonly write: boolean;
}

/** Where the ring's three parts live in guest memory. */
export interface RingLayout {
  readonly desc: number;
  readonly avail: number;
  readonly used: number;
}

/** The queue state migration carries (QEMU: vmstate of VirtQueue: last_avail_idx, used_idx). */
export interface SplitRingState {
  readonly lastAvail: number;
  readonly usedIdx: number;
  readonly notification: boolean;
}

interface InFlight {
  readonly head: number;
  readonly writable: number;
}

export class SplitRing<T extends object> implements VirtQueue<T> {
  added = 0;
  used = 0;
  /** Set when the guest put a malformed chain on the ring; the queue then stays empty. */
  broken: string | null = null;
  private lastAvail = 0;
  private usedIdx = 0;
  private readonly view: DataView;
  private readonly availIdx: Uint16Array;
  private readonly usedHead: Uint16Array;
  private readonly inflight = new WeakMap<T, InFlight>();

  constructor(
    readonly name: string,
    private readonly memory: ArrayBuffer,
    readonly size: number,
    private readonly layout: RingLayout,
    /** Makes the device's element from a chain (called once per pop). */
    private readonly decode: (chain: readonly Descriptor[], bytes: DataView) => T,
    /** The device wrote guest memory (for migration's dirty log). */
    private readonly markDirty: (addr: number, len: number) => void = () => {},
  ) {
    if (size <= 0 || size > 32768 || (size & (size - 1)) !== 0) throw new RangeError(`${name}: queue size ${size} is not a power of two`);
    this.view = new DataView(memory);
    this.availIdx = new Uint16Array(memory, layout.avail, 2); // [flags, idx]
    this.usedHead = new Uint16Array(memory, layout.used, 2); // [flags, idx]
    this.usedIdx = Atomics.load(this.usedHead, 1);
  }

  get notificationEnabled(): boolean {
    return (Atomics.load(this.usedHead, 0) & VRING_USED_F_NO_NOTIFY) === 0;
  }

  /** Available chains not popped yet. */
  get length(): number {
    if (this.broken) return 0;
    return (Atomics.load(this.availIdx, 1) - this.lastAvail) & 0xffff;
  }

  get empty(): boolean {
    return this.length === 0;
  }

  pop(): T | undefined {
    if (this.length === 0) return undefined;
    const v = this.view;
    const head = v.getUint16(this.layout.avail + 4 + 2 * (this.lastAvail % this.size), true);
    const chain: Descriptor[] = [];
    let writable = 0;
    let d = head;
    for (;;) {
      if (d >= this.size || chain.length >= this.size) return this.fail(`descriptor ${d} out of the ring or a loop`);
      const at = this.layout.desc + 16 * d;
      const addr = Number(v.getBigUint64(at, true));
      const len = v.getUint32(at + 8, true);
      const flags = v.getUint16(at + 12, true);
      if (addr + len > this.memory.byteLength) return this.fail(`descriptor ${d} points outside guest memory`);
      const write = (flags & VRING_DESC_F_WRITE) !== 0;
      if (write) writable += len;
      chain.push({ addr, len, write });
      if ((flags & VRING_DESC_F_NEXT) === 0) break;
      d = v.getUint16(at + 14, true);
    }
    this.lastAvail = (this.lastAvail + 1) & 0xffff;
    this.added++;
    const elem = this.decode(chain, v);
    this.inflight.set(elem, { head, writable });
    return elem;
  }

  push(elem: T, len = 0): void {
    const f = this.inflight.get(elem);
    if (!f) throw new Error(`${this.name}: pushing an element that was not popped from this ring`);
    this.inflight.delete(elem);
    const at = this.layout.used + 4 + 8 * (this.usedIdx % this.size);
    this.view.setUint32(at, f.head, true);
    this.view.setUint32(at + 4, Math.min(len, f.writable), true);
    this.markDirty(at, 8);
    this.usedIdx = (this.usedIdx + 1) & 0xffff;
    Atomics.store(this.usedHead, 1, this.usedIdx); // publish after the element
    this.markDirty(this.layout.used + 2, 2);
    this.used++;
  }

  setNotification(enable: boolean): void {
    const flags = Atomics.load(this.usedHead, 0);
    Atomics.store(this.usedHead, 0, enable ? flags & ~VRING_USED_F_NO_NOTIFY : flags | VRING_USED_F_NO_NOTIFY);
    this.markDirty(this.layout.used, 2);
  }

  /** The guest's driver adds to the ring itself. */
  add(_elem: T): boolean {
    throw new Error(`${this.name}: the driver side of a split ring is the guest's`);
  }

  get full(): boolean {
    return true;
  }

  save(): SplitRingState {
    return { lastAvail: this.lastAvail, usedIdx: this.usedIdx, notification: this.notificationEnabled };
  }

  /** Loads the state of the source's queue (the ring itself came over as RAM). */
  load(s: SplitRingState): void {
    this.lastAvail = s.lastAvail & 0xffff;
    this.usedIdx = s.usedIdx & 0xffff;
  }

  private fail(why: string): undefined {
    this.broken = `${this.name}: ${why}`;
    return undefined;
  }
}
