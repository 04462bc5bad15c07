// The KVM dirty ring (KVM_CAP_DIRTY_LOG_RING, QEMU's -accel kvm,dirty-ring-size),
// both halves. KVM's half (KvmDirtyRings, virt/kvm/dirty_ring.c): while the
// slot logs dirty pages, a vCPU's first write to a write-protected page
// pushes the page's GFN into that vCPU's ring and leaves the page writable,
// so later writes push nothing until userspace has collected the entry and
// KVM_RESET_DIRTY_RINGS has write-protected the page again; a ring holding
// its soft limit (size - KVM_DIRTY_RING_RSVD_ENTRIES) makes the vCPU exit with
// KVM_EXIT_DIRTY_RING_FULL. SimDirtyRings is that half in simulation, fed by
// GuestRam's writes; on KVM the kernel holds the rings (real/dirty-ring.ts).
// QEMU 7.2's half (KvmDirtyRing, accel/kvm/kvm-all.c): kvm_dirty_ring_reap
// under the BQL collects entries into the slot's dirty bitmap (the log that
// migration_bitmap_sync reads) and resets the rings, at a cost per entry; the
// vCPU thread reaps on a ring-full exit (only its own ring while dirty-limit is
// in service, then dirtylimit_vcpu_execute sleeps); kvm-reaper reaps every
// second unless dirty-limit runs; kvm_dirty_ring_flush (the migration's sync)
// first kicks every vCPU out of KVM_RUN with run_on_cpu, dropping the BQL
// while it waits, then reaps all rings.
// Leaves out: PML's 512 extra reserved entries (x86 hosts with PML; this
// model's soft limit is that of hosts without it), several memory slots and
// address spaces, KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP (arm64).
import type { Co, Platform } from '../platform.ts';
import type { Bql } from '../main-loop/bql.ts';
import type { Trace } from '../instrument/trace.ts';
import type { HostCosts } from '../scenario/qemu.ts';
import { InvariantError } from '../invariant.ts';
import { bitmapNew } from '../util/bitmap.ts';
import type { VcpuExit, VcpuThread } from '../vcpu.ts';

/** KVM: KVM_DIRTY_RING_RSVD_ENTRIES (include/linux/kvm_dirty_ring.h): entries kept free below a full ring. */
export const KVM_DIRTY_RING_RSVD_ENTRIES = 64;
/** QEMU 7.2: kvm_dirty_ring_reaper_thread's sleep(1) between reaps. */
export const REAPER_PERIOD_NS = 1_000_000_000;
/**
 * kvm_log_sync_global's walk of the slot's bitmap after the reap
 * (kvm_slot_sync_dirty_pages, then kvm_slot_reset_dirty_pages), per 32-bit word.
 */
export const SLOT_SYNC_NS_PER_WORD = 0.5;

/** KVM's half: the rings of every vCPU, as the kernel keeps them. */
export interface KvmDirtyRings {
  /** Entries per vCPU (dirty-ring-size). */
  readonly size: number;
  /** KVM: ring->soft_limit: a ring holding this many entries makes its vCPU exit. */
  readonly softLimit: number;
  /** KVM: kvm_dirty_ring_used: entries pushed and not yet reset. */
  used(vcpu: number): number;
  /**
   * QEMU: kvm_dirty_ring_reap_one: takes the vCPU's entries not collected
   * yet, sets their pages' bits in log and marks them collected; returns how
   * many it took.
   */
  collect(vcpu: number, log: Uint32Array): number;
  /** KVM_RESET_DIRTY_RINGS: write-protects every collected entry's page again and frees the entries; returns how many. */
  reset(): number;
}

/** KVM's half in simulation: GuestRam pushes into it as the guest writes. */
export class SimDirtyRings implements KvmDirtyRings {
  readonly softLimit: number;
  /** Pages written since their entry was last reset: writes to them push nothing (KVM leaves them writable). */
  readonly unprotected: Uint32Array;
  private readonly gfns: Uint32Array;
  /** KVM: dirty_index (pushed), QEMU: kvm_fetch_index (collected), KVM: reset_index (reset), per vCPU. */
  private readonly dirtyIndex: number[];
  private readonly fetchIndex: number[];
  private readonly resetIndex: number[];

  constructor(readonly vcpus: number, readonly size: number, pages: number) {
    if (size <= KVM_DIRTY_RING_RSVD_ENTRIES || (size & (size - 1)) !== 0) throw new RangeError(`dirty ring size ${size} is not a power of two above ${KVM_DIRTY_RING_RSVD_ENTRIES}`);
    this.softLimit = size - KVM_DIRTY_RING_RSVD_ENTRIES;
    this.unprotected = bitmapNew(pages);
    this.gfns = new Uint32Array(vcpus * size);
    this.dirtyIndex = new Array<number>(vcpus).fill(0);
    this.fetchIndex = new Array<number>(vcpus).fill(0);
    this.resetIndex = new Array<number>(vcpus).fill(0);
  }

  used(vcpu: number): number {
    return this.dirtyIndex[vcpu]! - this.resetIndex[vcpu]!;
  }

  /** KVM: kvm_dirty_ring_soft_full */
  softFull(vcpu: number): boolean {
    return this.used(vcpu) >= this.softLimit;
  }

  /**
   * KVM: mark_page_dirty_in_slot -> kvm_dirty_ring_push: vcpu writes page.
   * A page already written since its last reset pushes nothing.
   */
  write(vcpu: number, page: number): void {
    const w = page >>> 5;
    const bit = 1 << (page & 31);
    const u = this.unprotected[w]!;
    if ((u & bit) !== 0) return;
    this.unprotected[w] = u | bit;
    const i = this.dirtyIndex[vcpu]!;
    if (i - this.resetIndex[vcpu]! >= this.size) {
      throw new InvariantError('model', `vcpu${vcpu}'s dirty ring overflowed its ${this.size} entries (the vCPU ran on past its ring-full exit)`);
    }
    this.gfns[vcpu * this.size + (i & (this.size - 1))] = page;
    this.dirtyIndex[vcpu] = i + 1;
  }

  collect(vcpu: number, log: Uint32Array): number {
    const from = this.fetchIndex[vcpu]!;
    const to = this.dirtyIndex[vcpu]!;
    const base = vcpu * this.size;
    const mask = this.size - 1;
    for (let i = from; i < to; i++) {
      const page = this.gfns[base + (i & mask)]!;
      log[page >>> 5] = log[page >>> 5]! | (1 << (page & 31));
    }
    this.fetchIndex[vcpu] = to;
    return to - from;
  }

  reset(): number {
    let n = 0;
    const mask = this.size - 1;
    for (let v = 0; v < this.vcpus; v++) {
      const base = v * this.size;
      const to = this.fetchIndex[v]!;
      for (let i = this.resetIndex[v]!; i < to; i++) {
        const page = this.gfns[base + (i & mask)]!;
        this.unprotected[page >>> 5] = this.unprotected[page >>> 5]! & ~(1 << (page & 31));
      }
      n += to - this.resetIndex[v]!;
      this.resetIndex[v] = to;
    }
    return n;
  }

  /**
   * KVM_MEM_LOG_DIRTY_PAGES set or cleared on the slot: every page is
   * write-protected again (logging on) and the rings start empty.
   */
  clear(): void {
    this.unprotected.fill(0);
    this.dirtyIndex.fill(0);
    this.fetchIndex.fill(0);
    this.resetIndex.fill(0);
  }

  /** True when the page's writes are logged by an entry not yet reset (the no-lost-page checker's question). */
  inRing(page: number): boolean {
    return ((this.unprotected[page >>> 5]! >>> (page & 31)) & 1) !== 0;
  }
}

/** What of QEMU's dirty-limit (softmmu/dirtylimit.c) the ring-full exit and the reaper ask. */
export interface DirtyLimiter {
  /** QEMU: dirtylimit_in_service */
  inService(): boolean;
  /** QEMU: dirtylimit_vcpu_execute: the vCPU's sleep after a ring-full exit (throttle_us_per_full), ns; 0: none. */
  throttleNs(vcpu: number): number;
  /** The vCPU slept ns in dirtylimit_vcpu_execute (for reports). */
  slept(vcpu: number, ns: number): void;
}

/** What the ring's QEMU half needs of the machine (the Machine has all of it). */
export interface RingHost {
  readonly platform: Platform;
  readonly bql: Bql;
  readonly trace: Trace;
  readonly vcpus: readonly VcpuThread[];
  readonly qemu: { readonly host: HostCosts };
}

/** QEMU 7.2's half of the dirty ring (accel/kvm/kvm-all.c): reaping, the reaper, ring-full exits, the flush. */
export class KvmDirtyRing {
  /** KVM_EXIT_DIRTY_RING_FULL exits, in all and per vCPU. */
  ringFullExits = 0;
  readonly ringFullExitsPerVcpu: number[];
  /** kvm_dirty_ring_reap calls that collected entries (each ends in KVM_RESET_DIRTY_RINGS), and the entries. */
  reaps = 0;
  reapedPages = 0;
  /** The longest reap, all of it under the BQL. */
  reapHoldMaxNs = 0;
  /** QEMU: cpu->dirty_pages: entries collected from each vCPU's ring (dirty-limit's dirty rate). */
  readonly dirtyPages: number[];
  /** QEMU: KVMDirtyRingReaper.reaper_iteration */
  reaperIteration = 0;
  /** Dirty-limit, while migration's dirty-limit runs. */
  limiter: DirtyLimiter | null = null;

  constructor(
    private readonly host: RingHost,
    /** The slot's dirty bitmap that reaping fills: the dirty log migration_bitmap_sync reads. */
    private readonly log: Uint32Array,
    readonly rings: KvmDirtyRings,
  ) {
    const n = host.vcpus.length;
    this.ringFullExitsPerVcpu = new Array<number>(n).fill(0);
    this.dirtyPages = new Array<number>(n).fill(0);
  }

  get size(): number {
    return this.rings.size;
  }

  /**
   * QEMU: kvm_dirty_ring_reap (with kvm_dirty_ring_reap_locked): collects
   * vcpu's ring, or every ring (null), into the slot's dirty bitmap, resets
   * the rings if it took anything, and pays the reap per entry. The caller
   * holds the BQL. Returns the entries it took.
   */
  *reap(vcpu: number | null): Co<number> {
    const { platform: p, bql } = this.host;
    bql.assertHeld('kvm_dirty_ring_reap');
    const t0 = p.nowNs();
    let total = 0;
    if (vcpu !== null) total = this.reapOne(vcpu);
    else for (let v = 0; v < this.dirtyPages.length; v++) total += this.reapOne(v);
    if (total === 0) return 0;
    const reset = this.rings.reset();
    if (reset !== total) throw new InvariantError('model', `KVM_RESET_DIRTY_RINGS reset ${reset} entries, ${total} were collected`);
    this.reaps++;
    this.reapedPages += total;
    yield* p.cpu(Math.round(total * this.host.qemu.host.dirty_ring_reap_ns));
    const held = p.nowNs() - t0;
    if (held > this.reapHoldMaxNs) this.reapHoldMaxNs = held;
    this.host.trace.event(p.current().name, 'kvm_dirty_ring_reap', { total, us: Math.round(held / 1000) });
    return total;
  }

  private reapOne(v: number): number {
    const n = this.rings.collect(v, this.log);
    this.dirtyPages[v] = this.dirtyPages[v]! + n;
    return n;
  }

  /**
   * QEMU: kvm_dirty_ring_flush: every vCPU leaves KVM_RUN once (so KVM has
   * pushed what it wrote), then every ring is reaped. Called under the BQL,
   * which kvm_cpu_synchronize_kick_all drops while it waits. Returns when the
   * BQL was last taken (the start of the flush's unbroken hold).
   */
  *flush(): Co<number> {
    const { platform: p, bql, trace } = this.host;
    bql.assertHeld('kvm_dirty_ring_flush');
    const thread = p.current().name;
    trace.event(thread, 'kvm_dirty_ring_flush', { finished: 0 });
    let heldSince = p.nowNs();
    // QEMU: kvm_cpu_synchronize_kick_all: run_on_cpu on each vCPU in turn.
    for (const v of this.host.vcpus) {
      if (yield* v.runOnCpu(bql)) heldSince = p.nowNs();
    }
    yield* this.reap(null);
    trace.event(thread, 'kvm_dirty_ring_flush', { finished: 1 });
    return heldSince;
  }

  /**
   * QEMU: kvm_log_sync_global (memory_global_dirty_log_sync with the ring):
   * the flush, then the slot's bitmap walked into the dirty memory and
   * cleared. Returns when the BQL was last taken.
   */
  *logSyncGlobal(): Co<number> {
    const heldSince = yield* this.flush();
    yield* this.host.platform.cpu(Math.round(this.log.length * SLOT_SYNC_NS_PER_WORD));
    return heldSince;
  }

  /** QEMU: kvm_dirty_ring_reaper_init: starts kvm-reaper. */
  startReaper(): void {
    this.host.platform.spawn('kvm-reaper', () => this.reaperThread());
  }

  /** QEMU: kvm_dirty_ring_reaper_thread */
  private *reaperThread(): Co<void> {
    const { platform: p, bql, trace } = this.host;
    for (;;) {
      yield* p.sleep(REAPER_PERIOD_NS);
      // QEMU: the reaper keeps sleeping while dirty-limit is in service, so that it throttles undisturbed.
      if (this.limiter?.inService()) continue;
      trace.event('kvm-reaper', 'kvm_dirty_ring_reaper', { state: 'wakeup' });
      yield* bql.lock('kvm_dirty_ring_reaper_thread');
      yield* this.reap(null);
      bql.unlock();
      this.reaperIteration++;
    }
  }

  /**
   * KVM_EXIT_DIRTY_RING_FULL as kvm_cpu_exec handles it: under the BQL, reap
   * every ring (only this vCPU's while dirty-limit is in service, so each
   * full vCPU sleeps its own throttle), then dirtylimit_vcpu_execute's sleep
   * outside the BQL. `complete` runs last (on KVM: the exit's answer).
   */
  ringFullExit(vcpu: VcpuThread, leftAtNs?: number, complete?: () => void): VcpuExit {
    return {
      name: 'kvm_dirty_ring_full',
      kind: 'dirty-ring-full',
      needsBql: true,
      ...(leftAtNs !== undefined ? { leftAtNs } : {}),
      handle: () => this.onRingFull(vcpu),
      afterBql: () => this.dirtyLimitSleep(vcpu, complete),
    };
  }

  /** kvm_cpu_exec's KVM_EXIT_DIRTY_RING_FULL case, under the BQL. */
  private *onRingFull(vcpu: VcpuThread): Co<void> {
    const i = vcpu.index;
    this.ringFullExits++;
    this.ringFullExitsPerVcpu[i] = this.ringFullExitsPerVcpu[i]! + 1;
    this.host.trace.event(vcpu.name, 'kvm_dirty_ring_full', { cpu: i });
    yield* this.reap(this.limiter?.inService() ? i : null);
  }

  /** QEMU: dirtylimit_vcpu_execute after the BQL is dropped; then complete. */
  private *dirtyLimitSleep(vcpu: VcpuThread, complete?: () => void): Co<void> {
    const i = vcpu.index;
    const ns = this.limiter?.throttleNs(i) ?? 0;
    if (ns > 0) {
      this.host.trace.event(vcpu.name, 'dirtylimit_vcpu_execute', { cpu: i, sleep_time_us: Math.round(ns / 1000) });
      // QEMU: g_usleep, which a vm_stop does not cut short.
      yield* this.host.platform.sleep(ns);
      this.limiter?.slept(i, ns);
    }
    complete?.();
  }
}
