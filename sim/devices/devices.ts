// The devices of a scenario: the fault schedule, the block layer, and each
// device realized by its own folder's event glue (virtio-blk/events.ts,
// virtio-net/events.ts). Every device folder has the same shape: device.ts
// (the device logic), backend.ts (what it talks to on the host), driver.ts
// (the guest's half), events.ts (the glue to the event loops, and the
// DeviceHandle the device gets instead of the Machine) and vmstate.ts (its
// migration state). On KVM a DeviceGlue supplies what lives in the guest
// there: the tx ring in guest memory and the guest's half of virtio-net.
import type { Machine } from '../machine.ts';
import type { GuestPort } from '../guest/guest.ts';
import type { DevicesSpec, FaultSpec } from '../scenario/scenario.ts';
import { FaultSchedule } from '../faults.ts';
import { BlockLayer } from '../block/block-layer.ts';
import { realizeVirtIOBlock, type BlkDevice } from './virtio-blk/events.ts';
import { realizeVirtIONet, type NetDevice, type NetGlue } from './virtio-net/events.ts';
import { saveVirtIOBlock, type VirtIOBlockState } from './virtio-blk/vmstate.ts';
import { saveVirtIONet, type VirtIONetState } from './virtio-net/vmstate.ts';

export type { BlkDevice } from './virtio-blk/events.ts';
export type { NetDevice } from './virtio-net/events.ts';

/** What a backend puts in place of the modelled guest-side parts (defaults: the models). */
export type DeviceGlue = NetGlue;

/** Every device's migration state, in device order. */
export interface DevicesState {
  readonly blk: readonly VirtIOBlockState[];
  readonly net: readonly VirtIONetState[];
}

export class Devices {
  readonly faults: FaultSchedule;
  readonly block: BlockLayer;
  readonly net: NetDevice[] = [];
  readonly blk: BlkDevice[] = [];

  constructor(machine: Machine, guest: GuestPort, spec: DevicesSpec, faults: readonly FaultSpec[], glue: DeviceGlue = {}) {
    this.faults = new FaultSchedule(faults);
    const profile = machine.qemu.profile;
    this.block = new BlockLayer(machine.platform, machine.bql, machine.mainLoop.aioContext, machine.inst,
      profile.flush_skips_clean, machine.aioWait, profile.block_locking);
    machine.block = this.block;
    for (const b of spec.blk) this.blk.push(realizeVirtIOBlock(b, machine, guest, this.block, this.faults));
    for (const n of spec.net) this.net.push(realizeVirtIONet(n, machine, guest, this.faults, glue));
  }

  /** QEMU: the device part of qemu_savevm_state_complete_precopy; every device's vmstate. */
  saveState(): DevicesState {
    return { blk: this.blk.map((d) => saveVirtIOBlock(d.dev)), net: this.net.map((d) => saveVirtIONet(d.dev)) };
  }
}
