// A virtio-blk request as it travels from the guest driver through the
// virtqueue to the block backend and back.
export interface VirtIOBlockReq {
  readonly id: number;
  readonly op: 'read' | 'write' | 'flush';
  readonly block: number;
  readonly blocks: number;
  /** Version each written block gets (one per block). */
  readonly versions: number[];
  readonly submittedNs: number;
  /** Flow-arrow id from the kick to the handler that served it. */
  flow: number;
}
