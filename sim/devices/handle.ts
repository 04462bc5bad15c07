// What a device may touch, and nothing more: its own fds (notifiers), bottom
// halves and callbacks, its seeded streams, CPU time on the thread that runs
// its handler, the BQL (to assert it), the trace, the run state (to read it,
// hook VM change-state handlers, request a stop or a start), the guest (to
// raise interrupts) and its own faults. Devices get a DeviceHandle instead of
// the whole Machine, as rust-vmm's event manager hands each subscriber only its
// own interest list: a device cannot register a handler on another device's fd
// or reach into the migration. One handle per device, made by the device's
// event glue (events.ts in its folder).
// Leaves out: per-device AioContexts (every handler runs in the main loop's
// contexts, as QEMU does without IOThreads).
import type { Machine } from '../machine.ts';
import type { Co, Notifier } from '../platform.ts';
import type { GuestPort } from '../guest/guest.ts';
import type { FaultSchedule } from '../faults.ts';
import type { HandlerBody, QEMUBH } from '../main-loop/aio.ts';
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

  /** A device-internal event after ns (a wire delay, a backend's completion). */
  callAfter(ns: number, fn: () => void): void {
    this.machine.platform.callAfter(ns, fn);
  }

  /** Lock discipline: the handler `site` runs under the BQL. */
  assertBqlHeld(site: string): void {
    this.machine.bql.assertHeld(site);
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
