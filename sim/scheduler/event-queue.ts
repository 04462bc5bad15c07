// The pending-event queue of the virtual clock: a binary min-heap keyed by
// (due_ns, seq) and stored in parallel typed arrays, so pushing and popping an
// event allocates nothing and never calls Array.sort. An event carries two
// numbers (a target index and an argument); what they mean is the caller's.
// Cancellation is left to callers (stale events are recognised when they fire).

export class EventQueue {
  private due: Float64Array;
  private seq: Float64Array;
  private tag: Int32Array;
  private arg: Float64Array;
  private count = 0;
  private nextSeq = 0;

  /** Fields of the event removed by the last successful pop(). */
  topDue = 0;
  topSeq = 0;
  topTag = 0;
  topArg = 0;

  constructor(initialCapacity = 1024) {
    const n = Math.max(16, initialCapacity);
    this.due = new Float64Array(n);
    this.seq = new Float64Array(n);
    this.tag = new Int32Array(n);
    this.arg = new Float64Array(n);
  }

  get size(): number {
    return this.count;
  }

  /** Sequence number the next push will get; it only grows. */
  get sequence(): number {
    return this.nextSeq;
  }

  /** Due time of the earliest event, or Infinity when empty. */
  peekDue(): number {
    return this.count > 0 ? this.due[0]! : Infinity;
  }

  /** Inserts an event and returns its sequence number (the tie-breaker). */
  push(due: number, tag: number, arg: number): number {
    if (this.count === this.due.length) this.grow();
    const s = this.nextSeq++;
    const due_ = this.due;
    const seq_ = this.seq;
    const tag_ = this.tag;
    const arg_ = this.arg;
    let i = this.count++;
    // Sift up: move parents down until the slot for the new event is found.
    while (i > 0) {
      const p = (i - 1) >> 1;
      const pd = due_[p]!;
      if (pd < due || (pd === due && seq_[p]! < s)) break;
      due_[i] = pd;
      seq_[i] = seq_[p]!;
      tag_[i] = tag_[p]!;
      arg_[i] = arg_[p]!;
      i = p;
    }
    due_[i] = due;
    seq_[i] = s;
    tag_[i] = tag;
    arg_[i] = arg;
    return s;
  }

  /** Removes the earliest event into top*; false when the queue is empty. */
  pop(): boolean {
    if (this.count === 0) return false;
    const due_ = this.due;
    const seq_ = this.seq;
    const tag_ = this.tag;
    const arg_ = this.arg;
    this.topDue = due_[0]!;
    this.topSeq = seq_[0]!;
    this.topTag = tag_[0]!;
    this.topArg = arg_[0]!;
    const n = --this.count;
    if (n === 0) return true;
    const d = due_[n]!;
    const s = seq_[n]!;
    const t = tag_[n]!;
    const a = arg_[n]!;
    let i = 0;
    // Sift down the last event from the root.
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      const r = c + 1;
      if (r < n) {
        const cd = due_[c]!;
        const rd = due_[r]!;
        if (rd < cd || (rd === cd && seq_[r]! < seq_[c]!)) c = r;
      }
      const cd = due_[c]!;
      if (d < cd || (d === cd && s < seq_[c]!)) break;
      due_[i] = cd;
      seq_[i] = seq_[c]!;
      tag_[i] = tag_[c]!;
      arg_[i] = arg_[c]!;
      i = c;
    }
    due_[i] = d;
    seq_[i] = s;
    tag_[i] = t;
    arg_[i] = a;
    return true;
  }

  private grow(): void {
    const n = this.due.length * 2;
    const due = new Float64Array(n);
    const seq = new Float64Array(n);
    const tag = new Int32Array(n);
    const arg = new Float64Array(n);
    due.set(this.due);
    seq.set(this.seq);
    tag.set(this.tag);
    arg.set(this.arg);
    this.due = due;
    this.seq = seq;
    this.tag = tag;
    this.arg = arg;
  }
}
