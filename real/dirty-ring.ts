// KVM's dirty rings on the real backend (sim/guest/dirty-ring.ts's
// KvmDirtyRings over the addon): each vCPU's ring is mapped from its fd, its
// entries are collected natively into the dirty log's bitmap (acquire on the
// flags, release on the collected mark, as QEMU's kvm_dirty_ring_reap_one),
// and KVM_RESET_DIRTY_RINGS write-protects their pages again. QEMU's side
// (reaping under the BQL, kvm-reaper, the flush, ring-full exits) is the
// model's own code. KVM must stop a vCPU before its ring is full: a
// collection that finds the whole ring written means the vCPU ran past its
// soft limit and entries may have been overwritten (KVM warns in
// kvm_dirty_ring_push), so the run ends there rather than lose pages. (This
// machine kind's kvm_pvm exits up to ~60 entries past the soft limit and
// overflows 1024- and 2048-entry rings; 4096 entries hold.)
// Leaves out: several memory slots (the guest's RAM is slot 0).
import type { KvmDirtyRings } from '../sim/guest/dirty-ring.ts';
import { KVM_DIRTY_RING_RSVD_ENTRIES } from '../sim/guest/dirty-ring.ts';
import type { KvmVcpu, Vm } from './kvm/index.ts';
import { RealError } from './errors.ts';

export class KvmHostDirtyRings implements KvmDirtyRings {
  readonly softLimit: number;
  /** Entries collected since the last KVM_RESET_DIRTY_RINGS, per vCPU: still in the ring for KVM. */
  private readonly collected: number[];

  constructor(private readonly vm: Vm, private readonly vcpus: readonly KvmVcpu[], readonly size: number, private readonly slot = 0) {
    // Hosts with PML reserve 512 more entries; the exit then comes earlier, and still comes.
    this.softLimit = size - KVM_DIRTY_RING_RSVD_ENTRIES;
    this.collected = vcpus.map(() => 0);
  }

  used(vcpu: number): number {
    return this.vcpus[vcpu]!.dirtyRingPending() + this.collected[vcpu]!;
  }

  collect(vcpu: number, log: Uint32Array): number {
    const n = this.vcpus[vcpu]!.collectDirtyRing(log, this.slot);
    if (n + this.collected[vcpu]! >= this.size) {
      throw new RealError('unavailable', `unavailable: vcpu${vcpu}'s dirty ring of ${this.size} entries filled up: this host's KVM ran it past ` +
        'KVM_EXIT_DIRTY_RING_FULL\'s soft limit, and entries may be lost; use a larger vm.dirty_ring_size');
    }
    this.collected[vcpu] = this.collected[vcpu]! + n;
    return n;
  }

  reset(): number {
    const n = this.vm.resetDirtyRings();
    this.collected.fill(0);
    return n;
  }
}
