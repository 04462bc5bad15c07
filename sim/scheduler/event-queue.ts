// The pending-event queue of the simulated clock: a binary min-heap keyed by
// (due_ns, seq), so pushing and popping an event allocates nothing and never
// calls Array.sort. The heap itself is two typed arrays (due time and slot);
// an event's sequence number, target index and argument stay together in a
// slot table, so sifting moves two numbers per level instead of four and a pop
// reads one cache line of the table. An event carries two numbers (a target
// index and an argument); what they mean is the caller's.
// pop() leaves the root empty and the next push() fills it with one sift down,
// the common case of an event that schedules the next one; a peek or pop
// first closes the hole. Cancellation is left to callers (stale events are
// recognised when they fire).

export class EventQueue {
  /** Heap order: due time and slot of each position. */
  private due: Float64Array;
  private slot: Int32Array;
  /** Slot table: slot k holds the event's seq at [4k], tag at [4k + 1], arg at [4k + 2]. */
  private slots: Float64Array;
  /** Stack of free slots. */
  private free: Int32Array;
  private freeCount: number;
  /** Heap positions in use, the empty root included while hole is true. */
  private count = 0;
  /** The root's event was popped and its position awaits the next push. */
  private hole = false;
  private nextSeq = 0;

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
    if (this.hole) {
      this.hole = false;
      this.siftDown(due, s, k, this.count);
      return s;
    }
    const due_ = this.due;
    const slot_ = this.slot;
    let i = this.count++;
    // Sift up: move parents down until the position of the new event is found.
    while (i > 0) {
      const p = (i - 1) >> 1;
      const pd = due_[p]!;
      if (pd < due || (pd === due && slots[4 * slot_[p]!]! < s)) break;
      due_[i] = pd;
      slot_[i] = slot_[p]!;
      i = p;
    }
    due_[i] = due;
    slot_[i] = k;
    return s;
  }

  /** Removes the earliest event into top*; false when the queue is empty. */
  pop(): boolean {
    if (this.hole) this.closeHole();
    if (this.count === 0) return false;
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

  /** Fills the empty root with the last event (a classic heap pop's second half). */
  private closeHole(): void {
    this.hole = false;
    const n = --this.count;
    if (n === 0) return;
    const k = this.slot[n]!;
    this.siftDown(this.due[n]!, this.slots[4 * k]!, k, n);
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
        if (rd < cd || (rd === cd && slots[4 * slot_[r]!]! < slots[4 * slot_[c]!]!)) {
          c = r;
          cd = rd;
        }
      }
      if (d < cd || (d === cd && s < slots[4 * slot_[c]!]!)) break;
      due_[i] = cd;
      slot_[i] = slot_[c]!;
      i = c;
    }
    due_[i] = d;
    slot_[i] = k;
  }

  private grow(): void {
    const old = this.due.length;
    const n = old * 2;
    const due = new Float64Array(n);
    const slot = new Int32Array(n);
    const slots = new Float64Array(4 * n);
    due.set(this.due);
    slot.set(this.slot);
    slots.set(this.slots);
    this.due = due;
    this.slot = slot;
    this.slots = slots;
    // Every slot below old is in use (grow runs only when none is free).
    const free = new Int32Array(n);
    for (let i = 0; i < n - old; i++) free[i] = n - 1 - i;
    this.free = free;
    this.freeCount = n - old;
  }
}
