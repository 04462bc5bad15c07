// Dirty-limit, QEMU 8.1's migration capability over softmmu/dirtylimit.c:
// once the guest dirties faster than the migration moves (the trigger of
// auto-converge, migration_trigger_throttle), migration_dirty_limit_guest
// gives every vCPU the quota vcpu-dirty-limit (MB/s). The dirtyrate-stat
// thread then measures, every x-vcpu-dirty-limit-period, each vCPU's dirty
// rate from the entries reaped from its dirty ring (a dirty-log sync under
// the BQL ends each period), and dirtylimit_adjust_throttle moves the vCPU's
// throttle_us_per_full towards the quota: a vCPU whose ring fills sleeps that
// long after its KVM_EXIT_DIRTY_RING_FULL (dirtylimit_vcpu_execute). A vCPU
// whose ring never fills is never throttled. The integer arithmetic is
// QEMU's (MB/s rounded down, microseconds).
// Leaves out: the QMP commands set-vcpu-dirty-limit / cancel-vcpu-dirty-limit
// outside migration, per-vCPU quotas, calc-dirty-rate.
import type { Co } from '../platform.ts';
import type { Machine } from '../machine.ts';
import type { DirtyLimiter, KvmDirtyRing } from '../guest/dirty-ring.ts';

/** QEMU: DIRTYLIMIT_TOLERANCE_RANGE (MB/s): closer than this to the quota, the throttle stays. */
export const DIRTYLIMIT_TOLERANCE_RANGE = 25;
/** QEMU: DIRTYLIMIT_LINEAR_ADJUSTMENT_PCT: further than this from the quota, the throttle moves in proportion. */
export const DIRTYLIMIT_LINEAR_ADJUSTMENT_PCT = 50;
/** QEMU: DIRTYLIMIT_THROTTLE_PCT_MAX: the longest sleep is 99 times the ring-full time. */
export const DIRTYLIMIT_THROTTLE_PCT_MAX = 99;

export interface DirtyLimitVcpu {
  /** QEMU: VcpuDirtyLimitState.quota (MB/s) and enabled. */
  quota: number;
  enabled: boolean;
  /** QEMU: vcpu_dirty_rate_stat's rate of this vCPU (MB/s), as last measured. */
  currentRate: number;
  /** QEMU: CPUState.throttle_us_per_full. */
  throttleUsPerFull: number;
  /** dirtylimit_vcpu_execute sleeps and their total. */
  sleeps: number;
  sleepNs: number;
}

export class DirtyLimit implements DirtyLimiter {
  readonly vcpus: DirtyLimitVcpu[];
  /** When migration_dirty_limit_guest first put the limit in service; -1: never. */
  startNs = -1;
  /** Periods the dirtyrate-stat thread measured. */
  periods = 0;
  private service = false;
  private running = false;
  /** QEMU: the static quota_dirtyrate of migration_dirty_limit_guest. */
  private quotaSet = 0;
  /** QEMU: the static max_dirtyrate of dirtylimit_dirty_ring_full_time (the highest rate ever seen). */
  private maxDirtyRate = 0;
  /** query-migrate's two values at the end of the last period the vCPUs ran through. */
  private last = { throttle: 0, ringFull: 0 };
  /** Those values when the limit was put out of service (query-migrate's last answer while it ran). */
  private final: { throttle: number; ringFull: number } | null = null;

  constructor(
    private readonly machine: Machine,
    private readonly ring: KvmDirtyRing,
    /** vcpu-dirty-limit (MB/s) and x-vcpu-dirty-limit-period. */
    readonly spec: { readonly vcpu_dirty_limit: number; readonly period_ns: number },
    private readonly pageSize: number,
  ) {
    this.vcpus = machine.vcpus.map(() => ({ quota: 0, enabled: false, currentRate: 0, throttleUsPerFull: 0, sleeps: 0, sleepNs: 0 }));
  }

  inService(): boolean {
    return this.service;
  }

  /** QEMU: dirtylimit_vcpu_execute: sleep only while in service, for an enabled vCPU with a throttle. */
  throttleNs(vcpu: number): number {
    const v = this.vcpus[vcpu]!;
    return this.service && v.enabled && v.throttleUsPerFull > 0 ? v.throttleUsPerFull * 1000 : 0;
  }

  slept(vcpu: number, ns: number): void {
    const v = this.vcpus[vcpu]!;
    v.sleeps++;
    v.sleepNs += ns;
  }

  /** QEMU 8.1: migration_dirty_limit_guest (migration/ram.c): every vCPU's quota, once (again if the parameter changed). */
  migrationDirtyLimitGuest(): void {
    if (this.service && this.quotaSet === this.spec.vcpu_dirty_limit) return;
    this.quotaSet = this.spec.vcpu_dirty_limit;
    this.setAll(this.quotaSet);
    this.machine.trace.event(this.machine.platform.current().name, 'migration_dirty_limit_guest', { dirtyrate: this.quotaSet });
  }

  /** QEMU: qmp_set_vcpu_dirty_limit for all vCPUs: dirtylimit_init when not in service, then dirtylimit_set_all. */
  private setAll(quota: number): void {
    if (!this.service) this.init();
    const thread = this.machine.platform.current().name;
    this.vcpus.forEach((v, i) => {
      v.quota = quota;
      v.enabled = true;
      this.machine.trace.event(thread, 'dirtylimit_set_vcpu', { cpu_index: i, quota });
    });
  }

  /** QEMU: dirtylimit_init: the state, and the dirtyrate-stat thread. */
  private init(): void {
    this.service = true;
    this.final = null;
    this.ring.limiter = this;
    if (this.startNs < 0) this.startNs = this.machine.platform.nowNs();
    if (!this.running) {
      this.running = true;
      this.machine.platform.spawn('dirtyrate-stat', () => this.statThread());
    }
  }

  /**
   * QEMU: qmp_cancel_vcpu_dirty_limit for all vCPUs, then dirtylimit_cleanup
   * (migration_cancel; the model also ends it with the migration, since the
   * destination runs on this machine). The values reported afterwards are
   * those of its last period with the vCPUs running.
   */
  cancel(): void {
    if (!this.service) return;
    this.final = { ...this.last };
    for (const v of this.vcpus) v.enabled = false;
    this.service = false;
    this.running = false;
    this.ring.limiter = null;
  }

  /** QEMU: vcpu_dirty_rate_stat_thread: measure every period, then dirtylimit_process. */
  private *statThread(): Co<void> {
    const m = this.machine;
    const p = m.platform;
    while (this.running) {
      // QEMU: vcpu_calculate_dirtyrate: the reaped entries of each vCPU over the period.
      const start = [...this.ring.dirtyPages];
      yield* p.sleep(this.spec.period_ns);
      if (!this.running) break;
      // QEMU: global_dirty_log_sync: memory_global_dirty_log_sync under the BQL.
      yield* m.bql.lock('global_dirty_log_sync');
      yield* this.ring.logSyncGlobal();
      m.bql.unlock();
      if (!this.running) break;
      const periodMs = Math.round(this.spec.period_ns / 1e6);
      this.vcpus.forEach((v, i) => {
        const pages = this.ring.dirtyPages[i]! - start[i]!;
        // QEMU: do_calculate_dirtyrate: whole MiB, per second.
        v.currentRate = Math.floor((Math.floor((pages * this.pageSize) / 2 ** 20) * 1000) / periodMs);
      });
      this.periods++;
      if (!this.service) continue;
      this.process();
      const ringFull = this.ringFullTime();
      if (ringFull > 0 || this.last.ringFull === 0) this.last = { throttle: this.throttleTimePerRound(), ringFull };
    }
  }

  /** QEMU: dirtylimit_process: adjust each enabled vCPU. */
  private process(): void {
    this.vcpus.forEach((v, i) => {
      if (!v.enabled) return;
      // QEMU: dirtylimit_adjust_throttle: nothing to do within the tolerance.
      if (Math.abs(v.quota - v.currentRate) <= DIRTYLIMIT_TOLERANCE_RANGE) return;
      this.setThrottle(i, v);
    });
  }

  /** QEMU: dirtylimit_set_throttle (softmmu/dirtylimit.c) */
  private setThrottle(i: number, v: DirtyLimitVcpu): void {
    const quota = v.quota;
    const current = v.currentRate;
    if (current === 0) {
      v.throttleUsPerFull = 0;
      return;
    }
    const ringFullUs = this.dirtyRingFullTime(current);
    const lo = Math.min(quota, current);
    const hi = Math.max(quota, current);
    if (Math.floor(((hi - lo) * 100) / hi) > DIRTYLIMIT_LINEAR_ADJUSTMENT_PCT) {
      // Far from the quota: a sleep in proportion to how far.
      const base = quota < current ? current : quota;
      const sleepPct = Math.floor((Math.abs(current - quota) * 100) / base);
      const throttleUs = Math.floor((ringFullUs * sleepPct) / (100 - sleepPct));
      v.throttleUsPerFull += quota < current ? throttleUs : -throttleUs;
      this.machine.trace.event('dirtyrate-stat', 'dirtylimit_throttle_pct', { cpu_index: i, pct: sleepPct, time_us: throttleUs });
    } else {
      v.throttleUsPerFull += (quota < current ? 1 : -1) * Math.floor(ringFullUs / 10);
    }
    v.throttleUsPerFull = Math.max(0, Math.min(v.throttleUsPerFull, ringFullUs * DIRTYLIMIT_THROTTLE_PCT_MAX));
  }

  /** QEMU: dirtylimit_dirty_ring_full_time: the ring's memory over the highest dirty rate yet seen, in us. */
  private dirtyRingFullTime(rate: number): number {
    if (rate > this.maxDirtyRate) this.maxDirtyRate = rate;
    const ringMiB = Math.floor((this.ring.size * this.pageSize) / 2 ** 20);
    return Math.floor((ringMiB * 1_000_000) / this.maxDirtyRate);
  }

  /** QEMU: dirtylimit_throttle_time_per_round: the largest throttle_us_per_full (query-migrate's dirty-limit-throttle-time-per-round). */
  throttleTimePerRound(): number {
    if (!this.service) return this.final?.throttle ?? 0;
    return this.vcpus.reduce((m, v) => Math.max(m, v.throttleUsPerFull), 0);
  }

  /**
   * QEMU: dirtylimit_ring_full_time: the ring-full time at the vCPUs' mean
   * dirty rate, in us (query-migrate's dirty-limit-ring-full-time); 0 when
   * the guest dirties nothing.
   */
  ringFullTime(): number {
    if (!this.service) return this.final?.ringFull ?? 0;
    const running = this.machine.vcpus.filter((v) => !v.stopped);
    const sum = running.reduce((s, v) => s + this.vcpus[v.index]!.currentRate, 0);
    if (sum === 0 || running.length === 0) return 0;
    return this.dirtyRingFullTime(Math.floor(sum / running.length));
  }
}
