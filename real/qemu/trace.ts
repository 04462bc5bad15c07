// QEMU's trace events, as the "log" trace backend writes them to the -D file
// with -msg timestamp=on: "<tid>@<sec>.<usec>:<event> <args>" (wall clock,
// gettimeofday). This file names the events run.ts enables, parses the log,
// and turns it into the simulation's iteration table (sim/migration/ram.ts
// SyncRecord: one row per migration_bitmap_sync) and the switchover phases.
//
// What QEMU 7.2 traces and what is derived:
//  - migration_bitmap_sync_start / _end: the sync's time; _end's dirty_pages
//    is RAMState.num_dirty_pages_period, the pages newly dirtied since the
//    period began, where a period ends at the first sync more than 1000 ms
//    after the last one that ended a period (migration_bitmap_sync). The
//    per-sync new_dirty is the difference within a period, the value itself
//    after a period ended; a sync within a few ms of the border may be
//    attributed to the wrong side.
//  - migrate_pending: "pending size S max T (pre = P ...)", logged by
//    migration_iteration_run after each qemu_savevm_state_pending, i.e. right
//    after any sync ram_save_pending did: P is migration_dirty_pages x page
//    size, T the threshold_size (bandwidth x downtime-limit). The first one
//    after a sync gives that sync's dirty_pages and remaining_bytes; the final
//    sync of migration_completion has none (reported as -1).
//  - runstate_set, vm_state_notify, migration_completion_vm_stop,
//    savevm_state_complete_precopy, migrate_set_state: the switchover's steps.
// Leaves out: the other backends (simple, ftrace, dtrace), trace files from
// several runs in one file.
import { readFileSync } from 'node:fs';

/** Events run.ts enables on both QEMU processes (all exist in QEMU 7.2). */
export const TRACE_EVENTS = [
  'migration_bitmap_sync_start',
  'migration_bitmap_sync_end',
  'migrate_pending',
  'migrate_set_state',
  'migrate_transferred',
  'migration_throttle',
  'migration_completion_vm_stop',
  'savevm_state_complete_precopy',
  'vm_state_notify',
  'runstate_set',
] as const;

export interface TraceEvent {
  readonly tid: number;
  /** Wall-clock ms since the epoch. */
  readonly wall_ms: number;
  readonly name: string;
  readonly args: string;
}

const LINE = /^(\d+)@(\d+)\.(\d{6}):(\w+)\s?(.*)$/;

export function parseTraceLog(text: string): TraceEvent[] {
  const out: TraceEvent[] = [];
  for (const line of text.split('\n')) {
    const m = LINE.exec(line);
    if (!m) continue;
    out.push({ tid: Number(m[1]), wall_ms: Number(m[2]) * 1000 + Number(m[3]) / 1000, name: m[4]!, args: m[5] ?? '' });
  }
  return out;
}

export function readTraceLog(file: string): TraceEvent[] {
  try {
    return parseTraceLog(readFileSync(file, 'latin1'));
  } catch {
    return [];
  }
}

/** A number after `key` in an event's args ("dirty_pages 283", "pre = 8572928"). */
export function traceArg(e: TraceEvent, key: string): number | null {
  const m = new RegExp(`(?:^|[\\s(])${key}\\s*=?\\s*(-?\\d+)`).exec(e.args);
  return m ? Number(m[1]) : null;
}

/** One dirty-bitmap sync, in sim/migration/ram.ts SyncRecord's fields, plus what QEMU adds. */
export interface QemuSyncRecord {
  readonly n: number;
  readonly at_ns: number;
  /** Pages dirty in the migration bitmap after the sync (-1: not traced). */
  readonly dirty_pages: number;
  /** Pages the sync added. */
  readonly new_dirty: number;
  /** Bytes left to send after the sync (-1: not traced). */
  readonly remaining_bytes: number;
  /** ram.transferred at the sync, interpolated between query-migrate polls. */
  readonly transferred_bytes: number;
  /** migration_bitmap_sync_start to _end. */
  readonly duration_ns: number;
  /** RAMState.num_dirty_pages_period as traced. */
  readonly dirty_pages_period: number;
  /** threshold_size from the next migrate_pending (-1: none). */
  readonly threshold_bytes: number;
  /** During migration_completion (the VM stopped), not the iterative phase. */
  readonly in_completion: boolean;
}

export interface SyncTableInput {
  readonly events: readonly TraceEvent[];
  /** Wall-clock ms of the run's time zero. */
  readonly originWallMs: number;
  readonly pageSize: number;
  /** (t_ns, ram.transferred) from the polls, in time order. */
  readonly transferred: readonly { t_ns: number; bytes: number }[];
}

export function interpolate(points: readonly { t_ns: number; bytes: number }[], t: number): number {
  if (points.length === 0) return 0;
  if (t <= points[0]!.t_ns) return points[0]!.bytes;
  for (let i = 1; i < points.length; i++) {
    const b = points[i]!;
    if (t <= b.t_ns) {
      const a = points[i - 1]!;
      const f = b.t_ns === a.t_ns ? 1 : (t - a.t_ns) / (b.t_ns - a.t_ns);
      return Math.round(a.bytes + f * (b.bytes - a.bytes));
    }
  }
  return points[points.length - 1]!.bytes;
}

export function syncTable(input: SyncTableInput): QemuSyncRecord[] {
  const { events, originWallMs, pageSize } = input;
  const ns = (wall: number) => Math.round((wall - originWallMs) * 1e6);
  const out: QemuSyncRecord[] = [];
  let periodStartMs = -1;
  let prevPeriod = 0;
  let stopped = false;
  let setupAt = -1;
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!;
    if (e.name === 'migrate_set_state' && e.args.includes('setup')) setupAt = e.wall_ms;
    if (e.name === 'vm_state_notify' && /running 0/.test(e.args)) stopped = true;
    if (e.name === 'vm_state_notify' && /running 1/.test(e.args)) stopped = false;
    if (e.name !== 'migration_bitmap_sync_end') continue;
    const start = findBack(events, i, 'migration_bitmap_sync_start');
    const val = traceArg(e, 'dirty_pages') ?? 0;
    if (periodStartMs < 0) periodStartMs = setupAt >= 0 ? setupAt : e.wall_ms;
    const newDirty = val >= prevPeriod ? val - prevPeriod : val;
    // QEMU: the period ends (and num_dirty_pages_period is zeroed) at a sync
    // more than 1000 ms after the period began.
    if (e.wall_ms > periodStartMs + 1000) {
      periodStartMs = e.wall_ms;
      prevPeriod = 0;
    } else {
      prevPeriod = val;
    }
    let pendingPre = -1;
    let threshold = -1;
    for (let j = i + 1; j < events.length; j++) {
      const f = events[j]!;
      if (f.name === 'migration_bitmap_sync_start') break;
      if (f.name === 'migrate_pending') {
        pendingPre = traceArg(f, 'pre') ?? -1;
        threshold = traceArg(f, 'max') ?? -1;
        break;
      }
    }
    const at = ns(e.wall_ms);
    out.push({
      n: out.length + 1,
      at_ns: at,
      dirty_pages: pendingPre >= 0 ? Math.round(pendingPre / pageSize) : -1,
      new_dirty: newDirty,
      remaining_bytes: pendingPre,
      transferred_bytes: interpolate(input.transferred, at),
      duration_ns: start ? Math.round((e.wall_ms - start.wall_ms) * 1e6) : 0,
      dirty_pages_period: val,
      threshold_bytes: threshold,
      in_completion: stopped,
    });
  }
  return out;
}

function findBack(events: readonly TraceEvent[], i: number, name: string): TraceEvent | null {
  for (let j = i - 1; j >= 0 && j >= i - 50; j--) if (events[j]!.name === name) return events[j]!;
  return null;
}

/** The switchover's steps on the source, in ns from the run's time zero (-1: not seen). */
export interface SwitchoverSteps {
  /** runstate_set to finish-migrate: do_vm_stop begins (after downtime_start). */
  readonly stop_ns: number;
  /** vm_state_notify running 0: vCPUs paused, bdrv_drain_all next. */
  readonly paused_ns: number;
  /** migration_completion_vm_stop: drain and flush returned. */
  readonly vm_stop_ret_ns: number;
  readonly vm_stop_ret: number;
  /** savevm_state_complete_precopy: the final RAM pass and device state begin. */
  readonly complete_precopy_ns: number;
  /** migrate_set_state completed (or failed). */
  readonly end_ns: number;
  readonly end_state: string;
}

export function switchoverSteps(events: readonly TraceEvent[], originWallMs: number): SwitchoverSteps | null {
  const ns = (e: TraceEvent | undefined) => (e ? Math.round((e.wall_ms - originWallMs) * 1e6) : -1);
  // The last completion attempt (QEMU 7.2 makes one; a failed one resumes the source).
  let pausedIdx = -1;
  for (let i = events.length - 1; i >= 0; i--) {
    const e = events[i]!;
    if (e.name === 'vm_state_notify' && e.args.includes('finish-migrate') && /running 0/.test(e.args)) {
      pausedIdx = i;
      break;
    }
  }
  if (pausedIdx < 0) return null;
  const after = events.slice(pausedIdx);
  const before = events.slice(0, pausedIdx).reverse();
  const stop = before.find((e) => e.name === 'runstate_set' && e.args.includes('finish-migrate'));
  const ret = after.find((e) => e.name === 'migration_completion_vm_stop');
  const cp = after.find((e) => e.name === 'savevm_state_complete_precopy');
  const end = after.find((e) => e.name === 'migrate_set_state' && /completed|failed|cancelled/.test(e.args));
  return {
    stop_ns: ns(stop),
    paused_ns: ns(events[pausedIdx]),
    vm_stop_ret_ns: ns(ret),
    vm_stop_ret: ret ? traceArg(ret, 'ret') ?? 0 : 0,
    complete_precopy_ns: ns(cp),
    end_ns: ns(end),
    end_state: end ? end.args.replace(/^new state\s*/, '').trim() : '',
  };
}
