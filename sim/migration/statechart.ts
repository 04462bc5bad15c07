// The migration statechart, in xstate v5, with QEMU's MigrationStatus values
// (qapi/migration.json) as its top-level states. The migration thread does
// the work and reports what happened (SETUP_DONE, CONVERGED, COMPLETED, ...);
// the chart decides what that means under the policy: whether a completion
// attempt may start (after a rollback, the min-interval policy holds it off
// with a delayed transition on the platform's clock), and whether a completion
// that timed out rolls back from `device` to `active` (which upstream QEMU has
// no path for) or fails. When `device` is entered follows the QEMU version:
// at the completion decision (the talk's proposal on QEMU 1.1), never
// (QEMU 2.x-9.x without pause-before-switchover: completion runs in `active`),
// or once the VM has stopped. Postcopy (QEMU >= 2.5) leaves `active` for
// `postcopy-active` when migrate-start-postcopy takes effect (7.2 sets it
// before the VM stops, in postcopy_start); a broken stream moves it to
// `postcopy-paused` (QEMU >= 3.0), migrate-recover to `postcopy-recover`, and
// the destination's resume ack back to `postcopy-active`, which completes
// once every page is sent. Every transition becomes a `migrate_set_state`
// trace event and a QMP MIGRATION event.
//
// To view it: paste migrationMachine's config (or this file) into the Stately
// visualizer at stately.ai/viz; `latsim statechart` prints it as JSON.
// Leaves out: pre-switchover, colo, wait-unplug.
import { and, createActor, setup, type Actor, type SnapshotFrom } from 'xstate';
import type { Platform } from '../platform.ts';
import { xstateClock } from '../scheduler/clock.ts';

/** QEMU's MigrationStatus values used here (qapi/migration.json). */
export type MigrationStatus =
  | 'none'
  | 'setup'
  | 'active'
  | 'device'
  | 'postcopy-active'
  | 'postcopy-paused'
  | 'postcopy-recover'
  | 'completed'
  | 'failed'
  | 'cancelling'
  | 'cancelled';

export type MigrationEvent =
  | { type: 'START' }
  | { type: 'SETUP_DONE' }
  /** Remaining data fits the downtime limit: try completion. */
  | { type: 'CONVERGED' }
  | { type: 'COMPLETED' }
  /** The VM stopped for completion (QEMU: migration_switchover_start). */
  | { type: 'VM_STOPPED' }
  /** A completion attempt timed out (flush took too long). */
  | { type: 'COMPLETION_TIMEOUT' }
  /** QEMU: postcopy_start: migrate-start-postcopy took effect. */
  | { type: 'POSTCOPY_START' }
  /** QEMU: postcopy_pause: the stream broke during postcopy. */
  | { type: 'POSTCOPY_PAUSE' }
  /** QEMU: migrate -r (resume) after migrate-recover on the destination. */
  | { type: 'POSTCOPY_RECOVER' }
  /** QEMU: migrate_handle_rp_resume_ack: both sides run postcopy again. */
  | { type: 'POSTCOPY_RESUMED' }
  | { type: 'FAIL'; reason: string }
  | { type: 'CANCEL' }
  | { type: 'CANCELLED' };

export type DeviceStatusRule = 'at-completion' | 'never' | 'after-stop';

/** The chart's input: the policy's and the QEMU version's choices. */
export interface MigrationChartInput {
  readonly rollback: boolean;
  readonly minIntervalMs: number;
  readonly deviceStatus: DeviceStatusRule;
}

export interface MigrationChartContext {
  /** Roll back from device to active on a completion timeout (else fail). */
  readonly rollback: boolean;
  /** Minimum ms from a rollback to the next completion attempt (0: none). */
  readonly minIntervalMs: number;
  /** When `device` is entered: at the completion decision, never, or after the VM stopped. */
  readonly deviceStatus: DeviceStatusRule;
  rollbacks: number;
  attempts: number;
  failReason: string;
}

export const migrationMachine = setup({
  types: {
    context: {} as MigrationChartContext,
    events: {} as MigrationEvent,
    input: {} as MigrationChartInput,
  },
  delays: {
    minInterval: ({ context }) => context.minIntervalMs,
  },
  guards: {
    mayRollBack: ({ context }) => context.rollback,
    holdOff: ({ context }) => context.minIntervalMs > 0,
    deviceAtCompletion: ({ context }) => context.deviceStatus === 'at-completion',
    deviceAfterStop: ({ context }) => context.deviceStatus === 'after-stop',
  },
}).createMachine({
  id: 'migration',
  initial: 'none',
  context: ({ input }) => ({
    rollback: input.rollback,
    minIntervalMs: input.minIntervalMs,
    deviceStatus: input.deviceStatus,
    rollbacks: 0,
    attempts: 0,
    failReason: '',
  }),
  states: {
    none: { on: { START: 'setup' } },
    setup: {
      on: {
        SETUP_DONE: 'active',
        FAIL: { target: 'failed', actions: ({ context, event }) => { context.failReason = event.reason; } },
        CANCEL: 'cancelling',
      },
    },
    active: {
      initial: 'may_complete',
      states: {
        may_complete: {
          on: {
            CONVERGED: [
              { guard: 'deviceAtCompletion', target: '#migration.device', actions: ({ context }) => { context.attempts++; } },
              { target: 'completing', actions: ({ context }) => { context.attempts++; } },
            ],
          },
        },
        // Completion runs while the status still says active (QEMU 2.x-9.x).
        completing: {
          on: {
            VM_STOPPED: { guard: 'deviceAfterStop', target: '#migration.device' },
            COMPLETED: '#migration.completed',
            COMPLETION_TIMEOUT: [
              { guard: and(['mayRollBack', 'holdOff']), target: 'holding_off', actions: ({ context }) => { context.rollbacks++; } },
              { guard: 'mayRollBack', target: 'may_complete', actions: ({ context }) => { context.rollbacks++; } },
              { target: '#migration.failed', actions: ({ context }) => { context.failReason = 'completion timed out'; } },
            ],
          },
        },
        // The talk's final fix: no new completion attempt for a while after a rollback.
        holding_off: { after: { minInterval: { target: 'may_complete', reenter: true } } },
      },
      on: {
        POSTCOPY_START: 'postcopy-active',
        FAIL: { target: 'failed', actions: ({ context, event }) => { context.failReason = event.reason; } },
        CANCEL: 'cancelling',
      },
    },
    'postcopy-active': {
      on: {
        COMPLETED: 'completed',
        POSTCOPY_PAUSE: 'postcopy-paused',
        FAIL: { target: 'failed', actions: ({ context, event }) => { context.failReason = event.reason; } },
      },
    },
    'postcopy-paused': {
      on: {
        POSTCOPY_RECOVER: 'postcopy-recover',
      },
    },
    'postcopy-recover': {
      on: {
        POSTCOPY_RESUMED: 'postcopy-active',
        // QEMU: postcopy_pause loops: a failed recovery pauses again.
        POSTCOPY_PAUSE: 'postcopy-paused',
      },
    },
    device: {
      on: {
        COMPLETED: 'completed',
        COMPLETION_TIMEOUT: [
          {
            guard: and(['mayRollBack', 'holdOff']),
            target: 'active.holding_off',
            actions: ({ context }) => { context.rollbacks++; },
          },
          { guard: 'mayRollBack', target: 'active.may_complete', actions: ({ context }) => { context.rollbacks++; } },
          { target: 'failed', actions: ({ context }) => { context.failReason = 'completion timed out'; } },
        ],
        FAIL: { target: 'failed', actions: ({ context, event }) => { context.failReason = event.reason; } },
      },
    },
    completed: { type: 'final' },
    failed: { type: 'final' },
    cancelling: { on: { CANCELLED: 'cancelled' } },
    cancelled: { type: 'final' },
  },
});

export type MigrationActor = Actor<typeof migrationMachine>;
export type MigrationSnapshot = SnapshotFrom<typeof migrationMachine>;

/** The MigrationStatus of a snapshot (the top-level state). */
export function statusOf(snapshot: MigrationSnapshot): MigrationStatus {
  const v = snapshot.value;
  return (typeof v === 'string' ? v : Object.keys(v)[0]) as MigrationStatus;
}

/** True when the chart allows a completion attempt now. */
export function mayComplete(snapshot: MigrationSnapshot): boolean {
  return snapshot.matches({ active: 'may_complete' });
}

/**
 * Starts the chart on the platform's clock: xstate's delayed events become
 * platform timers, so on the simulator they run in simulated time.
 */
export function startMigrationActor(
  platform: Platform,
  input: MigrationChartInput,
  onStatus: (status: MigrationStatus, previous: MigrationStatus) => void,
): MigrationActor {
  const clock = xstateClock((ns, fn) => platform.callAfter(ns, fn), (id) => platform.cancelCall(id));
  const actor = createActor(migrationMachine, { input, clock });
  let previous: MigrationStatus = 'none';
  actor.subscribe((snap) => {
    const status = statusOf(snap);
    if (status !== previous) {
      const was = previous;
      previous = status;
      onStatus(status, was);
    }
  });
  actor.start();
  return actor;
}
