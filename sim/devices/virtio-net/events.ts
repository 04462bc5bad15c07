// virtio-net's event glue: makes the device's handle, the device, its tap
// backend, the guest driver (or the backend's own, on KVM) and the external
// peer, and hooks them to the event loops: the host notifier's read handler
// on the main loop, the VM change-state handler (which also turns the tap's
// read polling off while stopped), and the peer's pings. With vhost the
// main loop gets neither handler: the vhost worker takes the host notifier
// and the tap, and the VM change-state handler starts and stops it
// (virtio_net_vhost_status).
import type { Machine } from '../../machine.ts';
import type { GuestPort } from '../../guest/guest.ts';
import type { FaultSchedule } from '../../faults.ts';
import type { NetSpec } from '../../scenario/scenario.ts';
import type { VirtQueue } from '../virtqueue.ts';
import { DeviceHandle } from '../handle.ts';
import { TapBackend } from './backend.ts';
import { VirtIONet } from './device.ts';
import { VirtIONetDriver, type NetGuestDriver } from './driver.ts';
import type { Packet } from './packet.ts';
import { Peer } from './peer.ts';
import { VhostNet } from './vhost.ts';
import { GuestRam } from '../../guest/ram.ts';
import { InvariantError } from '../../invariant.ts';

export interface NetDevice {
  readonly dev: VirtIONet;
  readonly tap: TapBackend;
  readonly peer: Peer;
  readonly driver: NetGuestDriver;
  /** The vhost-net worker, with vhost: true. */
  readonly vhost: VhostNet | null;
}

/** What a backend puts in place of the modelled guest-side parts (defaults: the models). */
export interface NetGlue {
  /** The tx virtqueue of a virtio-net device. */
  netTxQueue?(spec: NetSpec): VirtQueue<Packet>;
  /** The guest's half of a virtio-net device. */
  netGuest?(spec: NetSpec, dev: () => VirtIONet): NetGuestDriver;
}

/** QEMU: virtio_net_device_realize (hw/net/virtio-net.c) with its -netdev tap. */
export function realizeVirtIONet(spec: NetSpec, machine: Machine, guest: GuestPort, faults: FaultSchedule, glue: NetGlue = {}): NetDevice {
  const h = new DeviceHandle(spec.name, machine, guest, faults);
  const driver: NetGuestDriver = glue.netGuest?.(spec, () => dev) ?? new VirtIONetDriver(guest, () => dev, spec);
  const dev: VirtIONet = new VirtIONet(h, spec, (pkt) => driver.rx(pkt), glue.netTxQueue?.(spec));
  const peer = new Peer(machine.platform, spec, (pkt) => tap.arrive(pkt));
  const tap: TapBackend = new TapBackend(h, spec, (pkt) => dev.receive(pkt), (pkt) => peer.receive(pkt));
  dev.tap = tap;
  let vhost: VhostNet | null = null;
  if (spec.vhost) {
    // The worker copies into guest memory: the model's guest RAM (content versions) is what it writes.
    if (!(guest.ram instanceof GuestRam)) throw new InvariantError('model', `virtio-net ${spec.name}: vhost needs the simulation's guest memory`);
    const v = new VhostNet(h, dev, tap, guest.ram);
    vhost = v;
    v.spawn();
    // QEMU: virtio_net_set_status -> virtio_net_vhost_status on every VM state change.
    h.addChangeHandler(`${spec.name}.vhost`, (running) => (running ? v.start() : v.stop()));
    if (h.running) v.start(true);
  } else {
    h.setFdHandler(dev.hostNotifier, `virtio-net.${spec.name}.host-notifier-read`, () => dev.hostNotifierRead());
    h.addChangeHandler(`${spec.name}.vm-state-change`, (running) => dev.vmStateChange(running));
    tap.readPoll(h.running);
  }
  peer.start();
  return { dev, tap, peer, driver, vhost };
}
