// virtio-net's migration state, as QEMU's vmstate_virtio_net_device
// (hw/net/virtio-net.c) moves it, as far as the model has it: tx_waiting (a tx
// flush pending when the VM stopped, which the destination resumes) and the
// counters of the tx queue. Packets queued on the tap are the host's, not the
// guest's, and are not migrated.
import { InvariantError } from '../../invariant.ts';
import type { VirtIONet } from './device.ts';

export interface VirtIONetState {
  readonly name: string;
  readonly tx_burst: number;
  readonly tx_waiting: boolean;
}

/** QEMU: the save half of vmstate_virtio_net_device. */
export function saveVirtIONet(dev: VirtIONet): VirtIONetState {
  return { name: dev.spec.name, tx_burst: dev.spec.tx_burst, tx_waiting: dev.txWaiting };
}

/** QEMU: the load half; the state must come from a device of the same configuration. */
export function loadVirtIONet(dev: VirtIONet, state: VirtIONetState): void {
  if (state.name !== dev.spec.name || state.tx_burst !== dev.spec.tx_burst) {
    throw new InvariantError('model', `virtio-net ${dev.spec.name}: device state of ${state.name} (tx_burst ${state.tx_burst}) does not fit`);
  }
  dev.txWaiting = state.tx_waiting;
}
