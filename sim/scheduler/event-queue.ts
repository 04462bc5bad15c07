// The pending-event queue of the simulated clock, in (due_ns, seq) order:
// events due at the same instant leave in the order they were pushed. An
// event carries two numbers (a target index and an argument); what they mean
// is the caller's. Nothing is allocated per event and Array.sort is never
// called per event. An event's sequence number, target index, argument (and,
// in the calendar, due time) stay together in a slot table; two structures
// order the slots, chosen by how many events are pending:
//  - a binary min-heap of (due time, slot) in two typed arrays while at most
//    CALENDAR_FROM are pending (a real scenario's dozens): sifting moves two
//    numbers per level; pop() leaves the root empty and the next push()
//    fills it with one sift down, the common case of an event that schedules
//    the next one; a peek or pop first closes the hole;
//  - above that, a calendar queue (R. Brown, "Calendar queues", CACM 31(10),
//    1988): a circular year of nb buckets of `width` ns each (both powers of
//    two, so bucket arithmetic on integer ns is exact), each bucket a list in
//    (due, seq) order with its tail kept, so an event due after the others in
//    its bucket (the usual case, ties included) is appended at once; as a
//    pushed event's seq is the largest yet, placing it compares due times
//    only (a rebuild inserts in (due, seq) order to keep that true); the
//    earliest event is found from the last pop's bucket on. The bucket count
//    follows the population (doubled above 2 nb, halved below nb / 2); the
//    width is three mean gaps between events at the front of the queue,
//    measured on entry, and then between pops over every WIDTH_CHECK_POPS
//    pops (or the population, if larger), re-bucketing when it is four times
//    off. Below HEAP_FROM pending events the heap takes over again.
// Both give exactly the same order, so the choice never changes a run. An
// event may be pushed earlier than the last one popped (the scheduler never
// does). Cancellation is left to callers (stale events are recognised when
// they fire).

/** Pending events above which the calendar takes over from the heap. */
const CALENDAR_FROM = 512;
/** Pending events below which the heap takes over again (apart from CALENDAR_FROM, so the two do not alternate). */
const HEAP_FROM = 128;
/** Pops over which the calendar measures the mean gap between pops (at least; the population if larger). */
const WIDTH_CHECK_POPS = 4096;
/** Events at the front of the queue whose spacing gives the width on entry to the calendar. */
const FRONT_EVENTS = 64;

const NONE = -1;

export class EventQueue {
  /** Heap order: due time and slot of each position. */
  private due: Float64Array;
  private slot: Int32Array;
  /** Slot table: slot k holds the event's seq at [4k], tag at [4k + 1], arg at [4k + 2], and in the calendar its due time at [4k + 3]. */
  private slots: Float64Array;
  /** Stack of free slots. */
  private free: Int32Array;
  private freeCount: number;
  /** Heap positions in use, the empty root included while hole is true; in the calendar, the events pending. */
  private count = 0;
  /** The root's event was popped and its position awaits the next push. */
  private hole = false;
  private nextSeq = 0;

  // The calendar (see the header).
  private calendar = false;
  /** Next slot in the same bucket. */
  private link: Int32Array;
  private heads = new Int32Array(0);
  private tails = new Int32Array(0);
  private mask = 0;
  private width = 1;
  private inverseWidth = 1;
  /** Virtual bucket (due / width, not wrapped) where the search for the earliest event starts: none is earlier. */
  private bucketNow = 0;
  /** The earliest event once found (NONE until then), and its virtual bucket. */
  private peeked = NONE;
  private peekedBucket = 0;
  /** Pops in the calendar since the current gap measurement began, and the due time it began at. */
  private gapPops = 0;
  private gapFromDue = 0;

  /** Fields of the event removed by the last successful pop(). */
  topDue = 0;
  topSeq = 0;
  topTag = 0;
  topArg = 0;

  constructor(initialCapacity = 1024) {
    const n = Math.max(16, initialCapacity);
    this.due = new Float64Array(n);
    this.slot = new Int32Array(n);
    this.slots = new Float64Array(4 * n);
    this.link = new Int32Array(n);
    this.free = new Int32Array(n);
    for (let i = 0; i < n; i++) this.free[i] = n - 1 - i;
    this.freeCount = n;
  }

  get size(): number {
    return this.hole ? this.count - 1 : this.count;
  }

  /** Sequence number the next push will get; it only grows. */
  get sequence(): number {
    return this.nextSeq;
  }

  /** Due time of the earliest event, or Infinity when empty. */
  peekDue(): number {
    if (this.calendar) {
      // The calendar never runs empty (it hands over to the heap first), so find() has an event to find.
      return this.slots[4 * (this.peeked !== NONE ? this.peeked : this.find()) + 3]!;
    }
    if (this.hole) this.closeHole();
    return this.count > 0 ? this.due[0]! : Infinity;
  }

  /** Inserts an event and returns its sequence number (the tie-breaker). */
  push(due: number, tag: number, arg: number): number {
    if (this.freeCount === 0) this.grow();
    const s = this.nextSeq++;
    const k = this.free[--this.freeCount]!;
    const slots = this.slots;
    slots[4 * k] = s;
    slots[4 * k + 1] = tag;
    slots[4 * k + 2] = arg;
    if (this.calendar) {
      slots[4 * k + 3] = due;
      this.calendarPush(k, due);
      return s;
    }
    if (this.hole) {
      this.hole = false;
      this.siftDown(due, s, k, this.count);
      return s;
    }
    this.siftUp(due, s, k);
    if (this.count > CALENDAR_FROM) this.toCalendar();
    return s;
  }

  /** Removes the earliest event into top* if it is due at or before limitNs; false when the queue is empty or it is later. */
  pop(limitNs = Infinity): boolean {
    if (this.calendar) return this.calendarPop(limitNs);
    if (this.hole) this.closeHole();
    if (this.count === 0 || this.due[0]! > limitNs) return false;
    const k = this.slot[0]!;
    const slots = this.slots;
    this.topDue = this.due[0]!;
    this.topSeq = slots[4 * k]!;
    this.topTag = slots[4 * k + 1]!;
    this.topArg = slots[4 * k + 2]!;
    this.free[this.freeCount++] = k;
    this.hole = true;
    return true;
  }

  // --- the heap ---------------------------------------------------------

  /** Fills the empty root with the last event (a classic heap pop's second half). */
  private closeHole(): void {
    this.hole = false;
    const n = --this.count;
    if (n === 0) return;
    const k = this.slot[n]!;
    this.siftDown(this.due[n]!, this.slots[4 * k]!, k, n);
  }

  /** Adds event (d, s, slot k) at the bottom of the heap and moves parents down until its position is found. */
  private siftUp(d: number, s: number, k: number): void {
    const due_ = this.due;
    const slot_ = this.slot;
    const slots = this.slots;
    let i = this.count++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const pd = due_[p]!;
      if (pd < d || (pd === d && slots[4 * slot_[p]!]! < s)) break;
      due_[i] = pd;
      slot_[i] = slot_[p]!;
      i = p;
    }
    due_[i] = d;
    slot_[i] = k;
  }

  /** Places event (d, s, slot k) from the root down, in a heap of n positions. */
  private siftDown(d: number, s: number, k: number, n: number): void {
    const due_ = this.due;
    const slot_ = this.slot;
    const slots = this.slots;
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      let cd = due_[c]!;
      const r = c + 1;
      if (r < n) {
        const rd = due_[r]!;
        // Branch-free choice of the earlier child (ties, rare, are settled by seq).
        c += ((rd < cd) as unknown as number) | (rd === cd && slots[4 * slot_[r]!]! < slots[4 * slot_[c]!]! ? 1 : 0);
        cd = due_[c]!;
      }
      if (d < cd || (d === cd && s < slots[4 * slot_[c]!]!)) break;
      due_[i] = cd;
      slot_[i] = slot_[c]!;
      i = c;
    }
    due_[i] = d;
    slot_[i] = k;
  }

  // --- the calendar -----------------------------------------------------

  private calendarPush(k: number, due: number): void {
    const vb = Math.floor(due * this.inverseWidth);
    if (vb < this.bucketNow) this.bucketNow = vb;
    this.insert(k, due, vb & this.mask);
    if (this.peeked !== NONE && due < this.slots[4 * this.peeked + 3]!) this.peeked = NONE;
    if (++this.count > 2 * (this.mask + 1)) this.rebuild(2 * (this.mask + 1));
  }

  private calendarPop(limitNs: number): boolean {
    if (this.count === 0) return false;
    const k = this.peeked !== NONE ? this.peeked : this.find();
    const slots = this.slots;
    if (slots[4 * k + 3]! > limitNs) return false;
    this.peeked = NONE;
    const b = this.peekedBucket & this.mask;
    const next = this.link[k]!;
    this.heads[b] = next;
    if (next === NONE) this.tails[b] = NONE;
    this.bucketNow = this.peekedBucket;
    this.topSeq = slots[4 * k]!;
    this.topTag = slots[4 * k + 1]!;
    this.topArg = slots[4 * k + 2]!;
    this.topDue = slots[4 * k + 3]!;
    this.free[this.freeCount++] = k;
    const n = --this.count;
    if (n < HEAP_FROM) this.toHeap();
    else if (n < (this.mask + 1) >> 1) this.rebuild((this.mask + 1) >> 1);
    else if (++this.gapPops >= WIDTH_CHECK_POPS && this.gapPops >= n) this.measureGap();
    return true;
  }

  /**
   * Links slot k (due d) into its bucket b, after every event due at or
   * before d: in (due, seq) order as long as k's seq is larger than theirs,
   * true of a push (seq only grows) and of rebuild (which inserts in order).
   */
  private insert(k: number, d: number, b: number): void {
    const slots = this.slots;
    const link = this.link;
    const t = this.tails[b]!;
    link[k] = NONE;
    if (t === NONE) {
      this.heads[b] = k;
      this.tails[b] = k;
      return;
    }
    if (slots[4 * t + 3]! <= d) {
      link[t] = k;
      this.tails[b] = k;
      return;
    }
    const h = this.heads[b]!;
    if (d < slots[4 * h + 3]!) {
      link[k] = h;
      this.heads[b] = k;
      return;
    }
    // Between head and tail: the tail bounds the walk.
    let p = h;
    let q = link[h]!;
    while (slots[4 * q + 3]! <= d) {
      p = q;
      q = link[q]!;
    }
    link[k] = q;
    link[p] = k;
  }

  /** Finds the earliest event (the queue is not empty): the next bucket of this year that has one, else the earliest head of all. */
  private find(): number {
    const slots = this.slots;
    const heads = this.heads;
    const mask = this.mask;
    const w = this.width;
    let vb = this.bucketNow;
    let end = (vb + 1) * w;
    for (let i = 0; i <= mask; i++) {
      const h = heads[vb & mask]!;
      if (h !== NONE && slots[4 * h + 3]! < end) {
        this.peeked = h;
        this.peekedBucket = vb;
        return h;
      }
      vb++;
      end += w;
    }
    let best = NONE;
    for (let b = 0; b <= mask; b++) {
      const h = heads[b]!;
      if (h === NONE) continue;
      const hd = slots[4 * h + 3]!;
      if (best === NONE || hd < slots[4 * best + 3]! || (hd === slots[4 * best + 3]! && slots[4 * h]! < slots[4 * best]!)) best = h;
    }
    this.peeked = best;
    this.peekedBucket = Math.floor(slots[4 * best + 3]! * this.inverseWidth);
    return best;
  }

  /** A power of two near three times gap_ns (at least 1 ns). */
  private static widthOf(gap: number): number {
    let w = 1;
    while (w < 3 * gap && w < 2 ** 52) w *= 2;
    return w;
  }

  /** Ends a gap measurement; a width four times off re-buckets the calendar. */
  private measureGap(): void {
    const w = EventQueue.widthOf((this.topDue - this.gapFromDue) / this.gapPops);
    this.gapPops = 0;
    this.gapFromDue = this.topDue;
    if (w >= 4 * this.width || 4 * w <= this.width) this.rebuild(this.mask + 1, w);
  }

  /** Slots of the pending events, with their due times. */
  private pending(): { slot: Int32Array; due: Float64Array } {
    const n = this.size;
    const slot = new Int32Array(n);
    const due = new Float64Array(n);
    let j = 0;
    if (!this.calendar) {
      for (let i = this.hole ? 1 : 0; i < this.count; i++, j++) {
        slot[j] = this.slot[i]!;
        due[j] = this.due[i]!;
      }
    } else {
      for (let b = 0; b <= this.mask; b++) {
        for (let k = this.heads[b]!; k !== NONE; k = this.link[k]!, j++) {
          slot[j] = k;
          due[j] = this.slots[4 * k + 3]!;
        }
      }
    }
    return { slot, due };
  }

  /** Puts the pending events into a calendar of nb buckets of width w (default: from the spacing of the earliest events). */
  private rebuild(nb: number, w?: number): void {
    const { slot, due } = this.pending();
    if (w === undefined) {
      const sorted = due.slice().sort();
      const m = Math.min(sorted.length - 1, FRONT_EVENTS);
      w = EventQueue.widthOf(m > 0 ? (sorted[m]! - sorted[0]!) / m : 1);
    }
    this.width = w;
    this.inverseWidth = 1 / w;
    this.heads = new Int32Array(nb).fill(NONE);
    this.tails = new Int32Array(nb).fill(NONE);
    this.mask = nb - 1;
    this.calendar = true;
    this.hole = false;
    this.count = slot.length;
    // In (due, seq) order, so that every insert goes after the events already in its bucket.
    const slots = this.slots;
    const order = Array.from(slot.keys()).sort((a, b) => due[a]! - due[b]! || slots[4 * slot[a]!]! - slots[4 * slot[b]!]!);
    for (const j of order) {
      const k = slot[j]!;
      const d = due[j]!;
      slots[4 * k + 3] = d;
      this.insert(k, d, Math.floor(d * this.inverseWidth) & this.mask);
    }
    const first = order.length > 0 ? due[order[0]!]! : Infinity;
    this.bucketNow = Math.floor((first === Infinity ? this.topDue : first) * this.inverseWidth);
    this.peeked = NONE;
    this.gapPops = 0;
    this.gapFromDue = this.topDue;
  }

  private toCalendar(): void {
    let nb = 2 * HEAP_FROM;
    while (nb < this.size / 2) nb *= 2;
    this.rebuild(nb);
  }

  private toHeap(): void {
    const { slot, due } = this.pending();
    this.calendar = false;
    this.peeked = NONE;
    this.count = 0;
    for (let j = 0; j < slot.length; j++) this.siftUp(due[j]!, this.slots[4 * slot[j]!]!, slot[j]!);
  }

  private grow(): void {
    const old = this.due.length;
    const n = old * 2;
    const due = new Float64Array(n);
    const slot = new Int32Array(n);
    const slots = new Float64Array(4 * n);
    const link = new Int32Array(n);
    due.set(this.due);
    slot.set(this.slot);
    slots.set(this.slots);
    link.set(this.link);
    this.due = due;
    this.slot = slot;
    this.slots = slots;
    this.link = link;
    // Every slot below old is in use (grow runs only when none is free).
    const free = new Int32Array(n);
    for (let i = 0; i < n - old; i++) free[i] = n - 1 - i;
    this.free = free;
    this.freeCount = n - old;
  }
}
