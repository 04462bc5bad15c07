// What runs in guest mode on KVM: a GuestCode (sim/vcpu.ts) over a native vCPU
// thread in KVM_RUN, so the model's VcpuThread thread (kvm_cpu_exec's loop: the BQL
// around every exit, parking while the VM is stopped, stall accounting) drives
// a real vCPU. run() starts or resumes the native thread and waits on the
// vCPU's exit eventfd and its kick: a PIO or MMIO exit becomes a VcpuExit,
// dispatched by address to the handler a device registered on the IoBus
// (under the BQL, by the model's vCPU thread) and then completed; until then
// the guest does not run. Completing re-enters KVM_RUN with immediate_exit set
// (as QEMU does when an exit request is pending), which finishes the access
// and parks the thread: the guest runs again only when the model's thread
// re-enters run(), and a vCPU the VM stop parks is out of KVM_RUN with its
// registers consistent. A kick (vm_stop's pause_all_vcpus) pauses the native
// thread before run() returns. HLT (the
// payload's end) parks the vCPU until the next kick. Auto-converge throttling
// pauses the native thread for its share of each 10 ms slice. A full dirty
// ring (KVM_EXIT_DIRTY_RING_FULL) is the model's ring-full exit: the rings are
// reaped under the BQL, dirty-limit may sleep, then the exit is answered.
// Leaves out: interrupts and the in-kernel irqchip, MSRs, halt polling.
import type { Co, Notifier } from '../sim/platform.ts';
import { CPU_THROTTLE_TIMESLICE_NS } from '../sim/guest/guest.ts';
import type { GuestCode, VcpuThread, VcpuExit } from '../sim/vcpu.ts';
import type { KvmDirtyRing } from '../sim/guest/dirty-ring.ts';
import { exitError, type IoExit, type MmioExit, type KvmVcpu, type VcpuExit as NativeExit } from './kvm/index.ts';
import type { RealPlatform } from './platform.ts';

/** A PIO or MMIO access the guest made, as a handler sees it. */
export type IoAccess = IoExit | MmioExit;

/** A handler for an address: runs under the BQL; returns the value of a read. */
export interface IoHandler {
  /** The handler's name in reports, the same on every vCPU or per vCPU. */
  readonly name: string | ((vcpu: number) => string);
  handle(access: IoAccess, vcpu: number): Co<number | undefined>;
}

/** Exits routed by address to the handlers devices registered (kvmtool's ioport/mmio buses). */
export class IoBus {
  private readonly pio = new Map<number, IoHandler>();
  private readonly mmio = new Map<number, IoHandler>();

  registerPio(port: number, h: IoHandler): void {
    this.pio.set(port, h);
  }

  registerMmio(addr: number, h: IoHandler): void {
    this.mmio.set(addr, h);
  }

  lookup(a: IoAccess): IoHandler | undefined {
    return a.reason === 'io' ? this.pio.get(a.port) : this.mmio.get(a.addr);
  }
}

/** Where a vCPU's time goes, for the guest's accounting (userspace progress). */
export interface VcpuAccounting {
  ran(vcpu: number, ns: number, endNs: number): void;
  entered(vcpu: number, stalledNs: number): void;
}

/** How long pause() waits for the native thread to leave KVM_RUN. */
const PAUSE_TIMEOUT_MS = 10_000;

export class KvmVcpuCode implements GuestCode {
  readonly exitNotifier: Notifier;
  /** The payload halted (HLT exit pending, unanswered). */
  halted = false;
  throttlePct = 0;
  exits = 0;
  /** QEMU's side of the VM's dirty ring, when it has one. */
  dirtyRing: KvmDirtyRing | null = null;
  private sliceUsedNs = 0;

  constructor(
    private readonly platform: RealPlatform,
    readonly index: number,
    readonly native: KvmVcpu,
    private readonly bus: IoBus,
    private readonly accounting: VcpuAccounting,
  ) {
    this.exitNotifier = platform.fdNotifier(`vcpu${index}.exit-fd`, native.exitFd, 'vcpu-exit');
  }

  entered(vcpu: VcpuThread, _atNs: number, stalledNs: number): void {
    this.accounting.entered(vcpu.index, stalledNs);
  }

  *run(vcpu: VcpuThread): Co<VcpuExit | null> {
    const p = this.platform;
    // Resuming also cancels a pause still on its way (the thread then re-enters at once).
    if (this.native.phase() === 'created') this.native.start();
    else this.native.resume();
    const start = p.nowNs();
    for (;;) {
      const sliceLeft = this.throttlePct > 0 ? Math.max(0, CPU_THROTTLE_TIMESLICE_NS - this.sliceUsedNs - (p.nowNs() - start)) : -1;
      const ready = yield* p.wait(this.halted ? [vcpu.kick] : [this.exitNotifier, vcpu.kick], sliceLeft);
      const e = this.halted ? null : this.take();
      if (e) return this.leave(start, e, vcpu);
      if (ready.includes(vcpu.kick) || (this.throttlePct > 0 && ready.length === 0)) {
        // Out of guest mode: the native thread parks, or hands over the exit that came first.
        const pending = this.pause();
        if (pending) return this.leave(start, pending, vcpu);
        this.account(start, p.nowNs());
        if (ready.includes(vcpu.kick)) return null;
        this.sliceUsedNs = 0;
        return this.throttleExit();
      }
    }
  }

  /** Reads the pending exit record, if any; HLT parks the vCPU, a terminal exit throws. */
  private take(): NativeExit | null {
    const e = this.native.readExit();
    this.exitNotifier.read();
    if (e === null) return null;
    if (e.terminal) throw exitError(e);
    if (e.reason === 'hlt') {
      this.halted = true;
      return null;
    }
    return e;
  }

  /** Pauses the native thread; returns an exit that must be handled first, or null once it is parked. */
  private pause(): NativeExit | null {
    for (let i = 0; i < 4; i++) {
      const phase = this.native.pause(PAUSE_TIMEOUT_MS);
      if (phase === 'paused' || phase === 'created') return null;
      if (phase === 'ended') {
        const e = this.native.readExit();
        if (e && e.terminal) throw exitError(e);
        return null;
      }
      if (phase === 'exit') {
        if (this.halted) {
          // Answering HLT with immediate_exit set parks the thread without running the guest.
          this.native.complete();
          this.halted = false;
          continue;
        }
        const e = this.take();
        if (e && e.reason !== 'hlt') return e;
        continue;
      }
      throw new Error(`vcpu${this.index} did not leave KVM_RUN within ${PAUSE_TIMEOUT_MS} ms`);
    }
    throw new Error(`vcpu${this.index} kept exiting while being paused`);
  }

  private leave(start: number, e: NativeExit, vcpu: VcpuThread): VcpuExit {
    const leftAtNs = Math.max(start, Math.min(this.platform.nowNs(), this.platform.fromMonotonic(e.monotonicNs)));
    this.account(start, leftAtNs);
    this.exits++;
    if (e.reason === 'dirty_ring_full') {
      if (!this.dirtyRing) throw new Error(`vcpu${this.index} reported a full dirty ring, but the VM has none`);
      // Answered after the reap (and dirty-limit's sleep): it parks again on the re-entry, as other exits do.
      return this.dirtyRing.ringFullExit(vcpu, leftAtNs, () => {
        this.native.pause(0);
        this.native.complete();
      });
    }
    const a = e as IoAccess;
    const h = this.bus.lookup(a);
    const name = h ? (typeof h.name === 'string' ? h.name : h.name(this.index)) : (a.reason === 'io' ? `vcpu${this.index}.unassigned-pio-0x${a.port.toString(16)}` : `vcpu${this.index}.unassigned-mmio-0x${a.addr.toString(16)}`);
    return {
      name,
      kind: a.reason === 'io' ? 'pio' : 'mmio',
      needsBql: true,
      leftAtNs,
      handle: () => this.dispatch(h, a),
    };
  }

  /** Runs the handler, then answers the exit; the native thread finishes the access and parks. */
  private *dispatch(h: IoHandler | undefined, a: IoAccess): Co<void> {
    const value = h ? yield* h.handle(a, this.index) : undefined;
    const isRead = a.reason === 'io' ? a.direction === 'in' : !a.isWrite;
    this.native.pause(0); // pending exit: only asks for the park after the re-entry
    this.native.complete(isRead ? (value ?? 0) : undefined);
  }

  private account(start: number, end: number): void {
    const ran = end - start;
    if (ran > 0) {
      this.accounting.ran(this.index, ran, end);
      this.sliceUsedNs += ran;
    }
  }

  /** QEMU: cpu_throttle_thread: the vCPU sleeps outside guest mode for its share of the slice. */
  private throttleExit(): VcpuExit {
    const pct = this.throttlePct / 100;
    const sleepNs = Math.round((pct / (1 - pct)) * CPU_THROTTLE_TIMESLICE_NS);
    const p = this.platform;
    return { name: 'cpu_throttle_thread', kind: 'throttle', needsBql: false, handle: () => p.sleep(sleepNs) };
  }
}
