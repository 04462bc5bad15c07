// The devices of a scenario and their glue to the event loops: host notifiers
// registered on the main loop (qemu_set_fd_handler, as QEMU 1.x did for
// virtio-pci ioeventfds), block completions in qemu_aio_context, VM
// change-state handlers, the guest halves of the drivers, the external peer,
// and the fault schedule. For io-error faults with werror=stop, management
// issues `cont` when the fault window ends. On KVM a DeviceGlue supplies what
// lives in the guest there: the tx ring in guest memory and the guest's half
// of virtio-net (the payload); the device logic is the same.
import type { Machine } from '../machine.ts';
import type { GuestPort } from '../guest/guest.ts';
import type { DevicesSpec, FaultSpec, NetSpec } from '../scenario/scenario.ts';
import { FaultSchedule } from '../faults.ts';
import { BlockBackend } from '../block/backend.ts';
import { BlockLayer } from '../block/block-layer.ts';
import { VirtioBlk } from './virtio-blk/device.ts';
import { VirtioBlkDriver } from './virtio-blk/driver.ts';
import { VirtIONet } from './virtio-net/device.ts';
import { VirtioNetDriver, type NetGuestDriver } from './virtio-net/driver.ts';
import { TapBackend } from './virtio-net/tap.ts';
import { Peer } from './virtio-net/peer.ts';
import type { Packet } from './virtio-net/packet.ts';
import type { VirtQueue } from './virtqueue.ts';

export interface NetDevice {
  readonly dev: VirtIONet;
  readonly tap: TapBackend;
  readonly peer: Peer;
  readonly driver: NetGuestDriver;
}

export interface BlkDevice {
  readonly dev: VirtioBlk;
  readonly backend: BlockBackend;
  readonly driver: VirtioBlkDriver;
}

/** What a backend puts in place of the modelled guest-side parts (defaults: the models). */
export interface DeviceGlue {
  /** The tx virtqueue of a virtio-net device. */
  netTxQueue?(spec: NetSpec): VirtQueue<Packet>;
  /** The guest's half of a virtio-net device. */
  netGuest?(spec: NetSpec, dev: () => VirtIONet): NetGuestDriver;
}

export class Devices {
  readonly faults: FaultSchedule;
  readonly block: BlockLayer;
  readonly net: NetDevice[] = [];
  readonly blk: BlkDevice[] = [];

  constructor(machine: Machine, guest: GuestPort, spec: DevicesSpec, faults: readonly FaultSpec[], glue: DeviceGlue = {}) {
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
      const driver: NetGuestDriver = glue.netGuest?.(n, () => d) ?? new VirtioNetDriver(guest, () => d, n);
      const d: VirtIONet = new VirtIONet(machine, n, this.faults, (pkt) => driver.rx(pkt), glue.netTxQueue?.(n));
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
