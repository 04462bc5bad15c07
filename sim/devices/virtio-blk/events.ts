// virtio-blk's event glue: makes the device's handle, backend, device and
// guest driver, and hooks them to the event loops: the host notifier's read
// handler on the main loop (qemu_set_fd_handler, as QEMU 1.x did for
// virtio-pci ioeventfds), or, with iothread=, the dataplane in that
// IOThread, started and stopped by a VM change-state handler; the
// dma-restart VM change-state handler, the guest driver's I/O activity on
// its vCPU, and, with werror=stop, management's `cont` when an io-error
// fault window ends.
import type { Machine } from '../../machine.ts';
import type { GuestPort } from '../../guest/guest.ts';
import type { FaultSchedule } from '../../faults.ts';
import type { BlockLayer } from '../../block/block-layer.ts';
import type { BlockBackend } from '../../block/backend.ts';
import type { BlkSpec } from '../../scenario/scenario.ts';
import { DeviceHandle } from '../handle.ts';
import { blockBackendFor } from './backend.ts';
import { VirtIOBlock } from './device.ts';
import { VirtIOBlockDriver } from './driver.ts';
import { VirtIOBlockDataPlane } from './dataplane.ts';

export interface BlkDevice {
  readonly dev: VirtIOBlock;
  readonly backend: BlockBackend;
  readonly driver: VirtIOBlockDriver;
  /** The dataplane, with iothread=. */
  readonly dataplane: VirtIOBlockDataPlane | null;
}

/** QEMU: virtio_blk_device_realize (hw/block/virtio-blk.c) and the -drive behind it. */
export function realizeVirtIOBlock(spec: BlkSpec, machine: Machine, guest: GuestPort, block: BlockLayer, faults: FaultSchedule): BlkDevice {
  const p = machine.platform;
  const backend = blockBackendFor(spec, p, machine.inst, machine.mainLoop.aioContext, block, faults);
  const h = new DeviceHandle(spec.name, machine, guest, faults);
  const dev = new VirtIOBlock(h, spec, backend);
  const driver = new VirtIOBlockDriver(guest, dev, spec, p.random(`${spec.name}.guest-driver`));
  dev.onComplete = (req, error) => driver.complete(req, error);
  let dataplane: VirtIOBlockDataPlane | null = null;
  if (spec.iothread !== null) {
    // QEMU: virtio_blk_data_plane_create; virtio_init's virtio_vmstate_change starts and stops it.
    const dp = new VirtIOBlockDataPlane(h, dev, h.iothread(spec.iothread), block, backend);
    dataplane = dp;
    dev.dataplane = dp;
    h.addChangeHandler(`${spec.name}.dataplane`, (running) => (running ? dp.start() : dp.stop()));
    if (h.running) dp.start(true);
  } else {
    h.setFdHandler(dev.hostNotifier, `virtio-blk.${spec.name}.host-notifier-read`, () => dev.handleOutput());
  }
  h.addChangeHandler(`${spec.name}.dma-restart`, (running) => dev.dmaRestartCb(running));
  if (spec.io.rate > 0) guest.addActivity(spec.vcpu, driver);
  if (spec.on_error === 'stop') {
    for (const f of h.ownFaults()) {
      if (f.kind === 'io-error') h.callAfter(f.at_ns + f.for_ns, () => h.requestVmStart());
    }
  }
  return { dev, backend, driver, dataplane };
}
