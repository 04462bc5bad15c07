// The guest: RAM, what each vCPU runs, the guest kernel's interrupt work and
// guest userspace. While a vCPU is in guest mode its workloads dirty pages at
// their rate and pattern, its activities (PIO/MMIO exits, device kicks, block
// requests) fire at their rates, and interrupts raised by devices are served
// (a ping reply needs the vCPU to run). Guest userspace makes progress only
// in stretches of uninterrupted run time of at least a quantum: one unit per
// quantum; a stall longer than the tolerance restarts the stretch. On a
// postcopy destination a workload's write to a page still missing faults:
// the vCPU leaves guest mode and waits for the page (a userfault exit), then
// the write lands.
// With the KVM dirty ring, a vCPU whose ring reaches its soft limit leaves
// guest mode with KVM_EXIT_DIRTY_RING_FULL; its time slices are cut short so
// that it cannot write more pages than its ring has room for, and the exit
// comes right after the write that filled it.
// A vCPU that only runs and dirties memory is advanced in bulk: one wait until
// the next moment anything can observe it (its next activity, an interrupt, a
// kick, the throttle's timeslice, at most guest.slice), its writes for the
// whole stretch drawn at once from its streams; a dirty-log sync in between
// (migration_bitmap_sync) first has it write what it ran so far, and a
// throttle that starts kicks it, as cpu_throttle_set does.
// GuestPort is what devices, migration and reports see of a guest; the KVM
// guest (real/guest-os.ts) provides it too.
// Leaves out: guest scheduling between tasks, interrupt coalescing, HLT.
import type { Co, Notifier, Platform } from '../platform.ts';
import type { Machine } from '../machine.ts';
import type { GuestSpec, VmSpec, WorkloadSpec } from '../scenario/scenario.ts';
import { sample } from '../util/dist.ts';
import type { GuestCode, VcpuThread, VcpuExit } from '../vcpu.ts';
import { GuestRam, type HeldWrite } from './ram.ts';
import { testBit } from '../util/bitmap.ts';
import type { GuestMemory } from './memory.ts';
import { Dirtier, WRITES_PER_EVENT } from './dirtier.ts';
import { KvmDirtyRing } from './dirty-ring.ts';

/** Interrupt work for the guest kernel: runs on a vCPU when it is in guest mode. */
export interface GuestWork {
  readonly name: string;
  readonly costNs: number;
  /** Runs once the cost is spent; may return an exit to userspace. */
  run(): VcpuExit | null;
}

/** Something the guest does at a rate while a vCPU runs (an exit, a kick, a request). */
export interface GuestActivity {
  readonly name: string;
  /** Next gap in ns of guest run time. */
  nextGapNs(): number;
  fire(): VcpuExit | null;
}

/** QEMU: CPU_THROTTLE_TIMESLICE_NS (system/cpu-throttle.c) */
export const CPU_THROTTLE_TIMESLICE_NS = 10_000_000;

export class UserspaceTracker {
  progress = 0;
  gapMaxNs = 0;
  gapMaxAtNs = 0;
  private lastProgressNs = 0;
  private readonly segmentNs: number[];
  /** Progress samples (time, total) for plots. */
  readonly samples: { t_ns: number; progress: number }[] = [];

  constructor(vcpus: number, readonly quantumNs: number, readonly toleranceNs: number) {
    this.segmentNs = new Array<number>(vcpus).fill(0);
  }

  entered(vcpu: number, stalledNs: number): void {
    if (stalledNs > this.toleranceNs) this.segmentNs[vcpu] = 0;
  }

  /** vcpu ran guest code for ns, ending at endNs. */
  ran(vcpu: number, ns: number, endNs: number): void {
    const before = this.segmentNs[vcpu]!;
    const after = before + ns;
    this.segmentNs[vcpu] = after;
    const q = this.quantumNs;
    for (let k = Math.floor(before / q) + 1; k * q <= after; k++) {
      this.mark(endNs - (after - k * q));
    }
  }

  /** Closes the open gap at the end of a run. */
  finish(nowNs: number): void {
    this.noteGap(nowNs);
  }

  private mark(t: number): void {
    this.noteGap(t);
    this.progress++;
    if (t > this.lastProgressNs) this.lastProgressNs = t;
    this.samples.push({ t_ns: t, progress: this.progress });
  }

  private noteGap(t: number): void {
    const gap = t - this.lastProgressNs;
    if (gap > this.gapMaxNs) {
      this.gapMaxNs = gap;
      this.gapMaxAtNs = this.lastProgressNs;
    }
  }
}

/** What devices, migration and reports use of a guest, in simulation or on KVM. */
export interface GuestPort {
  readonly machine: Machine;
  readonly spec: GuestSpec;
  readonly ram: GuestMemory;
  readonly userspace: UserspaceTracker;
  /** A device raises an interrupt: the guest kernel does work on vcpu when it runs. */
  raiseIrq(vcpu: number, work: GuestWork): void;
  /** The guest does something at a rate while vcpu runs (a driver issuing requests). */
  addActivity(vcpu: number, activity: GuestActivity): void;
  /** Sets the auto-converge throttle (percent of time a vCPU sleeps). */
  setThrottle(percent: number): void;
  /** QEMU's side of the KVM dirty ring, when the VM has one (vm.dirty_ring_size). */
  readonly kvmDirtyRing: KvmDirtyRing | null;
}

export class Guest implements GuestPort {
  readonly ram: GuestRam;
  readonly userspace: UserspaceTracker;
  readonly code: VcpuGuest[] = [];
  readonly kvmDirtyRing: KvmDirtyRing | null = null;

  constructor(readonly machine: Machine, vm: VmSpec, readonly spec: GuestSpec) {
    this.ram = new GuestRam(vm.memory_bytes, vm.page_size, {
      vcpus: vm.vcpus, dirtyRingSize: vm.dirty_ring_size, manualProtect: vm.manual_dirty_log_protect,
    });
    this.ram.onLogSync = () => {
      for (const c of this.code) c.catchUp();
    };
    this.ram.onLogSwitch = (on) => {
      for (const c of this.code) c.loggingSwitched(on);
    };
    // The firmware's pages come first, then the populated share (both from page 0 up: the model has no holes).
    this.ram.populate(Math.round(this.ram.pages * vm.populated) + Math.ceil(vm.firmware_bytes / vm.page_size));
    this.userspace = new UserspaceTracker(vm.vcpus, spec.userspace.quantum_ns, spec.userspace.tolerance_ns);
    for (let i = 0; i < vm.vcpus; i++) {
      const code = new VcpuGuest(this, i);
      this.code.push(code);
      machine.addVcpu(code);
    }
    if (this.ram.dirtyRing) {
      this.kvmDirtyRing = new KvmDirtyRing(machine, this.ram.dirtyLog, this.ram.dirtyRing);
      this.kvmDirtyRing.startReaper();
    }
    for (const w of spec.workloads) this.addWorkload(w);
  }

  /** A device raises an interrupt: the guest kernel does work on vcpu when it runs. */
  raiseIrq(vcpu: number, work: GuestWork): void {
    this.code[vcpu]!.raise(work);
  }

  addActivity(vcpu: number, activity: GuestActivity): void {
    this.code[vcpu]!.addActivity(activity);
  }

  /** Sets the auto-converge throttle (percent of time a vCPU sleeps). */
  setThrottle(percent: number): void {
    for (const c of this.code) c.setThrottle(percent);
  }

  private addWorkload(w: WorkloadSpec): void {
    const p = this.machine.platform;
    for (const v of w.vcpus) {
      const code = this.code[v]!;
      if (w.dirty) code.dirtiers.push(new Dirtier(this.ram, w.dirty, p.random(`vcpu${v}.dirty`), this.machine.qemu.host.guest_dirty_rate_max, v));
      if (w.exits) {
        const exits = w.exits;
        const rng = p.random(`vcpu${v}.exits`);
        const name = `vcpu${v}.${exits.kind}-exit`;
        const exit: VcpuExit = {
          name,
          kind: exits.kind,
          needsBql: true,
          handle: () => exitCost(p, this.machine, name, sample(exits.cost, rng)),
        };
        code.addActivity({ name, nextGapNs: () => Math.round(rng.exponential(1e9 / exits.rate)), fire: () => exit });
      }
    }
  }
}

/** An exit's handler: its cost under the BQL (asserted as the handler starts, which is when the vCPU thread asks for it). */
function exitCost(p: Platform, m: Machine, name: string, ns: number): Co<void> {
  m.bql.assertHeld(name);
  return p.cpu(ns);
}

interface Scheduled {
  readonly activity: GuestActivity;
  dueNs: number;
}

/** What one vCPU runs in guest mode. */
export class VcpuGuest implements GuestCode {
  readonly dirtiers: Dirtier[] = [];
  readonly irq: Notifier;
  throttlePct = 0;
  private readonly pending: GuestWork[] = [];
  /** Writes to missing pages this vCPU made and has not waited for yet. */
  private held: HeldWrite[] = [];
  /** Interrupt work a ring-full exit cut short: its cost left to run. */
  private current: { readonly work: GuestWork; leftNs: number } | null = null;
  private readonly activities: Scheduled[] = [];
  private runSinceThrottleNs = 0;
  /** Start of the guest run whose writes are not done yet, or -1 outside guest code. */
  private runFromNs = -1;
  private vcpu: VcpuThread | null = null;
  /** What an interruptible run waits for: a kick or an interrupt. */
  private wakers: readonly Notifier[] = [];

  constructor(private readonly guest: Guest, readonly index: number) {
    const p = guest.machine.platform;
    this.irq = p.createNotifier(`vcpu${index}.irq`);
  }

  raise(work: GuestWork): void {
    this.pending.push(work);
    this.irq.set();
  }

  addActivity(activity: GuestActivity): void {
    this.activities.push({ activity, dueNs: this.guest.machine.platform.nowNs() + activity.nextGapNs() });
  }

  entered(vcpu: VcpuThread, _atNs: number, stalledNs: number): void {
    this.guest.userspace.entered(vcpu.index, stalledNs);
  }

  /** Sets the auto-converge throttle; one that starts kicks the vCPU out of a bulk run to sleep. */
  setThrottle(percent: number): void {
    const starts = this.throttlePct === 0 && percent > 0;
    this.throttlePct = percent;
    if (starts && this.runFromNs >= 0) this.vcpu?.kick.set();
  }

  /**
   * The slot's logging is about to switch: the writes so far land before it.
   * A vCPU's bulk run was bounded without a dirty ring in force; once logging
   * starts with rings it would write past its ring's room (KVM would have
   * exited on the full ring), so it is kicked out to bound the rest of its
   * run by the ring, as a throttle that starts kicks it to sleep.
   */
  loggingSwitched(on: boolean): void {
    this.catchUp();
    if (on && this.guest.ram.dirtyRing !== null && this.runFromNs >= 0) this.vcpu?.kick.set();
  }

  /** Does the writes (and accounting) of the guest code run since runFromNs: at the end of a run, and when the dirty log is read mid-run. */
  catchUp(): void {
    if (this.runFromNs < 0) return;
    const end = this.guest.machine.platform.nowNs();
    const ran = end - this.runFromNs;
    this.runFromNs = end;
    if (ran > 0) {
      const ram = this.guest.ram;
      ram.gate?.refresh();
      let written = 0;
      for (const d of this.dirtiers) written += d.advance(ran);
      if (written > 0) this.guest.machine.platform.charge(written / WRITES_PER_EVENT);
      if (ram.gate !== null) {
        const held = ram.takeHeld();
        if (held.length > 0) this.held.push(...held);
      }
      this.guest.userspace.ran(this.index, ran, end);
      this.runSinceThrottleNs += ran;
    }
  }

  *run(vcpu: VcpuThread): Co<VcpuExit | null> {
    const p = this.guest.machine.platform;
    if (this.vcpu !== vcpu) {
      this.vcpu = vcpu;
      this.wakers = [vcpu.kick, this.irq];
    }
    const sliceNs = this.guest.spec.slice_ns;
    const ram = this.guest.ram;
    for (;;) {
      // A write to a missing page (postcopy): nothing else runs until it is there.
      if (this.held.length > 0) return this.userfaultExit(vcpu);
      if (ram.ringActive && ram.dirtyRing!.softFull(this.index)) return this.ringFull(vcpu);
      // Interrupts first: the guest kernel serves them before anything else.
      if (!this.current) {
        const work = this.pending.shift();
        if (work) {
          this.irq.read();
          if (this.pending.length > 0) this.irq.set();
          this.current = { work, leftNs: work.costNs };
        }
      }
      if (this.current) {
        const cur = this.current;
        while (cur.leftNs > 0) {
          const piece = ram.ringActive ? Math.min(cur.leftNs, this.ringRoomNs()) : cur.leftNs;
          yield* this.runGuest(piece);
          cur.leftNs -= piece;
          if (ram.ringActive && ram.dirtyRing!.softFull(this.index)) return this.ringFull(vcpu);
        }
        this.current = null;
        const exit = cur.work.run();
        if (exit) return exit;
        continue;
      }
      if (this.throttlePct > 0 && this.runSinceThrottleNs >= CPU_THROTTLE_TIMESLICE_NS) {
        this.runSinceThrottleNs = 0;
        return this.throttleExit(vcpu);
      }
      const now = p.nowNs();
      const next = this.nextActivity();
      if (next && next.dueNs <= now) {
        next.dueNs = now + next.activity.nextGapNs();
        const exit = next.activity.fire();
        if (exit) return exit;
        continue;
      }
      let d = sliceNs;
      if (next) d = Math.min(d, next.dueNs - now);
      if (this.throttlePct > 0) d = Math.min(d, CPU_THROTTLE_TIMESLICE_NS - this.runSinceThrottleNs);
      if (ram.ringActive) d = Math.min(d, this.ringRoomNs());
      const ready = yield* this.runGuest(Math.max(1, d), true);
      if (ram.ringActive && ram.dirtyRing!.softFull(this.index)) return this.ringFull(vcpu);
      if (ready.includes(vcpu.kick)) return null;
    }
  }

  /**
   * How long the vCPU may run before its dirty ring could reach its soft
   * limit: its room shared among its workloads, each bounded by the time it
   * takes to write its share (at least 1 ns, so the vCPU always moves: the
   * overshoot stays within the ring's reserved entries).
   */
  private ringRoomNs(): number {
    const ring = this.guest.ram.dirtyRing!;
    const room = ring.softLimit - ring.used(this.index);
    if (this.dirtiers.length === 0) return Infinity;
    const share = Math.floor(Math.max(0, room) / this.dirtiers.length);
    let ns = Infinity;
    for (const d of this.dirtiers) ns = Math.min(ns, d.nsForWrites(share));
    return Math.max(1, ns);
  }

  /** KVM_EXIT_DIRTY_RING_FULL: the ring reached its soft limit. */
  private ringFull(vcpu: VcpuThread): VcpuExit {
    return this.guest.kvmDirtyRing!.ringFullExit(vcpu);
  }

  /** Guest code runs for ns (interruptible by a kick or an interrupt when asked), its writes done in bulk at the end. */
  private *runGuest(ns: number, interruptible = false): Co<readonly Notifier[]> {
    const p = this.guest.machine.platform;
    this.runFromNs = p.nowNs();
    const ready = interruptible ? yield* p.wait(this.wakers, ns) : (yield* p.cpu(ns), []);
    this.ranTillNow();
    return ready;
  }

  /** The guest code that ran since runFromNs has ended: its writes and accounting are done. */
  private ranTillNow(): void {
    this.catchUp();
    this.runFromNs = -1;
  }

  /**
   * QEMU postcopy's userfault: the vCPU touched pages the destination has
   * not got; for each in turn it waits (the fault thread asks the source for
   * it), then its writes land. A kick while the VM must stop interrupts the
   * wait; the writes not landed are held again for the next run.
   */
  private userfaultExit(vcpu: VcpuThread): VcpuExit {
    const held = this.held;
    this.held = [];
    const ram = this.guest.ram;
    const machine = this.guest.machine;
    return {
      name: 'userfault', kind: 'userfault', needsBql: false,
      handle: function* (this: VcpuGuest) {
        for (let i = 0; i < held.length; i++) {
          const w = held[i]!;
          for (;;) {
            const gate = ram.gate;
            if (gate === null) break;
            gate.refresh();
            if (!testBit(gate.missing, w.page)) break;
            if (yield* gate.fault(this.index, w.page, vcpu.kick)) break;
            if (!machine.vcpuCanRun()) {
              this.held = held.slice(i).concat(this.held);
              return;
            }
            vcpu.kick.read();
          }
          ram.land(w.page, w.writes, w.vcpu);
        }
      }.bind(this),
    };
  }

  private nextActivity(): Scheduled | undefined {
    let best: Scheduled | undefined;
    for (const s of this.activities) if (!best || s.dueNs < best.dueNs) best = s;
    return best;
  }

  /**
   * QEMU: cpu_throttle_thread (migration/cpu-throttle.c): the vCPU sleeps
   * outside guest mode for its share of the timeslice, and stops sleeping as
   * soon as the VM is told to stop (`while (sleeptime_ns > 0 && !cpu->stop)`),
   * so pause_all_vcpus does not wait for the rest of a 99% throttle's second.
   */
  private throttleExit(vcpu: VcpuThread): VcpuExit {
    const pct = this.throttlePct / 100;
    const sleepNs = Math.round((pct / (1 - pct)) * CPU_THROTTLE_TIMESLICE_NS);
    for (const d of this.dirtiers) d.throttled(sleepNs);
    const machine = this.guest.machine;
    const p = machine.platform;
    return {
      name: 'cpu_throttle_thread', kind: 'throttle', needsBql: false,
      handle: function* () {
        const end = p.nowNs() + sleepNs;
        for (;;) {
          const left = end - p.nowNs();
          if (left <= 0 || !machine.vcpuCanRun()) return;
          const ready = yield* p.wait([vcpu.kick], left);
          if (ready.length === 0 || !machine.vcpuCanRun()) return;
          // A kick for another reason: sleep on.
          vcpu.kick.read();
        }
      },
    };
  }
}
