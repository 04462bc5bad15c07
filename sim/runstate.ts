// The VM run state (QEMU's RunState) and the state-change notifiers devices
// hook into (vm_state_notify: virtio-blk restarts requests from a BH when the
// VM resumes). A handler may block when the VM stops (it returns a
// coroutine: the virtio-blk dataplane drains its IOThread, vhost waits for
// its worker), as QEMU's handlers block inside vm_stop under the BQL; on
// resume every handler returns at once. vm_stop and vm_start themselves live
// in machine.ts, where the vCPUs and the block layer are.
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

import type { Co } from './platform.ts';

/** A VM change-state handler; on a stop it may return a coroutine that vm_stop runs to its end. */
export type VMChangeStateHandler = (running: boolean, state: RunState) => void | Co<void>;

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

  /** QEMU: vm_state_notify (system/runstate.c) on resume: in order; no handler blocks. */
  notify(running: boolean): void {
    if (!running) throw new Error('vm_state_notify on a stop runs as a coroutine (notifyStop)');
    for (const h of this.handlers) {
      if (h.cb(running, this.current) !== undefined) throw new Error(`VM change-state handler ${h.name} blocks on resume`);
    }
  }

  /** QEMU: vm_state_notify on a stop: in reverse order, each blocking handler run to its end. */
  *notifyStop(): Co<void> {
    for (const h of [...this.handlers].reverse()) {
      const co = h.cb(false, this.current);
      if (co !== undefined) yield* co;
    }
  }
}
