// A virtqueue as the device logic sees it: the driver adds elements and kicks
// (unless the device has suppressed notifications), the device pops elements
// and pushes them back as used, then notifies the driver. In the simulator the
// elements are modelled requests; on KVM the same interface sits on a split
// ring in guest memory. Device logic above it is one piece of code.
// Leaves out: descriptor chains, indirect descriptors, event-idx.

export class VirtQueue<T> {
  private readonly avail: T[] = [];
  /** VRING_USED_F_NO_NOTIFY clear: the driver kicks after adding. */
  notificationEnabled = true;
  added = 0;
  used = 0;

  constructor(readonly name: string, readonly size: number) {}

  /** Driver side: adds an element; true when the driver should kick. */
  add(elem: T): boolean {
    if (this.avail.length >= this.size) return false;
    this.avail.push(elem);
    this.added++;
    return this.notificationEnabled;
  }

  /** Driver side: room for another element. */
  get full(): boolean {
    return this.avail.length >= this.size;
  }

  /** QEMU: virtqueue_pop (hw/virtio/virtio.c) */
  pop(): T | undefined {
    return this.avail.shift();
  }

  /** QEMU: virtio_queue_empty (hw/virtio/virtio.c) */
  get empty(): boolean {
    return this.avail.length === 0;
  }

  get length(): number {
    return this.avail.length;
  }

  /** QEMU: virtio_queue_set_notification (hw/virtio/virtio.c) */
  setNotification(enable: boolean): void {
    this.notificationEnabled = enable;
  }

  /** QEMU: virtqueue_push (hw/virtio/virtio.c) */
  push(): void {
    this.used++;
  }
}
