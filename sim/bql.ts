// The Big QEMU Lock (BQL, formerly the iothread mutex), with wait and hold time
// accounted per holder thread and call site. The main loop drops it only
// around its poll; vCPU threads take it for exits to userspace; handlers that
// must run under it call assertHeld(), a lock-discipline invariant.
// Leaves out: recursion counting (QEMU asserts the BQL is not taken twice too).
import type { Co, Mutex, Platform } from './platform.ts';
import type { Instruments } from './instrument.ts';
import { InvariantError } from './invariant.ts';

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

export class Bql {
  readonly mutex: Mutex;
  private readonly sites = new Map<string, BqlSiteStats>();
  private holderSite = '';
  private holdStart = 0;

  constructor(private readonly platform: Platform, private readonly inst: Instruments) {
    this.mutex = platform.createMutex('BQL');
  }

  /** QEMU: bql_lock (system/cpus.c); site is the caller, as QEMU's file:line. */
  *lock(site: string): Co<void> {
    const p = this.platform;
    const thread = p.current().name;
    const t0 = p.nowNs();
    this.inst.trace.event(thread, 'qemu_mutex_lock', { mutex: 'BQL', site });
    yield* p.lock(this.mutex);
    const now = p.nowNs();
    const waited = now - t0;
    const s = this.stats(thread, site);
    s.waits++;
    s.waitTotalNs += waited;
    if (waited > s.waitMaxNs) s.waitMaxNs = waited;
    if (waited > 0) this.inst.noteWait(thread, 'BQL', waited);
    this.inst.trace.event(thread, 'qemu_mutex_locked', { mutex: 'BQL', site, waited_ns: waited });
    this.holderSite = site;
    this.holdStart = now;
  }

  /** QEMU: bql_unlock (system/cpus.c) */
  unlock(): void {
    const p = this.platform;
    const thread = p.current().name;
    const held = p.nowNs() - this.holdStart;
    const s = this.stats(thread, this.holderSite);
    s.holds++;
    s.holdTotalNs += held;
    if (held > s.holdMaxNs) s.holdMaxNs = held;
    this.inst.trace.slice(thread, `BQL held (${this.holderSite})`, 'bql', this.holdStart, held);
    p.unlock(this.mutex);
  }

  /** The thread holding the BQL, if any. */
  holder(): string | null {
    return this.mutex.owner?.name ?? null;
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
    return [...this.sites.values()].sort((a, b) =>
      a.thread === b.thread ? (a.site < b.site ? -1 : 1) : a.thread < b.thread ? -1 : 1);
  }

  waitMaxNs(): number {
    let m = 0;
    for (const s of this.sites.values()) m = Math.max(m, s.waitMaxNs);
    return m;
  }

  holdMaxNs(): number {
    let m = 0;
    for (const s of this.sites.values()) m = Math.max(m, s.holdMaxNs);
    return m;
  }

  private stats(thread: string, site: string): BqlSiteStats {
    const key = `${thread}\u0000${site}`;
    let s = this.sites.get(key);
    if (!s) {
      s = { thread, site, waits: 0, waitTotalNs: 0, waitMaxNs: 0, holds: 0, holdTotalNs: 0, holdMaxNs: 0 };
      this.sites.set(key, s);
    }
    return s;
  }
}
