// virtio-blk's backend: a BlockBackend of the block layer (sim/block/backend.ts,
// QEMU's block/block-backend.c over the image) made from the device's spec and
// the fault schedule, and listed in the block layer, so that bdrv_drain_all
// and bdrv_flush_all reach it. The device submits to it and gets completions
// in qemu_aio_context, or in its IOThread's context while its dataplane runs.
import type { Platform } from '../../platform.ts';
import type { Instruments } from '../../instrument/instrument.ts';
import type { AioContext } from '../../main-loop/aio.ts';
import type { FaultSchedule } from '../../faults.ts';
import type { BlkSpec } from '../../scenario/scenario.ts';
import { BlockBackend } from '../../block/backend.ts';
import type { BlockLayer } from '../../block/block-layer.ts';

/** QEMU: blk_new + blk_insert_bs, as -drive does for the device's drive. */
export function blockBackendFor(spec: BlkSpec, platform: Platform, inst: Instruments, ctx: AioContext, block: BlockLayer, faults: FaultSchedule): BlockBackend {
  const backend = new BlockBackend(spec.name, platform, inst, ctx, spec, faults);
  block.add(backend);
  return backend;
}
