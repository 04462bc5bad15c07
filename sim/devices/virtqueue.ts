// A virtqueue as the device logic sees it: the driver adds elements and kicks
// (unless the device has suppressed notifications), the device pops elements
// and pushes them back as used, then notifies the driver. In the simulator the
// elements are modelled requests (SimVirtQueue); on KVM the same interface sits
// on a split ring in guest memory (real/split-ring.ts). Device logic above it
// is one piece of code.
// Leaves out: descriptor chains, indirect descriptors, event-idx.
import { invariant } from '../invariant.ts';

/** The device's side of a virtqueue, and the driver's side where a model plays the driver. */
export interface VirtQueue<T> {
  readonly name: string;
  readonly size: number;
  /** VRING_USED_F_NO_NOTIFY clear: the driver kicks after adding. */
  readonly notificationEnabled: boolean;
  /** Elements made available and returned as used so far. */
  readonly added: number;
  readonly used: number;
  /** QEMU: virtqueue_pop (hw/virtio/virtio.c) */
  pop(): T | undefined;
  /** QEMU: virtio_queue_empty (hw/virtio/virtio.c) */
  readonly empty: boolean;
  readonly length: number;
  /** QEMU: virtio_queue_set_notification (hw/virtio/virtio.c) */
  setNotification(enable: boolean): void;
  /** QEMU: virtqueue_push (hw/virtio/virtio.c): elem goes back as used, len bytes written into it. */
  push(elem: T, len?: number): void;
  /** Driver side: adds an element; true when the driver should kick. */
  add(elem: T): boolean;
  /** Driver side: no room for another element. */
  readonly full: boolean;
}

/** The simulator's virtqueue: a FIFO of modelled elements. */
export class SimVirtQueue<T> implements VirtQueue<T> {
  private readonly avail: T[] = [];
  notificationEnabled = true;
  added = 0;
  used = 0;
  /** QEMU: VirtQueue.inuse: popped and not yet pushed back. */
  private inuse = 0;

  constructor(readonly name: string, readonly size: number) {
    invariant(Number.isSafeInteger(size) && size > 0, `virtqueue ${name}: size ${size} is not a positive integer`);
  }

  add(elem: T): boolean {
    if (this.avail.length >= this.size) return false;
    this.avail.push(elem);
    this.added++;
    return this.notificationEnabled;
  }

  get full(): boolean {
    return this.avail.length >= this.size;
  }

  pop(): T | undefined {
    const elem = this.avail.shift();
    if (elem !== undefined) this.inuse++;
    return elem;
  }

  get empty(): boolean {
    return this.avail.length === 0;
  }

  get length(): number {
    return this.avail.length;
  }

  setNotification(enable: boolean): void {
    this.notificationEnabled = enable;
  }

  push(_elem: T, _len = 0): void {
    // QEMU: virtqueue_push after virtqueue_pop; every used element was popped first.
    invariant(this.inuse > 0, `virtqueue ${this.name}: push of an element that was never popped`);
    this.inuse--;
    this.used++;
  }
}
