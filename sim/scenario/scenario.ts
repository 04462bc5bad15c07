// A scenario as the model consumes it: every time in integer nanoseconds,
// every size in bytes, every rate per second. The YAML file format, its units
// and its validation live in cli/scenario-file.ts; this is the checked result.
import type { Dist } from '../util/dist.ts';
import type { RunState } from '../runstate.ts';
import type { ClockName } from '../main-loop/timer.ts';

export interface Scenario {
  readonly name: string;
  readonly file: string;
  readonly seed: number;
  readonly duration_ns: number;
  readonly threshold_ns: number;
  readonly limits: { readonly max_events: number; readonly max_time_ns: number };
  readonly vm: VmSpec;
  readonly main_loop: { readonly handlers: readonly SyntheticHandlerSpec[] };
  readonly guest: GuestSpec;
  readonly devices: DevicesSpec;
  readonly faults: readonly FaultSpec[];
  readonly migration: MigrationSpec | null;
  readonly expect: readonly Budget[];
  /** Handlers (by name, substring) that must show up over the threshold. */
  readonly expect_slow: readonly string[];
  /** The MigrationStatus the run must end in, if any. */
  readonly expect_migration_status: string | null;
  /** The recorded trace fingerprint, when the file carries one. */
  readonly fingerprint: string | null;
}

export interface VmSpec {
  readonly memory_bytes: number;
  readonly page_size: number;
  readonly vcpus: number;
  readonly run_state: RunState;
  /** Fraction of pages holding data at start (the rest are zero pages). */
  readonly populated: number;
}

/** A handler that stands for real work on the main loop. */
export interface SyntheticHandlerSpec {
  readonly name: string;
  /** fd: an iohandler; aio-fd: a handler in qemu_aio_context; bh; timer. */
  readonly type: 'fd' | 'aio-fd' | 'bh' | 'timer';
  readonly cost: Dist;
  /** Time between activations. */
  readonly interval: Dist;
  readonly clock: ClockName;
  /** First activation (default: one interval after start). */
  readonly start_ns: number | null;
}

export type DirtyPattern = 'uniform' | 'hotset' | 'sequential' | 'increment';

export interface WorkloadSpec {
  readonly vcpus: readonly number[];
  readonly dirty: {
    readonly rate: number;
    readonly pattern: DirtyPattern;
    /** First page and page count of the range the workload writes. */
    readonly first_page: number;
    readonly pages: number;
    readonly hot_pages: number;
    /** Fraction of writes that go outside the hot set (hotset pattern). */
    readonly cold_fraction: number;
  } | null;
  readonly exits: { readonly rate: number; readonly cost: Dist; readonly kind: 'pio' | 'mmio' } | null;
}

export interface GuestSpec {
  readonly workloads: readonly WorkloadSpec[];
  readonly userspace: { readonly quantum_ns: number; readonly tolerance_ns: number };
  /** Guest time slice between checks of the workload (the model's granularity). */
  readonly slice_ns: number;
  /** Guest kernel time to answer a ping once its vCPU runs. */
  readonly ping_reply_cost_ns: number;
}

export interface NetSpec {
  readonly name: string;
  readonly vcpu: number;
  readonly host_notifier_cost: Dist;
  readonly tx_bh_cost: Dist;
  readonly rx_cost: Dist;
  readonly tx_burst: number;
  readonly peer: {
    readonly ping_interval_ns: number;
    readonly ping_timeout_ns: number;
    readonly wire_latency_ns: number;
    readonly background_rate: number;
  };
}

export interface BlkSpec {
  readonly name: string;
  readonly vcpu: number;
  readonly queue_depth: number;
  readonly read: Dist;
  readonly write: Dist;
  readonly flush: Dist;
  readonly request_cost: Dist;
  /** QEMU's werror/rerror: report the error to the guest, or stop the VM. */
  readonly on_error: 'report' | 'stop';
  readonly io: {
    readonly pattern: 'random' | 'sequential';
    readonly rate: number;
    readonly write_fraction: number;
    readonly flush_every: number;
    readonly sectors: number;
    readonly request_bytes: number;
  };
  /** Interval at which a stalled backend's fd still wakes aio_poll (NFS retries), 0 for never. */
  readonly retry_interval_ns: number;
}

export interface DevicesSpec {
  readonly net: readonly NetSpec[];
  readonly blk: readonly BlkSpec[];
}

export interface FaultSpec {
  readonly name: string;
  readonly device: string;
  readonly kind: 'stall' | 'slow-flush' | 'io-error' | 'handler-cost';
  readonly at_ns: number;
  readonly for_ns: number;
  /** slow-flush: the latency of each flush in the window. */
  readonly latency: Dist | null;
  /** io-error: which operations fail. */
  readonly ops: readonly ('read' | 'write' | 'flush')[];
}

export type MigrationPolicy = 'legacy' | 'flush-timeout' | 'min-interval' | 'abort-on-downtime' | 'auto-converge';

export interface MigrationSpec {
  readonly start_ns: number;
  readonly policy: readonly MigrationPolicy[];
  /** thread (QEMU >= 1.3) or main-loop (the 2012 buffered-file timer). */
  readonly mode: 'thread' | 'main-loop';
  readonly max_bandwidth: number;
  readonly downtime_limit_ns: number;
  readonly link: { readonly bandwidth: number; readonly latency_ns: number };
  readonly max_iterations: number;
  readonly flush_timeout_ns: number;
  readonly min_interval_ns: number;
  readonly abort_downtime_ns: number;
  readonly auto_converge: { readonly initial: number; readonly increment: number; readonly max: number; readonly trigger: number };
  readonly device_state_bytes: number;
  readonly page_header_bytes: number;
  /** Planted faults for checking the checkers (tests only). */
  readonly bug: 'none' | 'sync-drops-new-bits' | 'skip-final-flush';
}

export type BudgetKey =
  | 'main_loop_block'
  | 'bql_wait'
  | 'bql_hold'
  | 'vcpu_stall'
  | 'downtime'
  | 'ping_rtt_p99'
  | 'ping_lost'
  | 'userspace_progress'
  | 'userspace_gap'
  | 'migration_time'
  | 'completion_attempts'
  | 'rollbacks';

export interface Budget {
  /** The name as written: max_downtime, min_main_loop_block, ... */
  readonly name: string;
  readonly key: BudgetKey;
  readonly bound: 'max' | 'min';
  readonly limit: number;
  /** Unit of limit and value: ns, count. */
  readonly unit: 'ns' | 'count';
}
