// Live migration (precopy) from start to switchover. The migration thread
// (QEMU >= 1.3; or, in `main-loop` mode, a 100 ms timer on the main loop as
// 2012's buffered file did) runs migration_iteration_run: when the remaining
// data is under threshold_size (bandwidth x downtime-limit) it syncs the
// dirty bitmap under the BQL and, if nothing is pending or it still fits and
// the statechart allows, runs migration_completion; otherwise
// ram_save_iterate sends pages for up to MAX_WAIT (50 ms) within the rate
// limit. QEMU 1.1 (the `expected-time` rule) synced on every call instead and
// completed when remaining / (bandwidth of the call) fit the downtime limit.
// The scenario's QEMU version profile (machine.qemu) picks the rule, when the
// `device` status is entered, and whether auto-converge syncs every 5 s. Completion takes the BQL,
// stops the VM (which drains and flushes all disks: the talk's 40 s select),
// sends the last dirty pages and the device state, checks the destination,
// and the destination starts. Policies decide what a slow flush does:
// legacy waits forever; flush-timeout gives up and rolls back to active;
// min-interval holds off the next attempt; abort-on-downtime fails the
// migration and the source resumes; auto-converge throttles vCPUs.
// A stream that breaks (a MigrationStreamError from the destination, on KVM
// only) fails the migration as QEMU's migrate_set_error does; if the VM was
// stopped for completion it runs again, as after QEMU's
// migration_iteration_finish, unless the destination had been told to start.
// How the sync reads dirty pages follows the VM: KVM_GET_DIRTY_LOG (with
// manual protection's chunked clearing, ram.ts), or the dirty ring, whose
// rings kvm_dirty_ring_flush reaps first; dirty-limit (QEMU 8.1,
// dirty-limit.ts) is the other answer to a guest that dirties too fast.
// The destination is an interface: in simulation a model in this process, on
// KVM a second process at the end of a TCP stream (the same code drives both).
// multifd (multifd.ts): the channel threads start with the migration, and
// RAM save syncs with them at setup, per section or per round, and at
// completion; xbzrle (xbzrle.ts) is RAM save's. Both run in simulation only.
// With postcopy (postcopy.ts) migrate-start-postcopy turns an iteration with
// much still pending into postcopy_start: the VM stops, the last sync, the
// discard bitmap and the device state go out, and the destination runs the
// guest while the rest follows; the downtime is the switch's. A link-break
// fault fails a pre-copy migration at its next write.
// Leaves out: the return path in pre-copy, cancellation from QMP.
import type { Machine, StopPhases } from '../machine.ts';
import type { GuestPort } from '../guest/guest.ts';
import { GuestRam } from '../guest/ram.ts';
import type { Devices } from '../devices/devices.ts';
import type { Co, Platform } from '../platform.ts';
import type { MigrationSpec, QemuSpec } from '../scenario/scenario.ts';
import { TIMEOUT } from '../block/block-layer.ts';
import { InvariantError } from '../invariant.ts';
import { QEMUClockType, type QEMUTimer } from '../main-loop/timer.ts';
import { DEST_START_NS, Destination, MigrationStreamError, type MigrationDestination } from './destination.ts';
import { BUFFER_DELAY_NS, MigrationLink } from './link.ts';
import { MultifdSend } from './multifd.ts';
import { RamState } from './ram.ts';
import { Xbzrle } from './xbzrle.ts';
import { Postcopy } from './postcopy.ts';
import { DirtyLimit } from './dirty-limit.ts';
import {
  mayComplete,
  startMigrationActor,
  type MigrationActor,
  type MigrationStatus,
} from './statechart.ts';

/** QEMU: MAX_WAIT (migration/ram.c): ram_save_iterate returns after 50 ms. */
export const WAIT_NS_MAX = 50_000_000;
/** Bytes sent between checks of the rate limit and MAX_WAIT. */
export const SEND_CHUNK_BYTES = 1 << 20;
/** QEMU: the be64 RAM_SAVE_FLAG_EOS after each iteration's pages. */
export const EOS_BYTES = 8;
/** QEMU 9.2: CPU_THROTTLE_DIRTY_SYNC_TIMESLICE_MS. */
export const PERIODIC_SYNC_NS = 5_000_000_000;
/**
 * Guests up to this many pages (1 GiB of 4 KiB pages, the fuzzer's) get the
 * dirty-tracking check after every sync when they use the dirty ring or
 * manual protection: no page the destination lacks may be missing from the
 * migration bitmap, the log and the rings.
 */
export const TRACKING_CHECK_PAGES_MAX = 2 ** 18;
export { DEST_START_NS };

export interface DowntimePhases {
  readonly stop_ns: number;
  readonly drain_ns: number;
  readonly flush_ns: number;
  readonly final_ram_ns: number;
  readonly device_state_ns: number;
  readonly resume_ns: number;
}

export interface CompletionAttempt {
  readonly n: number;
  readonly at_ns: number;
  /** postcopy: the switch to postcopy (its downtime is the migration's). */
  readonly outcome: 'completed' | 'rollback' | 'failed' | 'postcopy';
  readonly downtime_ns: number;
  readonly phases: DowntimePhases;
  readonly reason: string;
}

/** A query-migrate-shaped snapshot (times in ms, as QEMU reports them). */
export interface QueryMigrate {
  readonly t_ns: number;
  readonly status: MigrationStatus;
  readonly 'total-time': number;
  readonly 'expected-downtime': number;
  readonly 'cpu-throttle-percentage': number;
  /** QEMU 8.1: while dirty-limit is in service (us). */
  readonly 'dirty-limit-throttle-time-per-round'?: number;
  readonly 'dirty-limit-ring-full-time'?: number;
  readonly ram: {
    readonly transferred: number;
    readonly remaining: number;
    readonly total: number;
    readonly duplicate: number;
    readonly normal: number;
    readonly 'dirty-pages-rate': number;
    readonly mbps: number;
    readonly 'dirty-sync-count': number;
  };
}

/** Snapshots kept at most (one per 100 ms window: over 2.7 hours of migration). */
export const SNAPSHOTS_MAX = 100_000;

export class Migration<D extends MigrationDestination = Destination> {
  readonly link: MigrationLink;
  readonly dest: D;
  readonly ram: RamState;
  /** The multifd channels (QEMU: multifd_send_state), or null without the capability. */
  readonly multifd: MultifdSend | null;
  readonly attempts: CompletionAttempt[] = [];
  readonly snapshots: QueryMigrate[] = [];
  readonly transitions: { t_ns: number; from: MigrationStatus; to: MigrationStatus }[] = [];
  actor: MigrationActor | null = null;
  /** Postcopy, when the scenario turns it on. */
  readonly postcopy: Postcopy | null = null;
  status: MigrationStatus = 'none';
  startNs = -1;
  setupNs = 0;
  endNs = -1;
  downtimeNs = 0;
  downtimePhases: DowntimePhases | null = null;
  verified = false;
  failReason = '';
  /** Bytes per second, QEMU's estimate from the last window. */
  bandwidth = 0;
  /** Source stop to the destination's start: what the guest saw (QEMU's downtime ends at the last write). */
  guestDowntimeNs = 0;
  thresholdBytes = 0;
  expectedDowntimeNs = 0;
  private windowXferStart = 0;
  private readonly p: Platform;
  private readonly policy: ReadonlySet<string>;
  private readonly qemu: QemuSpec;
  private timer: QEMUTimer | null = null;
  /** QEMU 8.1: the dirty-limit capability's state, with that policy. */
  readonly dirtyLimit: DirtyLimit | null;
  /** QEMU 9.2: cpu_throttle_dirty_sync_timer, while auto-converge runs. */
  private periodicSync: QEMUTimer | null = null;
  private periodicSyncPrev = 0;

  constructor(
    private readonly machine: Machine,
    private readonly guest: GuestPort,
    private readonly devices: Devices,
    readonly spec: MigrationSpec,
    /** The far end; by default the in-process model of the destination. */
    dest?: D,
  ) {
    this.p = machine.platform;
    this.qemu = machine.qemu;
    this.policy = new Set(spec.policy);
    // Without one, D is its default, the model. Its RAM is preallocated with
    // -mem-prealloc, unless postcopy discards it at the advise (QEMU 7.2:
    // postcopy_ram_incoming_init -> init_range -> ram_discard_range).
    const prealloc = spec.destination_prealloc && spec.postcopy === null;
    this.dest = dest ?? (new Destination(this.p, modelRam(guest), this.qemu.host, prealloc) as MigrationDestination as D);
    this.link = new MigrationLink(this.p, spec.link.bandwidth, spec.link.latency_ns, spec.max_bandwidth, this.dest.wire);
    // qemu.host.cores: while the VM runs its vCPUs hold a core each; with one
    // left (or none), the migration thread and the destination take turns.
    const cores = this.qemu.host.cores;
    if (cores > 0 && cores - machine.vcpus.length <= 1) this.link.sharedCore = () => machine.runstate.running;
    this.multifd = spec.multifd
      ? new MultifdSend(this.p, this.link, spec.multifd, this.qemu.profile, this.qemu.host, guest.ram, this.dest, machine.trace)
      : null;
    const xbzrle = spec.xbzrle ? new Xbzrle(spec.xbzrle.cache_size, simulatedRam(guest, 'xbzrle'), this.qemu.host) : null;
    this.ram = new RamState(guest.ram, this.dest, spec, this.qemu.host, this.multifd, xbzrle);
    const ring = guest.kvmDirtyRing;
    this.dirtyLimit = this.policy.has('dirty-limit') && ring ? new DirtyLimit(machine, ring, spec.dirty_limit, guest.ram.pageSize) : null;
    // QEMU: migrate_init sets expected_downtime to the downtime limit until the first estimate.
    this.expectedDowntimeNs = spec.downtime_limit_ns;
    if (spec.link_breaks.length > 0) {
      const link = this.link;
      link.breaks = spec.link_breaks;
      link.guard = () => {
        const b = link.breakBetween(link.connectedAtNs, this.p.nowNs());
        if (b) throw new MigrationStreamError(`the migration stream broke (${b.name})`);
      };
    }
    if (spec.postcopy) this.postcopy = this.newPostcopy();
  }

  /** Postcopy runs against the model's destination (real mode refuses it). */
  private newPostcopy(): Postcopy {
    if (!(this.dest instanceof Destination) || !(this.guest.ram instanceof GuestRam)) {
      throw new Error('migration.postcopy needs the simulation\'s destination and guest memory');
    }
    const finished = () => this.finished;
    return new Postcopy({
      machine: this.machine, link: this.link, ram: this.ram, dest: this.dest, guestRam: this.guest.ram,
      disks: this.devices.blk, spec: this.spec, profile: this.qemu.profile, host: this.qemu.host,
      event: (type) => {
        if (type === 'COMPLETED') {
          this.verified = true;
          this.snapshot();
        }
        this.actor!.send({ type });
      },
      fail: (reason) => this.fail(reason),
      updateCounters: () => { this.updateCountersIfDue(); },
      destinationStarted: (atNs) => this.postcopyDestinationStarted(atNs),
      get finished() {
        return finished();
      },
    });
  }

  /** Arms the start of the migration at spec.start_ns. */
  schedule(): void {
    this.p.callAfter(this.spec.start_ns, () => this.begin());
  }

  /** QEMU: qmp_migrate -> migrate_fd_connect: status setup, then the migration thread. */
  private begin(): void {
    this.startNs = this.p.nowNs();
    this.link.connectedAtNs = this.startNs;
    this.postcopy?.armStartAt();
    const rollback = this.policy.has('flush-timeout');
    const minIntervalMs = this.policy.has('min-interval') ? this.spec.min_interval_ns / 1e6 : 0;
    const deviceStatus = this.qemu.profile.device_status;
    this.actor = startMigrationActor(this.p, { rollback, minIntervalMs, deviceStatus }, (to, from) => this.onStatus(to, from));
    this.actor.send({ type: 'START' });
    // QEMU: multifd_save_setup, from migrate_fd_connect.
    this.multifd?.start();
    if (this.spec.mode === 'thread') {
      this.p.spawn('migration', () => this.threadFn());
    } else {
      const tlg = this.machine.mainLoop.tlg;
      this.timer = tlg.timerNew(QEMUClockType.REALTIME, 'migration.buffered_rate_tick', () => this.mainLoopTick());
      this.timer.mod(this.p.nowNs());
    }
  }

  private onStatus(to: MigrationStatus, from: MigrationStatus): void {
    this.status = to;
    const now = this.p.nowNs();
    this.transitions.push({ t_ns: now, from, to });
    const thread = this.p.current().name;
    this.machine.trace.event(thread, 'migrate_set_state', { new_state: to });
    // The QMP event QEMU emits on every status change.
    this.machine.trace.event(thread, 'MIGRATION', { status: to });
    if (to === 'completed' || to === 'failed' || to === 'cancelled') {
      this.endNs = now;
      this.throttleStop();
      this.onEnd?.(to);
    }
  }

  /** Called once the migration reaches a final status (completed, failed or cancelled). */
  onEnd: ((status: MigrationStatus) => void) | null = null;

  /** QEMU: cpu_throttle_stop (migration_iteration_finish): the vCPUs run unthrottled again; dirty-limit ends too. */
  private throttleStop(): void {
    this.periodicSync?.del();
    this.dirtyLimit?.cancel();
    if (this.ram.throttlePct === 0) return;
    this.guest.setThrottle(0);
    this.machine.trace.event(this.p.current().name, 'cpu_throttle_set', { new_throttle_pct: 0 });
  }

  private send(type: 'SETUP_DONE' | 'CONVERGED' | 'VM_STOPPED' | 'COMPLETED' | 'COMPLETION_TIMEOUT'): void {
    this.actor!.send({ type });
  }

  private fail(reason: string): void {
    this.failReason = reason;
    this.actor!.send({ type: 'FAIL', reason });
  }

  private get finished(): boolean {
    return this.status === 'completed' || this.status === 'failed' || this.status === 'cancelled';
  }

  /** QEMU: migration_thread (migration/migration.c) */
  private *threadFn(): Co<void> {
    try {
      yield* this.setup('migration_thread');
      while (!this.finished) {
        if (this.postcopy?.switched) {
          yield* this.postcopy.run();
          break;
        }
        if (!this.link.rateExceeded()) {
          const progressed = yield* this.iterationRun();
          if (this.finished) break;
          if (!progressed) yield* this.p.sleep(Math.max(1, this.link.windowLeftNs()));
        }
        yield* this.rateLimit();
      }
    } catch (e) {
      this.streamFailed(e);
    }
    this.ram.cleanup();
  }

  /**
   * QEMU: migration_detect_error -> migrate_set_error, then
   * MIGRATION_STATUS_FAILED. Outside completion the VM is still running
   * (migration_completion handles a break while it is stopped). Rethrows
   * anything that is not a broken stream.
   */
  private streamFailed(e: unknown): void {
    if (!(e instanceof MigrationStreamError)) throw e;
    this.machine.trace.event(this.p.current().name, 'migrate_set_error', { error: e.message });
    this.fail(e.message);
  }

  /** 2012's migrate_fd_put_ready from the buffered file's timer, on the main loop under the BQL. */
  private *mainLoopTick(): Co<void> {
    const timer = this.timer!;
    if (this.status === 'setup') yield* this.setup(null);
    if (this.qemu.profile.convergence === 'expected-time' && !this.link.socketFull()) this.link.resetWindow();
    this.updateCountersIfDue();
    try {
      if (this.qemu.profile.convergence === 'expected-time') {
        // QEMU 1.1: one migrate_fd_put_ready -> ram_save_live(stage 2) per tick or writable socket.
        yield* this.putReady11();
      } else {
        // QEMU 1.2: migrate_fd_put_ready iterates until the rate limit or MAX_WAIT.
        const t0 = this.p.nowNs();
        const attempts = this.attempts.length;
        while (!this.link.rateExceeded() && !this.finished && this.p.nowNs() - t0 < WAIT_NS_MAX) {
          if (!(yield* this.iterationRun())) break;
          // After a completion attempt the main loop gets to run before the next tick.
          if (this.attempts.length !== attempts) break;
        }
      }
    } catch (e) {
      this.streamFailed(e);
    }
    if (this.finished) {
      this.ram.cleanup();
      return;
    }
    if (this.qemu.profile.convergence === 'expected-time') {
      // QEMU 1.1: buffered_rate_tick every 100 ms (it resets the byte count), or the
      // write notify once a full socket takes data again.
      timer.mod(this.p.nowNs() + (this.link.socketFull() ? this.link.socketRoomNs() : BUFFER_DELAY_NS));
      return;
    }
    timer.mod(this.p.nowNs() + Math.max(1, this.link.windowLeftNs()));
  }

  /**
   * QEMU 1.1: migrate_fd_put_ready -> ram_save_live stage 2: sync the log,
   * write pages to the non-blocking buffered file until its rate limit or a
   * full socket, and complete when remaining / (bytes / time of this call)
   * fits the downtime limit (bandwidth 0 counts as 1e-6 bytes/ns).
   */
  private *putReady11(): Co<void> {
    const t0 = this.p.nowNs();
    const x0 = this.ram.transferred;
    yield* this.syncNow();
    while (!this.link.rateExceeded() && !this.link.socketFull()) {
      const budget = Math.min(SEND_CHUNK_BYTES, this.link.windowBudget());
      if ((yield* this.ram.savePages(this.link, budget, this.blockingWrites())) === 0) break;
    }
    const spent = Math.max(1, this.p.nowNs() - t0);
    const bwidth = (this.ram.transferred - x0) / spent || 0.000001;
    const expectedNs = this.ram.remainingBytes() / bwidth;
    this.expectedDowntimeNs = Math.round(expectedNs);
    if (expectedNs <= this.spec.downtime_limit_ns && mayComplete(this.actor!.getSnapshot())) yield* this.completion();
  }

  /** QEMU 1.1's buffered file wrote to a non-blocking socket; later QEMU's migration thread blocks in qemu_fflush. */
  private blockingWrites(): boolean {
    return !(this.spec.mode === 'main-loop' && this.qemu.profile.nonblocking_socket);
  }

  /**
   * QEMU: qemu_savevm_state_setup -> ram_save_setup -> ram_init_bitmaps:
   * every page dirty, dirty logging on, and the first bitmap sync (the first
   * of dirty-sync-count), under the BQL, after qemu.host.migration_setup.
   * setup-time is what it took.
   */
  private *setup(bqlSite: string | null): Co<void> {
    const m = this.machine;
    // Connecting, the thread's start and the dirty-log start, as this host measured them (qemu.host.migration_setup).
    const before = this.qemu.host.migration_setup_ns;
    if (before > 0) yield* this.p.sleep(before);
    if (bqlSite) yield* m.bql.lock(bqlSite);
    this.ram.setup(this.p.nowNs(), this.ram.transferred);
    yield* this.syncNow();
    if (bqlSite) m.bql.unlock();
    // QEMU: ram_save_setup's multifd sync, outside the BQL.
    yield* this.ram.multifdSync(this.link, 'setup');
    this.setupNs = this.p.nowNs() - this.startNs;
    this.link.resetWindow();
    this.windowXferStart = this.link.transferred;
    if (this.policy.has('auto-converge') && this.qemu.profile.periodic_sync) this.startPeriodicSync();
    this.send('SETUP_DONE');
  }

  /** QEMU 9.2: cpu_throttle_dirty_sync_timer_tick: sync every 5 s if nothing else did, after the first pass. */
  private startPeriodicSync(): void {
    const tlg = this.machine.mainLoop.tlg;
    this.periodicSyncPrev = 0;
    const t = tlg.timerNew(QEMUClockType.REALTIME, 'cpu_throttle_dirty_sync_timer_tick', function* (this: Migration<D>) {
      const count = this.ram.dirtySyncCount;
      if (count > 1 && count === this.periodicSyncPrev && !this.finished) yield* this.syncNow();
      this.periodicSyncPrev = this.ram.dirtySyncCount;
      t.mod(this.p.nowNs() + PERIODIC_SYNC_NS);
    }.bind(this));
    this.periodicSync = t;
    t.mod(this.p.nowNs() + PERIODIC_SYNC_NS);
  }

  /** QEMU: migration_rate_limit: at the window's end update counters, else wait for it. */
  private *rateLimit(): Co<void> {
    if (this.updateCountersIfDue()) return;
    if (this.link.rateExceeded()) {
      yield* this.p.sleep(Math.max(1, this.link.windowLeftNs()));
      this.updateCountersIfDue();
    }
  }

  /** QEMU: migration_update_counters (migration/migration.c); true if a window ended. */
  private updateCountersIfDue(): boolean {
    const now = this.p.nowNs();
    const spent = now - this.link.windowStartNs;
    if (spent < BUFFER_DELAY_NS) return false;
    const bytes = this.link.transferred - this.windowXferStart;
    this.bandwidth = (bytes * 1e9) / spent;
    this.thresholdBytes = (this.bandwidth * this.spec.downtime_limit_ns) / 1e9;
    const remaining = this.ram.remainingBytes();
    // QEMU: the dirty bytes at the last sync over this window's bandwidth, once a dirty rate exists.
    if (this.qemu.profile.convergence === 'threshold' && this.ram.dirtyPagesRate > 0 && bytes > 10_000) {
      this.expectedDowntimeNs = Math.round((this.ram.remainingAtSync * 1e9) / this.bandwidth);
    }
    this.windowXferStart = this.link.transferred;
    this.link.resetWindow();
    this.snapshot();
    this.machine.trace.counter('migration.remaining_bytes', remaining);
    return true;
  }

  /**
   * QEMU: migration_iteration_run with ram_save_pending (7.2): sync when the
   * remaining data is under threshold_size; complete when nothing is pending
   * or it is still under; false when nothing could be sent.
   */
  private *iterationRun(): Co<boolean> {
    let pending = this.ram.remainingBytes();
    if (pending < this.thresholdBytes) {
      yield* this.syncUnderBql('ram_save_pending');
      pending = this.ram.remainingBytes();
    }
    // latsim's iteration cap counts the syncs done so far, this one included.
    const capped = this.spec.max_iterations > 0 && this.ram.dirtySyncCount >= this.spec.max_iterations;
    if (pending === 0 || pending < this.thresholdBytes || capped) {
      if (mayComplete(this.actor!.getSnapshot())) {
        yield* this.completion();
        return true;
      }
    } else if (this.postcopy?.startRequested(this.ram.dirtySyncCount)) {
      // QEMU 7.2: much still pending and start_postcopy set.
      yield* this.postcopyStart();
      return true;
    }
    return yield* this.ramSaveIterate();
  }

  private *syncUnderBql(site: string): Co<void> {
    const m = this.machine;
    const locked = m.bql.locked();
    if (!locked) yield* m.bql.lock(site);
    yield* this.syncNow();
    if (!locked) m.bql.unlock();
  }

  /**
   * QEMU: migration_bitmap_sync_precopy, with its cost. With the dirty ring,
   * memory_global_dirty_log_sync first reaps every ring (kvm_log_sync_global),
   * dropping the BQL while it kicks the vCPUs out of KVM_RUN.
   */
  private *syncNow(): Co<void> {
    const m = this.machine;
    const p = this.p;
    m.trace.event(p.current().name, 'migration_bitmap_sync_start');
    let heldSince = p.nowNs();
    const ring = this.guest.kvmDirtyRing;
    if (ring) heldSince = yield* ring.logSyncGlobal();
    yield* p.cpu(this.ram.syncCostNs());
    const dirtyLimit = this.dirtyLimit;
    const added = this.ram.sync(p.nowNs(), this.link.transferred, {
      ...(this.policy.has('auto-converge') ? {
        setThrottle: (pct: number) => {
          this.guest.setThrottle(pct);
          m.trace.event(p.current().name, 'cpu_throttle_set', { new_throttle_pct: pct });
        },
      } : {}),
      ...(dirtyLimit ? { dirtyLimitGuest: () => dirtyLimit.migrationDirtyLimitGuest() } : {}),
      bqlHoldNs: p.nowNs() - heldSince,
    });
    m.trace.event(p.current().name, 'migration_bitmap_sync_end', { dirty_pages: added });
    m.trace.counter('migration.dirty_pages', this.ram.dirtyPages);
    this.checkDirtyTracking();
  }

  /**
   * The dirty-tracking checker (dirty ring or manual protection, small
   * guests): every page whose content the destination lacks is in the
   * migration bitmap, in the dirty log or in a vCPU's dirty ring, or (with
   * multifd) left for a channel since the last multifd sync and may be on
   * its way.
   */
  private checkDirtyTracking(): void {
    const ram = this.guest.ram;
    if (!(ram instanceof GuestRam) || !(this.dest instanceof Destination)) return;
    if ((!ram.dirtyRing && !ram.manualLog) || ram.pages > TRACKING_CHECK_PAGES_MAX) return;
    const dst = this.dest.versions;
    const bitmap = this.ram.bitmap;
    const log = ram.dirtyLog;
    const ring = ram.dirtyRing;
    const mf = this.multifd;
    for (let w = 0, words = bitmap.length; w < words; w++) {
      let todo = dst.diffMask(w) & ~bitmap[w]! & ~log[w]!;
      while (todo !== 0) {
        const page = w * 32 + 31 - Math.clz32(todo & -todo);
        todo &= todo - 1;
        if (ring?.inRing(page) || mf?.sentThisRound(page)) continue;
        throw new InvariantError('lost-page',
          `page ${page} (guest address 0x${(page * ram.pageSize).toString(16)}) changed since it was sent ` +
          `(destination version ${dst.get(page)}, source ${ram.version(page)}) but neither the migration bitmap, the dirty log nor a dirty ring holds it ` +
          `(after dirty sync ${this.ram.dirtySyncCount})`);
      }
    }
  }

  /** QEMU: ram_save_iterate (migration/ram.c); false if the pass had nothing to send. */
  private *ramSaveIterate(): Co<boolean> {
    const t0 = this.p.nowNs();
    let any = false;
    while (!this.link.rateExceeded()) {
      const budget = Math.min(SEND_CHUNK_BYTES, this.link.windowBudget());
      let sent: number;
      if (this.ram.multifd) {
        sent = yield* this.ram.savePages(this.link, budget, this.blockingWrites());
      } else {
        // Most chunks go out without the thread giving way (nothing else is due meanwhile): no generator for them.
        const rest = this.ram.savePagesNow(this.link, budget, this.blockingWrites());
        if (rest !== null) yield* rest;
        sent = this.ram.takenPages;
      }
      // The pass is over (no dirty page left): migration_iteration_run decides what next.
      if (sent === 0) break;
      any = true;
      if (this.p.nowNs() - t0 > WAIT_NS_MAX) break;
    }
    yield* this.ram.multifdSync(this.link, 'iterate');
    // QEMU: RAM_SAVE_FLAG_EOS ends the iteration's section.
    this.ram.transferred += EOS_BYTES;
    yield* this.link.send(EOS_BYTES, { blocking: this.blockingWrites() });
    return any;
  }

  /** QEMU: migration_completion (migration/migration.c) */
  private *completion(): Co<void> {
    yield* this.machine.inst.run('migration_completion', 'migration', this.doCompletion());
  }

  private *doCompletion(): Co<void> {
    const m = this.machine;
    const p = this.p;
    this.send('CONVERGED');
    const n = this.attempts.length + 1;
    const locked = m.bql.locked();
    if (!locked) yield* m.bql.lock('migration_completion');
    const downtimeStart = p.nowNs();
    // The talk's proposal: a timeout on the wait, during migration only.
    if (this.policy.has('flush-timeout')) this.devices.block.deadlineNs = downtimeStart + this.spec.flush_timeout_ns;
    if (this.policy.has('abort-on-downtime')) {
      const d = downtimeStart + this.spec.abort_downtime_ns;
      const cur = this.devices.block.deadlineNs;
      this.devices.block.deadlineNs = cur < 0 ? d : Math.min(cur, d);
    }
    // Planted bug for the checker: the final flush is skipped.
    this.devices.block.skipFlush = this.spec.bug === 'skip-final-flush';
    const stop: StopPhases = yield* m.vmStop('finish-migrate');
    this.devices.block.deadlineNs = -1;
    this.devices.block.skipFlush = false;
    const zero = { final_ram_ns: 0, device_state_ns: 0, resume_ns: 0 };
    const stopPhases = { stop_ns: stop.stop_ns, drain_ns: stop.drain_ns, flush_ns: stop.flush_ns };

    const giveUp = (reason: string, timedOut: boolean, sent: typeof zero = zero) => {
      // The source resumes; nothing reached the destination's start.
      m.vmStart();
      if (!locked) m.bql.unlock();
      const downtime = p.nowNs() - downtimeStart;
      const rollback = timedOut && this.policy.has('flush-timeout') && reason === 'flush timeout';
      this.attempts.push({
        n, at_ns: downtimeStart, outcome: rollback ? 'rollback' : 'failed', downtime_ns: downtime,
        phases: { ...stopPhases, ...sent }, reason,
      });
      if (rollback) this.send('COMPLETION_TIMEOUT');
      else this.fail(reason);
    };
    // The stream broke: QEMU's migration_completion_failed, then
    // migration_iteration_finish runs vm_start (the VM ran when completion
    // began), unless the destination may run the guest already (`lost`). The
    // BQL is held when `held` (or `locked`); `sent`: the phases that ran.
    const streamBroke = (e: MigrationStreamError, held: boolean, sent: typeof zero) => {
      m.trace.event(p.current().name, 'migrate_set_error', { error: e.message });
      this.link.rateLimit = this.spec.max_bandwidth > 0 ? this.spec.max_bandwidth : Infinity;
      if (!e.lost) return giveUp(e.message, false, sent);
      if (held && !locked) m.bql.unlock();
      this.attempts.push({
        n, at_ns: downtimeStart, outcome: 'failed', downtime_ns: p.nowNs() - downtimeStart,
        phases: { ...stopPhases, ...sent }, reason: e.message,
      });
      this.fail(e.message);
    };

    if (stop.error === TIMEOUT) {
      const abortFirst = this.policy.has('abort-on-downtime') &&
        p.nowNs() - downtimeStart >= this.spec.abort_downtime_ns &&
        (!this.policy.has('flush-timeout') || this.spec.abort_downtime_ns <= this.spec.flush_timeout_ns);
      giveUp(abortFirst ? 'downtime limit exceeded' : 'flush timeout', true);
      return;
    }
    if (stop.error) {
      giveUp(stop.error, false);
      return;
    }
    // QEMU: migration_switchover_start: `device` once the VM stopped, where the version has it there.
    this.send('VM_STOPPED');
    // QEMU: qemu_savevm_state_complete_precopy: ram_save_complete, then device state.
    this.link.rateLimit = Infinity;
    const t0 = p.nowNs();
    yield* this.syncNow();
    if (this.policy.has('abort-on-downtime')) {
      const bw = this.bandwidth > 0 ? this.bandwidth : this.link.bandwidth;
      const expected = t0 - downtimeStart + (this.ram.remainingBytes() * 1e9) / bw;
      if (expected > this.spec.abort_downtime_ns) {
        this.link.rateLimit = this.spec.max_bandwidth > 0 ? this.spec.max_bandwidth : Infinity;
        giveUp('downtime limit exceeded', false);
        return;
      }
    }
    let t1 = 0;
    try {
      yield* this.ram.saveAll(this.link, SEND_CHUNK_BYTES * 16);
      this.ram.transferred += EOS_BYTES;
      yield* this.link.send(EOS_BYTES);
      t1 = p.nowNs();
      // Every device's vmstate; saving asserts the drain left no request in flight.
      this.devices.saveState();
      // vm_stop's and the device state's fixed costs: the downtime with nothing to send.
      yield* p.cpu(this.qemu.host.downtime_floor_ns);
      yield* this.dest.sendDeviceState(this.link, this.spec.device_state_bytes);
    } catch (e) {
      if (!(e instanceof MigrationStreamError)) throw e;
      const now = p.nowNs();
      streamBroke(e, true, t1 === 0
        ? { ...zero, final_ram_ns: now - t0 }
        : { ...zero, final_ram_ns: t1 - t0, device_state_ns: now - t1 });
      return;
    }
    const t2 = p.nowNs();
    m.runstate.set('postmigrate');
    this.ram.cleanup();
    if (!locked) m.bql.unlock();

    // The last byte reaches the destination, which loads and checks, then starts.
    let checkNs: number;
    try {
      checkNs = yield* this.dest.arrive(this.guest.ram, this.devices.blk, this.link);
    } catch (e) {
      if (!(e instanceof MigrationStreamError)) throw e;
      if (!e.lost && !locked) yield* m.bql.lock('migration_iteration_finish');
      streamBroke(e, !e.lost, { ...zero, final_ram_ns: t1 - t0, device_state_ns: t2 - t1 });
      return;
    }
    this.verified = true;
    if (!locked) yield* m.bql.lock('process_incoming_migration_bh');
    if (m.runstate.running) throw new InvariantError('split-brain', 'the source runs while the destination starts');
    this.dest.running = true;
    this.dest.start(m);
    if (!locked) m.bql.unlock();
    const t3 = p.nowNs();
    const phases: DowntimePhases = {
      ...stopPhases, final_ram_ns: t1 - t0, device_state_ns: t2 - t1, resume_ns: t3 - t2 - checkNs,
    };
    // QEMU: migration_calculate_complete: downtime and total-time end on the source, at its last write.
    this.downtimeNs = t2 - downtimeStart;
    this.guestDowntimeNs = t3 - downtimeStart - checkNs;
    this.downtimePhases = phases;
    this.attempts.push({ n, at_ns: downtimeStart, outcome: 'completed', downtime_ns: this.downtimeNs, phases, reason: '' });
    this.send('COMPLETED');
    this.endNs = t2;
    this.snapshot();
  }

  /** QEMU: postcopy_start (migration/migration.c, 7.2). */
  private *postcopyStart(): Co<void> {
    yield* this.machine.inst.run('postcopy_start', 'migration', this.doPostcopyStart());
  }

  private *doPostcopyStart(): Co<void> {
    const m = this.machine;
    const p = this.p;
    const pc = this.postcopy!;
    const thread = p.current().name;
    const n = this.attempts.length + 1;
    // QEMU 7.2: postcopy-active before the VM stops; time_at_stop from here.
    const t0 = p.nowNs();
    pc.startedAtNs = t0;
    this.actor!.send({ type: 'POSTCOPY_START' });
    m.trace.event(thread, 'postcopy_start');
    yield* m.bql.lock('postcopy_start');
    // The source's vCPUs run no more: the destination's are not throttled (cpu_throttle_stop).
    this.throttleStop();
    // Planted bug for the checker: the flush of bdrv_inactivate_all is skipped.
    this.devices.block.skipFlush = this.spec.bug === 'skip-final-flush';
    const stop: StopPhases = yield* m.vmStop('finish-migrate');
    this.devices.block.skipFlush = false;
    const stopPhases = { stop_ns: stop.stop_ns, drain_ns: stop.drain_ns, flush_ns: stop.flush_ns };
    // QEMU: postcopy_start's fail path: failed, and the VM stays stopped (vm_was_running is migration_completion's).
    const failed = (reason: string, sent: { final_ram_ns: number; device_state_ns: number }) => {
      m.runstate.set('postmigrate');
      m.bql.unlock();
      this.attempts.push({
        n, at_ns: t0, outcome: 'failed', downtime_ns: p.nowNs() - t0, phases: { ...stopPhases, ...sent, resume_ns: 0 }, reason,
      });
      this.fail(reason);
    };
    if (stop.error) {
      failed(`postcopy_start: ${stop.error}`, { final_ram_ns: 0, device_state_ns: 0 });
      return;
    }
    const t1 = p.nowNs();
    let t2 = 0;
    try {
      // ram_postcopy_send_discard_bitmap: the last sync, then the dirty pages' ranges.
      yield* this.syncNow();
      const discard = pc.switchOver();
      this.ram.transferred += discard;
      yield* this.link.send(discard);
      t2 = p.nowNs();
      // The package: LISTEN, every device's vmstate, RUN.
      this.devices.saveState();
      yield* p.cpu(this.qemu.host.downtime_floor_ns);
      yield* this.dest.sendDeviceState(this.link, pc.packageBytes(this.spec.device_state_bytes));
    } catch (e) {
      if (!(e instanceof MigrationStreamError)) throw e;
      m.trace.event(thread, 'migrate_set_error', { error: e.message });
      const now = p.nowNs();
      failed(e.message, t2 === 0 ? { final_ram_ns: now - t1, device_state_ns: 0 } : { final_ram_ns: t2 - t1, device_state_ns: now - t2 });
      return;
    }
    const t3 = p.nowNs();
    pc.listen();
    m.runstate.set('postmigrate');
    m.bql.unlock();
    // QEMU: ms->downtime = now - time_at_stop, once the package is sent.
    this.downtimeNs = t3 - t0;
    const resumeNs = this.link.arrivalNs() + DEST_START_NS;
    this.downtimePhases = { ...stopPhases, final_ram_ns: t2 - t1, device_state_ns: t3 - t2, resume_ns: resumeNs };
    this.attempts.push({ n, at_ns: t0, outcome: 'postcopy', downtime_ns: this.downtimeNs, phases: this.downtimePhases, reason: '' });
  }

  /** The destination runs the guest: what the guest saw of the switch ends here. */
  private postcopyDestinationStarted(atNs: number): void {
    const at = this.postcopy!.startedAtNs;
    this.guestDowntimeNs = atNs - at;
  }

  private snapshot(): void {
    if (this.snapshots.length < SNAPSHOTS_MAX) this.snapshots.push(this.query());
  }

  /** QEMU: qmp_query_migrate: the migration as of now. */
  query(): QueryMigrate {
    const now = this.p.nowNs();
    const ram = this.ram;
    return {
      t_ns: now,
      status: this.status,
      'total-time': Math.round(((this.endNs >= 0 ? this.endNs : now) - this.startNs) / 1e6),
      'expected-downtime': Math.round(this.expectedDowntimeNs / 1e6),
      'cpu-throttle-percentage': ram.throttlePct,
      // QEMU 8.1: populate_ram_info shows these while dirty-limit is in service.
      ...(this.dirtyLimit?.inService() ? {
        'dirty-limit-throttle-time-per-round': this.dirtyLimit.throttleTimePerRound(),
        'dirty-limit-ring-full-time': this.dirtyLimit.ringFullTime(),
      } : {}),
      ram: {
        transferred: ram.transferred,
        remaining: ram.remainingBytes(),
        total: this.guest.ram.pages * this.guest.ram.pageSize,
        duplicate: ram.duplicate,
        normal: ram.normal,
        'dirty-pages-rate': ram.dirtyPagesRate,
        mbps: Math.round((this.bandwidth * 8) / 1e4) / 100,
        'dirty-sync-count': ram.dirtySyncCount,
      },
    };
  }

  get rollbacks(): number {
    return this.attempts.filter((a) => a.outcome === 'rollback').length;
  }
}

/** The model's destination compares content versions: it needs the simulation's RAM. */
function modelRam(guest: GuestPort): GuestRam {
  if (!(guest.ram instanceof GuestRam)) throw new Error('this guest memory needs its own MigrationDestination');
  return guest.ram;
}

/** A feature modelled on the simulation's content versions only. */
function simulatedRam(guest: GuestPort, feature: string): GuestRam {
  if (!(guest.ram instanceof GuestRam)) throw new Error(`${feature} runs in the simulation only`);
  return guest.ram;
}
