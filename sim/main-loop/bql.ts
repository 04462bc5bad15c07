// The Big QEMU Lock (BQL, formerly the iothread mutex), with wait and hold time
// accounted per holder thread and call site. The main loop drops it only
// around its poll; vCPU threads take it for exits to userspace; handlers that
// must run under it call assertHeld(), a lock-discipline invariant.
// Leaves out: recursion counting (QEMU asserts the BQL is not taken twice too).
import type { Co, Mutex, Notifier, Platform } from '../platform.ts';
import type { Instruments } from '../instrument/instrument.ts';
import { InvariantError } from '../invariant.ts';

export interface BqlSiteStats {
  readonly thread: string;
  readonly site: string;
  waits: number;
  waitTotalNs: number;
  waitMaxNs: number;
  holds: number;
  holdTotalNs: number;
  holdMaxNs: number;
}

/** Holds remembered for holderAt. */
const RECENT_HOLDS = 8;

export class Bql {
  readonly mutex: Mutex;
  /** Statistics by thread, then call site; and every site's slice name. */
  private readonly sites = new Map<string, Map<string, BqlSiteStats>>();
  private readonly siteList: BqlSiteStats[] = [];
  private readonly heldNames = new Map<string, string>();
  /** The statistics stats() returned last: a lock and its unlock ask for the same. */
  private lastStats: BqlSiteStats | null = null;
  private holderSite = '';
  private holdStart = 0;
  /** The last RECENT_HOLDS holds, a ring (holderAt looks back that far). */
  private readonly recentThread: string[] = new Array<string>(RECENT_HOLDS).fill('');
  private readonly recentFrom = new Float64Array(RECENT_HOLDS);
  private readonly recentTo = new Float64Array(RECENT_HOLDS);
  private recentNext = 0;

  constructor(private readonly platform: Platform, private readonly inst: Instruments) {
    this.mutex = platform.createMutex('BQL');
  }

  /** QEMU: bql_lock (system/cpus.c); site is the caller, as QEMU's file:line. */
  *lock(site: string): Co<void> {
    const p = this.platform;
    const thread = p.current().name;
    // QEMU asserts the same: the BQL is not recursive (g_assert(!bql_locked())).
    if (this.mutex.owner === p.current()) throw new InvariantError('lock-discipline', `${site}: ${thread} takes the BQL it already holds`);
    const t0 = p.nowNs();
    this.inst.trace.event(thread, 'qemu_mutex_lock', { mutex: 'BQL', site });
    yield* p.lock(this.mutex);
    const now = p.nowNs();
    const waited = now - t0;
    const s = this.stats(thread, site);
    s.waits++;
    s.waitTotalNs += waited;
    if (waited > s.waitMaxNs) s.waitMaxNs = waited;
    if (waited > 0) {
      this.inst.noteWait(thread, 'BQL', waited);
      this.inst.noteBlocked(thread, t0, waited);
    }
    this.inst.trace.event(thread, 'qemu_mutex_locked', { mutex: 'BQL', site, waited_ns: waited });
    this.holderSite = site;
    this.holdStart = now;
  }

  /** QEMU: bql_unlock (system/cpus.c) */
  unlock(): void {
    const p = this.platform;
    const thread = p.current().name;
    if (this.mutex.owner !== p.current()) {
      throw new InvariantError('lock-discipline', `${thread} releases the BQL held by ${this.mutex.owner?.name ?? 'nobody'}`);
    }
    const held = p.nowNs() - this.holdStart;
    const s = this.stats(thread, this.holderSite);
    s.holds++;
    s.holdTotalNs += held;
    if (held > s.holdMaxNs) s.holdMaxNs = held;
    this.inst.trace.slice(thread, this.heldName(this.holderSite), 'bql', this.holdStart, held);
    const r = this.recentNext;
    this.recentThread[r] = thread;
    this.recentFrom[r] = this.holdStart;
    this.recentTo[r] = this.holdStart + held;
    this.recentNext = (r + 1) % RECENT_HOLDS;
    p.unlock(this.mutex);
  }

  /**
   * QEMU: qemu_cond_wait(cond, &bql): drops the BQL until cond is set, then
   * takes it again for the same call site. The caller holds the BQL.
   */
  *condWait(cond: Notifier): Co<void> {
    const site = this.holderSite;
    this.unlock();
    yield* this.platform.wait([cond], -1);
    cond.read();
    yield* this.lock(site);
  }

  /** The thread holding the BQL, if any. */
  holder(): string | null {
    return this.mutex.owner?.name ?? null;
  }

  /**
   * Who kept the BQL from a thread that wanted it since atNs: the holder at
   * atNs, else the thread that held it longest since then (looking back
   * RECENT_HOLDS holds); null if nobody held it. On KVM a vCPU's exit can
   * predate the moment its thread sees it, so its wait began at the exit.
   */
  holderSince(atNs: number): string | null {
    const now = this.platform.nowNs();
    const owner = this.mutex.owner;
    if (owner !== null && this.holdStart <= atNs) return owner.name;
    let best: string | null = owner !== null ? owner.name : null;
    let bestNs = owner !== null ? now - this.holdStart : 0;
    for (let i = 0; i < RECENT_HOLDS; i++) {
      const t = this.recentThread[i]!;
      if (t === '') continue;
      if (this.recentFrom[i]! <= atNs && atNs < this.recentTo[i]!) return t;
      const overlap = Math.min(now, this.recentTo[i]!) - Math.max(atNs, this.recentFrom[i]!);
      if (overlap > bestNs) {
        best = t;
        bestNs = overlap;
      }
    }
    return best;
  }

  /** QEMU: bql_locked (system/cpus.c) */
  locked(): boolean {
    return this.mutex.owner !== null && this.mutex.owner === this.platform.current();
  }

  /** Lock discipline: what must run under the BQL asserts it holds it. */
  assertHeld(what: string): void {
    if (!this.locked()) {
      throw new InvariantError('lock-discipline', `${what} ran on ${this.platform.current().name} without the BQL`);
    }
  }

  /** Per (thread, site) wait and hold statistics, sorted. */
  table(): BqlSiteStats[] {
    return [...this.siteList].sort((a, b) =>
      a.thread === b.thread ? (a.site < b.site ? -1 : 1) : a.thread < b.thread ? -1 : 1);
  }

  waitMaxNs(): number {
    let m = 0;
    for (const s of this.siteList) m = Math.max(m, s.waitMaxNs);
    return m;
  }

  holdMaxNs(): number {
    let m = 0;
    for (const s of this.siteList) m = Math.max(m, s.holdMaxNs);
    return m;
  }

  private stats(thread: string, site: string): BqlSiteStats {
    const last = this.lastStats;
    if (last !== null && last.thread === thread && last.site === site) return last;
    let bySite = this.sites.get(thread);
    if (!bySite) {
      bySite = new Map();
      this.sites.set(thread, bySite);
    }
    let s = bySite.get(site);
    if (!s) {
      s = { thread, site, waits: 0, waitTotalNs: 0, waitMaxNs: 0, holds: 0, holdTotalNs: 0, holdMaxNs: 0 };
      bySite.set(site, s);
      this.siteList.push(s);
    }
    this.lastStats = s;
    return s;
  }

  /** The trace slice of a hold taken at site (made once per site). */
  private heldName(site: string): string {
    let n = this.heldNames.get(site);
    if (n === undefined) {
      n = `BQL held (${site})`;
      this.heldNames.set(site, n);
    }
    return n;
  }
}
