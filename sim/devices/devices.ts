// The devices of a scenario and their glue to the event loops: host notifiers
// registered on the main loop (qemu_set_fd_handler, as QEMU 1.x did for
// virtio-pci ioeventfds), block completions in qemu_aio_context, VM
// change-state handlers, the guest halves of the drivers, the external peer,
// and the fault schedule. For io-error faults with werror=stop, management
// issues `cont` when the fault window ends.
import type { Machine } from '../machine.ts';
import type { Guest } from '../guest/guest.ts';
import type { DevicesSpec, FaultSpec } from '../scenario.ts';
import { FaultSchedule } from '../faults.ts';
import { BlockBackend } from '../block/backend.ts';
import { BlockLayer } from '../block/block-layer.ts';
import { VirtioBlk } from './virtio-blk/device.ts';
import { VirtioBlkDriver } from './virtio-blk/driver.ts';
import { VirtIONet } from './virtio-net/device.ts';
import { VirtioNetDriver } from './virtio-net/driver.ts';
import { TapBackend } from './virtio-net/tap.ts';
import { Peer } from './virtio-net/peer.ts';

export interface NetDevice {
  readonly dev: VirtIONet;
  readonly tap: TapBackend;
  readonly peer: Peer;
  readonly driver: VirtioNetDriver;
}

export interface BlkDevice {
  readonly dev: VirtioBlk;
  readonly backend: BlockBackend;
  readonly driver: VirtioBlkDriver;
}

export class Devices {
  readonly faults: FaultSchedule;
  readonly block: BlockLayer;
  readonly net: NetDevice[] = [];
  readonly blk: BlkDevice[] = [];

  constructor(machine: Machine, guest: Guest, spec: DevicesSpec, faults: readonly FaultSpec[]) {
    const p = machine.platform;
    this.faults = new FaultSchedule(faults);
    const ctx = machine.mainLoop.aioContext;
    this.block = new BlockLayer(p, machine.bql, ctx, machine.inst);
    machine.block = this.block;

    for (const b of spec.blk) {
      const backend = new BlockBackend(b.name, p, machine.inst, ctx, b, this.faults);
      this.block.backends.push(backend);
      const dev = new VirtioBlk(machine, guest, b, backend);
      const driver = new VirtioBlkDriver(guest, dev, b, p.random(`${b.name}.guest-driver`));
      dev.driver = driver;
      machine.mainLoop.setFdHandler(dev.hostNotifier, `virtio-blk.${b.name}.host-notifier-read`, () => dev.handleOutput());
      machine.runstate.addChangeHandler(`${b.name}.dma-restart`, (running) => dev.dmaRestartCb(running));
      if (b.io.rate > 0) guest.addActivity(b.vcpu, driver);
      if (b.on_error === 'stop') {
        for (const f of this.faults.forDevice(b.name)) {
          if (f.kind === 'io-error') p.callAfter(f.at_ns + f.for_ns, () => machine.requestVmStart());
        }
      }
      this.blk.push({ dev, backend, driver });
    }

    for (const n of spec.net) {
      const driver: VirtioNetDriver = new VirtioNetDriver(guest, () => d, n);
      const d: VirtIONet = new VirtIONet(machine, n, this.faults, (pkt) => driver.rx(pkt));
      const peer = new Peer(p, n, (pkt) => tap.arrive(pkt));
      const tap: TapBackend = new TapBackend(machine, n, (pkt) => d.receive(pkt), (pkt) => peer.receive(pkt));
      d.tap = tap;
      machine.mainLoop.setFdHandler(d.hostNotifier, `virtio-net.${n.name}.host-notifier-read`, () => d.hostNotifierRead());
      machine.runstate.addChangeHandler(`${n.name}.vm-state-change`, (running) => d.vmStateChange(running));
      tap.readPoll(machine.runstate.running);
      peer.start();
      this.net.push({ dev: d, tap, peer, driver });
    }
  }
}
