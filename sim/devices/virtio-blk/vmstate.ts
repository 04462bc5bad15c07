// virtio-blk's migration state, as QEMU's virtio_blk_save_device /
// virtio_blk_load_device (hw/block/virtio-blk.c) move it: the requests that
// failed with werror=stop and wait in s->rq to be resubmitted by the
// dma-restart bottom half on the destination. Requests still in flight at the
// backend cannot be migrated: completion drains them first (bdrv_drain_all),
// so save asserts there are none, and load asserts the state fits the device.
import { InvariantError } from '../../invariant.ts';
import type { VirtIOBlock } from './device.ts';
import type { VirtIOBlockReq } from './request.ts';

export interface VirtIOBlockState {
  readonly name: string;
  readonly queue_depth: number;
  /** s->rq, in order. */
  readonly rq: readonly VirtIOBlockReq[];
}

/** QEMU: virtio_blk_save_device; the backend must have been drained. */
export function saveVirtIOBlock(dev: VirtIOBlock): VirtIOBlockState {
  if (dev.backend.inFlight !== 0) {
    throw new InvariantError('model', `virtio-blk ${dev.spec.name}: device state saved with ${dev.backend.inFlight} requests in flight (not drained)`);
  }
  return { name: dev.spec.name, queue_depth: dev.spec.queue_depth, rq: dev.rq.map((r) => ({ ...r, versions: [...r.versions] })) };
}

/** QEMU: virtio_blk_load_device; the state must come from a device of the same configuration. */
export function loadVirtIOBlock(dev: VirtIOBlock, state: VirtIOBlockState): void {
  if (state.name !== dev.spec.name || state.queue_depth !== dev.spec.queue_depth) {
    throw new InvariantError('model', `virtio-blk ${dev.spec.name}: device state of ${state.name} (queue depth ${state.queue_depth}) does not fit`);
  }
  dev.rq = state.rq.map((r) => ({ ...r, versions: [...r.versions] }));
}
