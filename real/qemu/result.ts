// The result of running a scenario on real QEMU, JSON-ready. Field names are
// the simulation's (sim/results.ts RunResult and MigrationResult,
// sim/migration/migration.ts QueryMigrate, sim/migration/ram.ts SyncRecord)
// wherever they mean the same thing; times in the migration section are ms
// as QEMU reports them, *_ns fields are ns from the run's time zero (the
// moment the guest's workload began, seen on the serial port).
// Leaves out: what a QEMU run cannot observe (per-handler latency, BQL
// tables, attribution chains).
import type { QemuSyncRecord, SwitchoverSteps } from './trace.ts';
import type { QueryMigrate } from '../../sim/migration/migration.ts';
import type { XbzrleStats } from '../../sim/migration/xbzrle.ts';
import type { PostcopyResult } from '../../sim/results.ts';
import type { MemoryCompare } from './verify.ts';
import type { NbdCounts, NbdRequestRecord } from './nbd-server.ts';

/** The simulation's QueryMigrate, from one query-migrate answer (QEMU has statuses the model lacks, e.g. pre-switchover). */
export type QemuQueryMigrate = Omit<QueryMigrate, 'status'> & { readonly status: string };

/** One query-migrate poll: when it was sent and answered (host time, ns from time zero). */
export interface QmpPoll {
  readonly sent_ns: number;
  /** -1: never answered (timed out or QEMU went away). */
  readonly answered_ns: number;
  readonly latency_ns: number;
  readonly status: string;
}

/** Today's migration features as a QEMU run measured them (the simulation's MigrationResult names). */
export interface QemuModernResult {
  /** Per channel, from multifd_send_thread_end: bytes (pages and packet headers), packets, pages. */
  multifd: { channels: number; transferred: number[]; packets: number[]; normal_pages: number[] } | null;
  /** From the destination's trace (each userfault request to its page's placement) and its postcopy-blocktime. */
  postcopy: (Pick<PostcopyResult, 'faults' | 'fault_latency_p50_ns' | 'fault_latency_p99_ns' | 'fault_latency_max_ns' | 'preempt'> & {
    started_at_ns: number;
    /** postcopy-blocktime: the vCPUs' time blocked on missing pages (-1: not reported). */
    stall_ns: number;
    /** Requests whose page was not placed before the trace ended. */
    unanswered: number;
  }) | null;
  dirty_tracking: 'log' | 'ring';
  /** kvm_dirty_ring_full events (0 for the log). */
  ring_full_exits: number;
  dirty_ring: { size: number; ring_full_exits: number; reaps: number; reaped_pages: number; reap_max_us: number; reap_hold_max_ns: number } | null;
  /** query-migrate's xbzrle-cache, under the simulation's names. */
  xbzrle: XbzrleStats | null;
}

export interface QemuMigrationResult extends QemuModernResult {
  /** Status at the end of the scenario's run (as the simulation reports it). */
  status: string;
  /** Status after latsim stopped the run (e.g. cancelled after a non-converging run). */
  final_status: string;
  'total-time': number;
  'setup-time': number;
  downtime: number;
  'expected-downtime': number;
  ram: QemuQueryMigrate['ram'] & { readonly 'downtime-bytes': number; readonly 'precopy-bytes': number; readonly 'pages-per-second': number };
  /** From the source's trace: the switchover's steps and the phases between them (ms). */
  switchover: SwitchoverSteps | null;
  downtime_phases: { stop: number; drain: number; flush: number; final_ram_and_device_state: number } | null;
  completion_attempts: number;
  rollbacks: number;
  verified: boolean;
  policy: string[];
  mode: string;
  fail_reason: string;
  cpu_throttle_percentage: number;
  /** cpu-throttle-percentage changes seen in the polls. */
  throttle: { t_ns: number; pct: number }[];
  /** migration_throttle trace events (QEMU raised the throttle). */
  throttle_events_ns: number[];
  iterations: QemuSyncRecord[];
  snapshots: QemuQueryMigrate[];
  transitions: { t_ns: number; from: string; to: string }[];
  /** What QEMU 7.2 cannot do of the scenario's migration section. */
  unsupported: string[];
}

export interface QemuRunResult {
  scenario: string;
  file: string;
  seed: number;
  backend: 'qemu';
  /** ok; invariant (memory differs at switchover); error (the run failed). */
  outcome: 'ok' | 'invariant' | 'error';
  error: string | null;
  /**
   * What failed, for exit codes: guest (QEMU or the payload did not boot or
   * run before the migration), migration (anything from the migration's set-up
   * on, a `failed` status included, and the guest not resuming on the
   * destination); null when nothing did.
   */
  failure: 'guest' | 'migration' | null;
  wall_ms: number;
  qemu: {
    version: string;
    package: string;
    binary: string;
    /** Spawn to the guest's workload start. */
    boot_ms: number;
    memory_bytes: number;
    args: { source: string[]; destination: string[] };
  };
  guest: {
    target_rate: number;
    /** Page writes/s the payload achieved on the source (from its status lines). */
    achieved_rate: number;
    pages_written: number;
    lost_ticks: number;
    tsc_khz: number;
    heartbeat_ms: number;
    /** Longest heartbeat gap on the source before switchover (host arrival times). */
    source_gap_max_ms: number;
    source_gap_max_at_ns: number;
    /** Last source heartbeat to first destination heartbeat, less the memory check (-1: no switchover). */
    switchover_stall_ms: number;
    /** The longest heartbeat gap of the run, whichever side (the guest-visible stall). */
    vcpu_stall_max_ms: number;
    /** The same in ns, under the simulation's name (RunResult.guest.vcpu_stall_max_ns). */
    vcpu_stall_max_ns: number;
    /** Page writes of the whole run, under the simulation's name (pages_written). */
    dirty_writes: number;
    status: { t_ns: number; side: 'source' | 'destination'; rate: number; pages: number; lost_ticks: number }[];
    destination_achieved_rate: number;
    /** The guest's own disk counters (its last status line): what it saw complete or fail. */
    disk: { writes: number; reads: number; flushes: number; errors: number; flush_max_us: number } | null;
    plan: { append: string; unsupported: readonly string[] };
  };
  qmp: {
    polls: number;
    /** Longest time a query-migrate waited for its answer. */
    poll_latency_max_ms: number;
    poll_latency_max_at_ns: number;
    /** Longest time between two answers to the source's polls. */
    answer_gap_max_ms: number;
    /** Polls that waited longer than the poll interval. */
    late_polls: number;
    series: QmpPoll[];
  };
  block: {
    name: string;
    reads: number;
    writes: number;
    flushes: number;
    errors: number;
    counts: NbdCounts;
    flush_max_ns: number;
    faults_fired: string[];
    /** Flushes and faulted requests, in arrival order. */
    requests: NbdRequestRecord[];
  }[];
  migration: QemuMigrationResult | null;
  verify: (MemoryCompare & { check_ms: number }) | null;
  /** The guest's serial lines and QEMU's stderr, for post-mortems (tails). */
  logs: { source_stderr: string; destination_stderr: string };
}
