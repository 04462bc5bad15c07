// What a device may touch, and nothing more: its own fds (notifiers), bottom
// halves and callbacks, its seeded streams, CPU time on the thread that runs
// its handler, the BQL (to assert it), the trace, the run state (to read it,
// hook VM change-state handlers, request a stop or a start), the guest (to
// raise interrupts) and its own faults. Devices get a DeviceHandle instead of
// the whole Machine, as rust-vmm's event manager hands each subscriber only its
// own interest list: a device cannot register a handler on another device's fd
// or reach into the migration. One handle per device, made by the device's
// event glue (events.ts in its folder). A device bound to an IOThread gets
// that IOThread's AioContext from its handle and registers its own fds and
// bottom halves there (the dataplane), and waits for work in it the way
// QEMU does (aio_wait_bh_oneshot).
import type { Machine } from '../machine.ts';
import type { Co, Notifier } from '../platform.ts';
import type { GuestPort } from '../guest/guest.ts';
import type { FaultSchedule } from '../faults.ts';
import type { AioContext, AioHandlerOptions, HandlerBody, QEMUBH } from '../main-loop/aio.ts';
import type { IOThread } from '../main-loop/iothread.ts';
import type { QemuProfile } from '../scenario/qemu.ts';
import { QEMUClockType, type QEMUTimer } from '../main-loop/timer.ts';
import type { RunState, VMChangeStateHandler } from '../runstate.ts';
import type { FaultSpec } from '../scenario/scenario.ts';
import type { Rng } from '../scheduler/random.ts';
import type { TraceArgs } from '../instrument/trace.ts';
import { InvariantError } from '../invariant.ts';

export class DeviceHandle {
  private readonly fds = new Set<Notifier>();

  constructor(
    /** The device id, e.g. net0: the prefix of its fds and streams. */
    readonly id: string,
    private readonly machine: Machine,
    readonly guest: GuestPort,
    private readonly faults: FaultSchedule,
  ) {}

  /** Time on the model's clock (QEMU_CLOCK_REALTIME's source). */
  nowNs(): number {
    return this.machine.platform.nowNs();
  }

  /** Spends CPU time on the thread running the device's handler. */
  cpu(ns: number): Co<void> {
    return this.machine.platform.cpu(ns);
  }

  /** The device's own seeded stream `${id}.${stream}`. */
  random(stream: string): Rng {
    return this.machine.platform.random(`${this.id}.${stream}`);
  }

  /** A notifier (eventfd) of the device, named `${id}.${name}`. */
  notifier(name: string): Notifier {
    const fd = this.machine.platform.createNotifier(`${this.id}.${name}`);
    this.fds.add(fd);
    return fd;
  }

  /** QEMU: qemu_set_fd_handler (util/main-loop.c), for one of the device's own fds. */
  setFdHandler(fd: Notifier, name: string, ioRead: HandlerBody | null): void {
    if (!this.fds.has(fd)) throw new InvariantError('model', `device ${this.id}: ${name}: fd ${fd.name} is not the device's own`);
    this.machine.mainLoop.setFdHandler(fd, name, ioRead);
  }

  /** QEMU: aio_bh_new (util/async.c), in qemu_aio_context. */
  bhNew(name: string, cb: HandlerBody): QEMUBH {
    return this.machine.mainLoop.aioContext.bhNew(name, cb);
  }

  /** QEMU: aio_bh_new in another AioContext (an IOThread's). */
  bhNewIn(ctx: AioContext, name: string, cb: HandlerBody): QEMUBH {
    return ctx.bhNew(name, cb);
  }

  /** QEMU: aio_set_event_notifier (util/aio-posix.c) in ctx, for one of the device's own fds; null removes it. */
  setAioFdHandler(ctx: AioContext, fd: Notifier, name: string, ioRead: HandlerBody | null, options: AioHandlerOptions = {}): void {
    if (!this.fds.has(fd)) throw new InvariantError('model', `device ${this.id}: ${name}: fd ${fd.name} is not the device's own`);
    ctx.setFdHandler(fd, name, ioRead, null, options);
  }

  /** QEMU: timer_new_ns on the main loop's timer list (hw/net/virtio-net.c's tx timer). */
  timerNew(type: QEMUClockType, name: string, cb: HandlerBody): QEMUTimer {
    return this.machine.mainLoop.tlg.timerNew(type, name, cb);
  }

  /** QEMU_CLOCK_VIRTUAL now (stopped while the VM is). */
  virtualNowNs(): number {
    return this.machine.clocks.get(QEMUClockType.VIRTUAL);
  }

  /** The IOThread of that id (the scenario named a declared one). */
  iothread(id: string): IOThread {
    return this.machine.iothread(id);
  }

  /** qemu_aio_context, where a dataplane's backend goes back when it stops. */
  get mainContext(): AioContext {
    return this.machine.mainLoop.aioContext;
  }

  /** QEMU: aio_wait_bh_oneshot (util/aio-wait.c): runs cb in ctx's thread and waits for it. */
  aioWaitBhOneshot(ctx: AioContext, name: string, cb: () => Co<void>): Co<void> {
    return this.machine.aioWait.bhOneshot(ctx, name, cb);
  }

  /** The QEMU version the run follows (what locks exist, how drained sections work). */
  get profile(): QemuProfile {
    return this.machine.qemu.profile;
  }

  /** Lock discipline: the handler `site` runs in thread (an IOThread), not wherever the BQL is. */
  assertInThread(site: string, thread: string): void {
    const cur = this.machine.platform.current().name;
    if (cur !== thread) throw new InvariantError('lock-discipline', `${site} ran on ${cur}, not in ${thread}`);
  }

  /** Waits for notifiers (the device's own thread's loop); see Platform.wait. */
  wait(notifiers: readonly Notifier[], timeoutNs: number): Co<readonly Notifier[]> {
    return this.machine.platform.wait(notifiers, timeoutNs);
  }

  /** Spawns a thread of the device's own (a vhost worker: a kernel thread outside QEMU's). */
  spawn(name: string, body: () => Co<void>): void {
    this.machine.platform.spawn(name, body, { ownCore: true });
  }

  /** Runs at the end of a run (a thread of the device's closes its books). */
  addFinisher(fn: () => void): void {
    this.machine.addFinisher(fn);
  }

  /** Attributes a wait of ns (label: what was waited for) to the handlers running on the current thread. */
  noteWait(label: string, ns: number): void {
    this.machine.inst.noteWait(this.machine.platform.current().name, label, ns);
  }

  /** Notes that thread could not run its handlers for ns from startNs. */
  noteBlocked(thread: string, startNs: number, ns: number): void {
    this.machine.inst.noteBlocked(thread, startNs, ns);
  }

  /** Runs a named handler body on the current thread, accounted as the main loop's are. */
  run<T>(name: string, kind: string, body: Co<T>): Co<T> {
    return this.machine.inst.run(name, kind, body);
  }

  /** A device-internal event after ns (a wire delay, a backend's completion). */
  callAfter(ns: number, fn: () => void): void {
    this.machine.platform.callAfter(ns, fn);
  }

  /** Lock discipline: the handler `site` runs under the BQL. */
  assertBqlHeld(site: string): void {
    this.machine.bql.assertHeld(site);
  }

  /** The name of the thread running the device's code now. */
  currentThread(): string {
    return this.machine.platform.current().name;
  }

  /** A trace event on the current thread. */
  traceEvent(name: string, args?: TraceArgs): void {
    this.machine.trace.event(this.machine.platform.current().name, name, args);
  }

  /** Starts a flow arrow (a guest kick) on the current thread; flowEnd closes it where it is served. */
  flowStart(name: string): number {
    return this.machine.trace.flowStart(this.machine.platform.current().name, name);
  }

  flowEnd(name: string, id: number): void {
    this.machine.trace.flowEnd(this.machine.platform.current().name, name, id);
  }

  /** QEMU: runstate_is_running (system/runstate.c) */
  get running(): boolean {
    return this.machine.runstate.running;
  }

  /** QEMU: qemu_add_vm_change_state_handler (system/runstate.c) */
  addChangeHandler(name: string, cb: VMChangeStateHandler): void {
    this.machine.runstate.addChangeHandler(name, cb);
  }

  /** QEMU: qemu_system_vmstop_request (system/runstate.c), e.g. werror=stop. */
  requestVmStop(state: RunState): void {
    this.machine.requestVmStop(state);
  }

  /** Management's `cont`. */
  requestVmStart(): void {
    this.machine.requestVmStart();
  }

  /** The first fault of a kind active on this device now, if any. */
  activeFault(kind: FaultSpec['kind']): FaultSpec | null {
    return this.faults.active(this.id, kind, this.nowNs());
  }

  /** This device's faults. */
  ownFaults(): readonly FaultSpec[] {
    return this.faults.forDevice(this.id);
  }
}
