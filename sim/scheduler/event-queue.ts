// The pending-event queue of the virtual clock: a binary min-heap keyed by
// (due_ns, seq), so pushing and popping an event allocates nothing and never
// calls Array.sort. The heap itself is two typed arrays (due time and slot);
// an event's sequence number, target index and argument stay in a slot table,
// so sifting moves two numbers per level instead of four. An event carries two
// numbers (a target index and an argument); what they mean is the caller's.
// pop() leaves the root empty and the next push() fills it with one sift down,
// the common case of an event that schedules the next one; a peek or pop
// first closes the hole. Cancellation is left to callers (stale events are
// recognised when they fire).

export class EventQueue {
  /** Heap order: due time and slot of each position. */
  private due: Float64Array;
  private slot: Int32Array;
  /** Slot table: what each event carries. */
  private seqOf: Float64Array;
  private tagOf: Int32Array;
  private argOf: Float64Array;
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
    this.seqOf = new Float64Array(n);
    this.tagOf = new Int32Array(n);
    this.argOf = new Float64Array(n);
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
    this.seqOf[k] = s;
    this.tagOf[k] = tag;
    this.argOf[k] = arg;
    if (this.hole) {
      this.hole = false;
      this.siftDown(due, s, k, this.count);
      return s;
    }
    const due_ = this.due;
    const slot_ = this.slot;
    const seq_ = this.seqOf;
    let i = this.count++;
    // Sift up: move parents down until the position of the new event is found.
    while (i > 0) {
      const p = (i - 1) >> 1;
      const pd = due_[p]!;
      if (pd < due || (pd === due && seq_[slot_[p]!]! < s)) break;
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
    this.topDue = this.due[0]!;
    this.topSeq = this.seqOf[k]!;
    this.topTag = this.tagOf[k]!;
    this.topArg = this.argOf[k]!;
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
    this.siftDown(this.due[n]!, this.seqOf[k]!, k, n);
  }

  /** Places event (d, s, slot k) from the root down, in a heap of n positions. */
  private siftDown(d: number, s: number, k: number, n: number): void {
    const due_ = this.due;
    const slot_ = this.slot;
    const seq_ = this.seqOf;
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      let cd = due_[c]!;
      const r = c + 1;
      if (r < n) {
        const rd = due_[r]!;
        if (rd < cd || (rd === cd && seq_[slot_[r]!]! < seq_[slot_[c]!]!)) {
          c = r;
          cd = rd;
        }
      }
      if (d < cd || (d === cd && s < seq_[slot_[c]!]!)) break;
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
    const seqOf = new Float64Array(n);
    const tagOf = new Int32Array(n);
    const argOf = new Float64Array(n);
    due.set(this.due);
    slot.set(this.slot);
    seqOf.set(this.seqOf);
    tagOf.set(this.tagOf);
    argOf.set(this.argOf);
    this.due = due;
    this.slot = slot;
    this.seqOf = seqOf;
    this.tagOf = tagOf;
    this.argOf = argOf;
    // Every slot below old is in use (grow runs only when none is free).
    const free = new Int32Array(n);
    for (let i = 0; i < n - old; i++) free[i] = n - 1 - i;
    this.free = free;
    this.freeCount = n - old;
  }
}
