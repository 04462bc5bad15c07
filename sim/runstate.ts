// The VM run state (QEMU's RunState) and the state-change notifiers devices
// hook into (vm_state_notify: virtio-blk restarts requests from a BH when the
// VM resumes). vm_stop and vm_start themselves live in machine.ts, where the
// vCPUs and the block layer are.
// Leaves out: the full RunState transition table of system/runstate.c.

export type RunState =
  | 'prelaunch'
  | 'running'
  | 'paused'
  | 'finish-migrate'
  | 'postmigrate'
  | 'inmigrate'
  | 'io-error'
  | 'shutdown';

export type VMChangeStateHandler = (running: boolean, state: RunState) => void;

export class RunStateTracker {
  private current: RunState;
  private readonly handlers: { name: string; cb: VMChangeStateHandler }[] = [];

  constructor(initial: RunState) {
    this.current = initial;
  }

  get state(): RunState {
    return this.current;
  }

  /** QEMU: runstate_is_running (system/runstate.c) */
  get running(): boolean {
    return this.current === 'running';
  }

  /** QEMU: runstate_set (system/runstate.c) */
  set(state: RunState): void {
    this.current = state;
  }

  /** QEMU: qemu_add_vm_change_state_handler (system/runstate.c) */
  addChangeHandler(name: string, cb: VMChangeStateHandler): void {
    this.handlers.push({ name, cb });
  }

  /** QEMU: vm_state_notify (system/runstate.c): resume in order, stop in reverse. */
  notify(running: boolean): void {
    const list = running ? this.handlers : [...this.handlers].reverse();
    for (const h of list) h.cb(running, this.current);
  }
}
