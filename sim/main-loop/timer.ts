// QEMU's clocks and timer lists. QEMU_CLOCK_REALTIME is the host's monotonic
// time; QEMU_CLOCK_VIRTUAL counts only while the VM runs (cpu_disable_ticks on
// vm_stop freezes it); QEMU_CLOCK_HOST is wall-clock time. Each AioContext
// and the main loop own a timer-list group with one list per clock; the
// nearest deadline bounds the poll timeout, and modifying a timer to an earlier
// deadline notifies the owner so a blocked poll recomputes its timeout.
// Leaves out: QEMU_CLOCK_VIRTUAL_RT, icount, clock reset notifiers.
import type { Co, Platform } from '../platform.ts';
import type { Instruments } from '../instrument/instrument.ts';

export enum QEMUClockType {
  REALTIME = 0,
  VIRTUAL = 1,
  HOST = 2,
}

export const CLOCK_NAMES = ['realtime', 'virtual', 'host'] as const;
export type ClockName = (typeof CLOCK_NAMES)[number];

export class QEMUClocks {
  private virtualOffsetNs = 0;
  private virtualFrozenNs: number | null = null;
  private readonly lists: QEMUTimerList[] = [];

  constructor(private readonly platform: Platform) {}

  /** QEMU: qemu_clock_get_ns (util/qemu-timer.c) */
  get(type: QEMUClockType): number {
    switch (type) {
      case QEMUClockType.REALTIME:
        return this.platform.nowNs();
      case QEMUClockType.VIRTUAL:
        return this.virtualFrozenNs ?? this.platform.nowNs() - this.virtualOffsetNs;
      case QEMUClockType.HOST:
        return this.platform.hostNs();
    }
  }

  /** False while QEMU_CLOCK_VIRTUAL is stopped. */
  enabled(type: QEMUClockType): boolean {
    return type !== QEMUClockType.VIRTUAL || this.virtualFrozenNs === null;
  }

  /** QEMU: cpu_disable_ticks (system/cpu-timers.c): QEMU_CLOCK_VIRTUAL stops. */
  stopVirtual(): void {
    if (this.virtualFrozenNs === null) this.virtualFrozenNs = this.get(QEMUClockType.VIRTUAL);
  }

  /** QEMU: cpu_enable_ticks (system/cpu-timers.c): QEMU_CLOCK_VIRTUAL goes on from where it stopped. */
  startVirtual(): void {
    if (this.virtualFrozenNs === null) return;
    this.virtualOffsetNs = this.platform.nowNs() - this.virtualFrozenNs;
    this.virtualFrozenNs = null;
    // QEMU: qemu_clock_notify: blocked polls recompute their timeouts.
    for (const l of this.lists) if (l.type === QEMUClockType.VIRTUAL) l.notify();
  }

  /** @internal */
  addList(list: QEMUTimerList): void {
    this.lists.push(list);
  }
}

export type TimerCallback = () => Co<void>;

export class QEMUTimer {
  /** Expiry in the clock's nanoseconds, or -1 when not pending. */
  expireNs = -1;
  /** Insertion order among timers with the same expiry. */
  order = 0;

  constructor(
    readonly name: string,
    readonly list: QEMUTimerList,
    readonly cb: TimerCallback,
  ) {}

  /** QEMU: timer_mod_ns (util/qemu-timer.c) */
  mod(expireNs: number): void {
    this.list.mod(this, expireNs);
  }

  /** QEMU: timer_del (util/qemu-timer.c) */
  del(): void {
    this.list.del(this);
  }

  /** QEMU: timer_pending (util/qemu-timer.c) */
  get pending(): boolean {
    return this.expireNs >= 0;
  }
}

export class QEMUTimerList {
  private active: QEMUTimer[] = [];
  private nextOrder = 0;

  constructor(
    readonly type: QEMUClockType,
    private readonly clocks: QEMUClocks,
    /** Wakes the owner's poll (aio_notify / qemu_notify_event). */
    readonly notify: () => void,
  ) {
    clocks.addList(this);
  }

  now(): number {
    return this.clocks.get(this.type);
  }

  mod(t: QEMUTimer, expireNs: number): void {
    if (!Number.isSafeInteger(expireNs) || expireNs < 0) {
      throw new RangeError(`timer ${t.name}: expiry ${expireNs} is not a non-negative integer`);
    }
    this.remove(t);
    t.expireNs = expireNs;
    t.order = this.nextOrder++;
    let i = this.active.length;
    while (i > 0 && this.active[i - 1]!.expireNs > expireNs) i--;
    this.active.splice(i, 0, t);
    if (i === 0) this.notify();
  }

  del(t: QEMUTimer): void {
    this.remove(t);
    t.expireNs = -1;
  }

  /** QEMU: timerlist_deadline_ns: ns until the first expiry; -1 for none. */
  deadlineNs(): number {
    const first = this.active[0];
    if (!first || !this.clocks.enabled(this.type)) return -1;
    return Math.max(0, first.expireNs - this.now());
  }

  /** True when run() would run a timer now (its clock enabled, its first timer due). */
  get expired(): boolean {
    const first = this.active[0];
    return first !== undefined && first.expireNs <= this.now() && this.clocks.enabled(this.type);
  }

  /** QEMU: timerlist_run_timers: runs every expired timer; true if any ran. */
  *run(inst: Instruments): Co<boolean> {
    if (!this.clocks.enabled(this.type)) return false;
    let progress = false;
    for (;;) {
      const t = this.active[0];
      if (!t || t.expireNs > this.now()) return progress;
      this.active.shift();
      t.expireNs = -1;
      yield* inst.run(t.name, 'timer', t.cb());
      progress = true;
    }
  }

  private remove(t: QEMUTimer): void {
    if (t.expireNs < 0) return;
    const i = this.active.indexOf(t);
    if (i >= 0) this.active.splice(i, 1);
  }
}

/** One timer list per clock, owned by an AioContext or by the main loop. */
export class QEMUTimerListGroup {
  readonly lists: QEMUTimerList[];

  constructor(clocks: QEMUClocks, notify: () => void) {
    this.lists = [QEMUClockType.REALTIME, QEMUClockType.VIRTUAL, QEMUClockType.HOST].map(
      (type) => new QEMUTimerList(type, clocks, notify),
    );
  }

  /** QEMU: timer_new_ns (include/qemu/timer.h) */
  timerNew(type: QEMUClockType, name: string, cb: TimerCallback): QEMUTimer {
    return new QEMUTimer(name, this.lists[type]!, cb);
  }

  /** QEMU: timerlistgroup_deadline_ns (util/qemu-timer.c) */
  deadlineNs(): number {
    let d = -1;
    for (const l of this.lists) d = soonest(d, l.deadlineNs());
    return d;
  }

  /** True when runTimers() would run a timer now: callers skip it (and its generators) otherwise. */
  get expired(): boolean {
    const l = this.lists;
    return l[0]!.expired || l[1]!.expired || l[2]!.expired;
  }

  /** QEMU: timerlistgroup_run_timers (util/qemu-timer.c) */
  *runTimers(inst: Instruments): Co<boolean> {
    let progress = false;
    for (const l of this.lists) if (l.expired) progress = (yield* l.run(inst)) || progress;
    return progress;
  }
}

/** QEMU: qemu_soonest_timeout: the earlier of two timeouts, -1 meaning none. */
export function soonest(a: number, b: number): number {
  if (a < 0) return b;
  if (b < 0) return a;
  return Math.min(a, b);
}
