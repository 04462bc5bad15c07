// vCPU threads. Each runs guest code (KVM_RUN) without the BQL and takes the
// BQL for every exit to userspace (PIO/MMIO), as kvm_cpu_exec does; a kick
// (qemu_cpu_kick) makes it leave guest mode at once. When the VM stops, the
// thread parks until resumed, and pause_all_vcpus waits until every vCPU is
// out of guest mode. What the guest does while it runs is a GuestCode.
// Stall: time a vCPU wanted to run guest code but was out of guest mode
// (stopped, or waiting for the BQL to finish an exit).
// Work queued with run_on_cpu runs on the vCPU's thread under the BQL the
// next time it is out of guest mode (kicked out, or woken while parked), in
// order, after whatever it was doing: a throttle sleep finishes first.
// Leaves out: halt-polling, in-kernel irqchip details, vCPU hotplug,
// async_run_on_cpu and exclusive work.
import type { Bql } from './main-loop/bql.ts';
import type { Instruments } from './instrument/instrument.ts';
import type { Co, Notifier, Platform } from './platform.ts';

/**
 * An exit to userspace: a PIO or MMIO access (under the BQL), a throttle
 * sleep, a full dirty ring, or a userfault (postcopy: the vCPU waits in the
 * kernel for a page the destination lacks; not an exit KVM counts).
 */
export interface VcpuExit {
  readonly name: string;
  readonly kind: 'pio' | 'mmio' | 'throttle' | 'dirty-ring-full' | 'userfault';
  readonly needsBql: boolean;
  /**
   * When the vCPU left guest mode for this exit, if before the thread saw it:
   * on KVM the vCPU thread stops at once while the loop notices the exit later.
   */
  readonly leftAtNs?: number;
  handle(): Co<void>;
  /** Runs after the BQL is dropped again (QEMU: dirtylimit_vcpu_execute after a ring-full exit). */
  afterBql?(): Co<void>;
}

/** What runs inside the guest on a vCPU. */
export interface GuestCode {
  /**
   * Runs guest code on vcpu (in KVM_RUN) until it exits to userspace; returns
   * that exit, or null when the vCPU was kicked out (vcpu.kick became ready).
   */
  run(vcpu: VcpuThread): Co<VcpuExit | null>;
  /** Told when the vCPU leaves guest mode and when it re-enters it. */
  left?(vcpu: VcpuThread, atNs: number): void;
  entered?(vcpu: VcpuThread, atNs: number, stalledNs: number): void;
}

export interface VcpuHost {
  readonly platform: Platform;
  readonly bql: Bql;
  readonly inst: Instruments;
  /** cpu_can_run: the VM is running and no stop is pending. */
  vcpuCanRun(vcpu: VcpuThread): boolean;
  /** Signalled when a vCPU parks (qemu_pause_cond). */
  readonly pauseCond: Notifier;
  /** The run state, for stall records. */
  runStateName(): string;
}

/** A stall over the threshold: where the vCPU's time out of guest mode went. */
export interface StallRecord {
  readonly vcpu: string;
  readonly from_ns: number;
  readonly to_ns: number;
  /** Time parked because the VM was stopped, and the run state it was stopped in. */
  readonly stopped_ns: number;
  readonly stopped_state: string;
  /** Time waiting for the BQL, and who held it when the wait began. */
  readonly bql_wait_ns: number;
  readonly bql_holder: string;
  /** Time waiting for missing pages (postcopy userfaults). */
  readonly fault_ns: number;
}

export class VcpuThread {
  readonly name: string;
  /** qemu_cpu_kick: set to make the vCPU leave guest mode. */
  readonly kick: Notifier;
  /** True while parked outside guest mode (cpu->stopped). */
  stopped = true;
  exits = 0;
  stallMaxNs = 0;
  stallMaxAtNs = 0;
  stallTotalNs = 0;
  private leftAtNs = 0;
  private inGuest = false;
  readonly stalls: StallRecord[] = [];
  private stoppedNs = 0;
  private stoppedState = '';
  private bqlWaitNs = 0;
  private bqlHolder = '';
  private faultNs = 0;
  /** QEMU: cpu->work_list (run_on_cpu), and qemu_work_cond for whoever waits on it. */
  private readonly work: { done: boolean }[] = [];
  private readonly workCond: Notifier;

  constructor(
    readonly index: number,
    private readonly host: VcpuHost,
    readonly guest: GuestCode,
  ) {
    this.name = `vcpu${index}`;
    this.kick = host.platform.createNotifier(`${this.name}.kick`);
    this.workCond = host.platform.createNotifier(`${this.name}.qemu_work_cond`);
  }

  /**
   * QEMU: run_on_cpu (cpus-common.c) with a no-op, as
   * kvm_cpu_synchronize_kick_all queues it: the vCPU is kicked and the
   * caller, who holds the BQL, waits until the vCPU's thread has run the
   * work, dropping the BQL meanwhile (qemu_cond_wait). Returns whether it
   * dropped and took the BQL again.
   */
  *runOnCpu(bql: Bql): Co<boolean> {
    const item = { done: false };
    this.work.push(item);
    this.kick.set();
    let dropped = false;
    while (!item.done) {
      yield* bql.condWait(this.workCond);
      dropped = true;
    }
    return dropped;
  }

  /** QEMU: process_queued_cpu_work (cpus-common.c), from qemu_wait_io_event, under the BQL. */
  private *processQueuedWork(): Co<void> {
    const bql = this.host.bql;
    yield* bql.lock('process_queued_cpu_work');
    while (this.work.length > 0) this.work.shift()!.done = true;
    this.workCond.set();
    bql.unlock();
  }

  start(): void {
    this.host.platform.spawn(this.name, () => this.threadFn());
  }

  /** The longest stall including one still open at nowNs. */
  stallMaxUntil(nowNs: number): number {
    return Math.max(this.stallMaxNs, this.inGuest ? 0 : nowNs - this.leftAtNs);
  }

  /** QEMU: kvm_vcpu_thread_fn (accel/kvm/kvm-accel-ops.c) with kvm_cpu_exec (accel/kvm/kvm-all.c) */
  private *threadFn(): Co<void> {
    const { platform: p, bql, inst } = this.host;
    this.leftAtNs = p.nowNs();
    for (;;) {
      if (this.work.length > 0) yield* this.processQueuedWork();
      // QEMU: qemu_wait_io_event: park while the vCPU may not run.
      if (!this.host.vcpuCanRun(this)) {
        if (!this.stopped) {
          this.stopped = true;
          inst.trace.event(this.name, 'vcpu_stopped');
          this.host.pauseCond.set();
        }
        this.kick.read();
        const t0 = p.nowNs();
        this.stoppedState = this.host.runStateName();
        yield* p.wait([this.kick], -1);
        this.stoppedNs += p.nowNs() - t0;
        continue;
      }
      this.kick.read();
      this.stopped = false;
      this.enterGuest(p.nowNs());
      const exit = yield* this.guest.run(this);
      this.leaveGuest(exit?.leftAtNs ?? p.nowNs());
      if (exit === null) continue;
      if (exit.kind === 'userfault') {
        const t0 = p.nowNs();
        yield* inst.run(exit.name, exit.kind, exit.handle());
        this.faultNs += p.nowNs() - t0;
        continue;
      }
      this.exits++;
      inst.trace.event(this.name, 'kvm_run_exit', { reason: exit.kind, exit: exit.name });
      if (!exit.needsBql) {
        yield* inst.run(exit.name, exit.kind, exit.handle());
        if (exit.afterBql) yield* exit.afterBql();
        continue;
      }
      // On KVM the exit may have waited for this thread to see it: the wait began at the exit.
      const t0 = exit.leftAtNs ?? p.nowNs();
      const holder = exit.leftAtNs === undefined ? bql.holder() : bql.holderSince(exit.leftAtNs);
      yield* bql.lock('kvm_cpu_exec');
      const waited = p.nowNs() - t0;
      if (waited > this.bqlWaitNs) {
        this.bqlWaitNs = waited;
        this.bqlHolder = holder ?? '';
      }
      yield* inst.run(exit.name, exit.kind, exit.handle());
      bql.unlock();
      if (exit.afterBql) yield* exit.afterBql();
    }
  }

  private enterGuest(now: number): void {
    const stalled = now - this.leftAtNs;
    if (stalled > this.stallMaxNs) {
      this.stallMaxNs = stalled;
      this.stallMaxAtNs = this.leftAtNs;
    }
    this.stallTotalNs += stalled;
    if (stalled > this.host.inst.thresholdNs) {
      this.stalls.push({
        vcpu: this.name, from_ns: this.leftAtNs, to_ns: now, stopped_ns: this.stoppedNs, stopped_state: this.stoppedState,
        bql_wait_ns: this.bqlWaitNs, bql_holder: this.bqlHolder, fault_ns: this.faultNs,
      });
    }
    this.stoppedNs = 0;
    this.faultNs = 0;
    this.bqlWaitNs = 0;
    this.bqlHolder = '';
    this.inGuest = true;
    this.guest.entered?.(this, now, stalled);
  }

  private leaveGuest(now: number): void {
    this.leftAtNs = now;
    this.inGuest = false;
    this.guest.left?.(this, now);
  }
}
