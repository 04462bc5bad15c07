// One QEMU process as the model sees it: the Platform it runs on, its trace
// and instruments, clocks, the BQL, the main loop, its IOThreads (each with
// its own AioContext), the run state and the vCPUs; vm_stop and vm_start,
// which tie them together. Written against the Platform only, so the same
// Machine runs on the simulator and on KVM.
import { HOST_COSTS_DEFAULT, HOST_COSTS_NONE, QEMU_PROFILES, QEMU_VERSION_DEFAULT, type QemuSpec } from './scenario/qemu.ts';
import type { Co, Notifier, Platform } from './platform.ts';
import { Bql } from './main-loop/bql.ts';
import { Instruments, DEFAULT_THRESHOLD_NS } from './instrument/instrument.ts';
import { MainLoop } from './main-loop/main-loop.ts';
import { IOThread } from './main-loop/iothread.ts';
import { AioWait } from './main-loop/aio-wait.ts';
import type { IothreadSpec } from './scenario/iothreads.ts';
import { InvariantError } from './invariant.ts';
import { RunStateTracker, type RunState } from './runstate.ts';
import { QEMUClocks } from './main-loop/timer.ts';
import { Trace } from './instrument/trace.ts';
import { VcpuThread, type GuestCode, type VcpuHost } from './vcpu.ts';

/** The block layer's part in vm_stop (bdrv_drain_all, bdrv_flush_all). */
export interface BlockLayerHooks {
  drainAll(): Co<void>;
  /** Returns an error message, or null when every flush succeeded. */
  flushAll(): Co<string | null>;
}

/** Where the time of one vm_stop went. */
export interface StopPhases {
  readonly stop_ns: number;
  readonly drain_ns: number;
  readonly flush_ns: number;
  readonly error: string | null;
}

export interface MachineOptions {
  thresholdNs?: number;
  /** The QEMU version profile and host costs (default: the newest profile, a bare-metal host). */
  qemu?: QemuSpec;
  /** Keep trace records and poll records for the exporters. */
  keepTrace?: boolean;
  /** Hash the trace into the run's fingerprint (default); off, and nothing kept, the trace costs nothing. */
  fingerprint?: boolean;
  initialState?: RunState;
  /** The IOThreads to create (-object iothread). */
  iothreads?: readonly IothreadSpec[];
}

export class Machine implements VcpuHost {
  readonly trace: Trace;
  readonly inst: Instruments;
  readonly clocks: QEMUClocks;
  readonly bql: Bql;
  readonly mainLoop: MainLoop;
  /** QEMU: global_aio_wait, how a thread waits for work in another AioContext. */
  readonly aioWait: AioWait;
  /** The IOThreads by id, in declaration order. */
  readonly iothreads = new Map<string, IOThread>();
  readonly runstate: RunStateTracker;
  readonly vcpus: VcpuThread[] = [];
  readonly pauseCond: Notifier;
  block: BlockLayerHooks | null = null;
  /** Every vm_stop: when, by which thread, to which state. */
  readonly stops: { at_ns: number; thread: string; state: RunState }[] = [];
  private stopRequest: RunState | null = null;
  private readonly finishers: (() => void)[] = [];
  private startRequest = false;

  /** Which QEMU this process follows, and the costs of its host. */
  readonly qemu: QemuSpec;

  constructor(readonly platform: Platform, options: MachineOptions = {}) {
    const keep = options.keepTrace ?? false;
    const qemu = options.qemu ?? { profile: QEMU_PROFILES[QEMU_VERSION_DEFAULT], host: HOST_COSTS_DEFAULT };
    // On a real backend the host's costs are paid for real: none is modelled on top.
    this.qemu = platform.backend === 'real' ? { ...qemu, host: HOST_COSTS_NONE } : qemu;
    this.trace = new Trace(() => platform.nowNs(), keep, options.fingerprint ?? true);
    this.inst = new Instruments(platform, this.trace, options.thresholdNs ?? DEFAULT_THRESHOLD_NS);
    this.clocks = new QEMUClocks(platform);
    this.bql = new Bql(platform, this.inst);
    this.mainLoop = new MainLoop(platform, this.inst, this.bql, this.clocks, keep);
    this.aioWait = new AioWait(platform, this.inst, this.mainLoop.aioContext);
    for (const spec of options.iothreads ?? []) {
      const locking = this.qemu.profile.block_locking;
      if (locking === 'bql') throw new InvariantError('model', `QEMU ${this.qemu.profile.version} has no IOThreads (${spec.id})`);
      this.iothreads.set(spec.id, new IOThread(spec, platform, this.inst, this.clocks, locking, keep));
    }    this.runstate = new RunStateTracker(options.initialState ?? 'running');
    if (!this.runstate.running) this.clocks.stopVirtual();
    this.pauseCond = platform.createNotifier('qemu_pause_cond');
    this.mainLoop.afterWait = () => this.mainLoopShouldExit();
  }

  /** QEMU: qemu_system_vmstop_request (system/runstate.c): the main loop stops the VM. */
  requestVmStop(state: RunState): void {
    this.stopRequest = state;
    this.mainLoop.notifyEvent();
  }

  /** Management's `cont` (QEMU: qmp_cont), carried out by the main loop. */
  requestVmStart(): void {
    this.startRequest = true;
    this.mainLoop.notifyEvent();
  }

  /** QEMU: main_loop_should_exit (system/runstate.c): pending stop and start requests. */
  private *mainLoopShouldExit(): Co<void> {
    if (this.stopRequest) {
      const state = this.stopRequest;
      this.stopRequest = null;
      yield* this.vmStop(state);
    }
    if (this.startRequest) {
      this.startRequest = false;
      // QEMU's qmp_cont refuses while the migration completes ("Migration is
      // not finalized yet"); after it, management does not resume a VM that
      // now runs on the destination.
      const st = this.runstate.state;
      if (st !== 'finish-migrate' && st !== 'postmigrate') this.vmStart();
    }
  }

  addVcpu(guest: GuestCode): VcpuThread {
    const v = new VcpuThread(this.vcpus.length, this, guest);
    this.vcpus.push(v);
    return v;
  }

  /** The IOThread of that id (a scenario's devices name only declared ones). */
  iothread(id: string): IOThread {
    const t = this.iothreads.get(id);
    if (!t) throw new InvariantError('model', `no IOThread named ${id}`);
    return t;
  }

  /** Starts the IOThreads, the main loop and every vCPU thread. */
  start(): void {
    for (const t of this.iothreads.values()) t.start();
    this.mainLoop.start();
    for (const v of this.vcpus) v.start();
  }

  vcpuCanRun(): boolean {
    return this.runstate.running;
  }

  runStateName(): string {
    return this.runstate.state;
  }

  /**
   * QEMU: vm_stop -> do_vm_stop (system/cpus.c). Called under the BQL: stops
   * the vCPUs and QEMU_CLOCK_VIRTUAL, notifies devices (which may block: a
   * dataplane's drain), then drains and flushes all block devices, still
   * under the BQL.
   */
  *vmStop(state: RunState): Co<StopPhases> {
    return yield* this.inst.run('vm_stop', 'runstate', this.doVmStop(state));
  }

  private *doVmStop(state: RunState): Co<StopPhases> {
    const p = this.platform;
    this.stops.push({ at_ns: p.nowNs(), thread: p.current().name, state });
    this.bql.assertHeld('vm_stop');
    const t0 = p.nowNs();
    let t1 = t0;
    if (this.runstate.running) {
      this.runstate.set(state);
      this.trace.event(p.current().name, 'vm_state_notify', { running: 0, reason: state });
      this.clocks.stopVirtual();
      yield* this.pauseAllVcpus();
      t1 = p.nowNs();
      // QEMU: vm_state_notify. Devices may block here: a dataplane drains its
      // IOThread's requests (virtio_blk_data_plane_stop), vhost waits for its
      // worker; that time counts as drain time, it is the same wait.
      yield* this.runstate.notifyStop();
    } else {
      this.runstate.set(state);
    }
    if (this.block) yield* this.block.drainAll();
    const t2 = p.nowNs();
    const error = this.block ? yield* this.block.flushAll() : null;
    const t3 = p.nowNs();
    return { stop_ns: t1 - t0, drain_ns: t2 - t1, flush_ns: t3 - t2, error };
  }

  /** QEMU: vm_start (system/cpus.c), under the BQL. */
  vmStart(): void {
    this.bql.assertHeld('vm_start');
    if (this.runstate.running) return;
    this.runstate.set('running');
    this.trace.event(this.platform.current().name, 'vm_state_notify', { running: 1, reason: 'running' });
    this.runstate.notify(true);
    this.clocks.startVirtual();
    // QEMU: resume_all_vcpus
    for (const v of this.vcpus) v.kick.set();
  }

  /** QEMU: pause_all_vcpus (system/cpus.c): waits on qemu_pause_cond, dropping the BQL. */
  private *pauseAllVcpus(): Co<void> {
    for (const v of this.vcpus) v.kick.set();
    while (!this.vcpus.every((v) => v.stopped)) {
      this.bql.unlock();
      yield* this.platform.wait([this.pauseCond], -1);
      this.pauseCond.read();
      yield* this.bql.lock('pause_all_vcpus');
    }
  }

  /** At the end of a run: event loops stuck outside their wait count as blocked until now. */
  finish(): void {
    this.mainLoop.finish();
    for (const t of this.iothreads.values()) t.finish();
    for (const f of this.finishers) f();
  }

  /** Runs at the end of a run (other event loops: a vhost worker closes its books). */
  addFinisher(fn: () => void): void {
    this.finishers.push(fn);
  }

  /** The longest vCPU stall so far, counting stalls still open. */
  vcpuStallMaxNs(): number {
    const now = this.platform.nowNs();
    return this.vcpus.reduce((m, v) => Math.max(m, v.stallMaxUntil(now)), 0);
  }
}
