// The trace of a run. Every record is written in a canonical binary form
// whose SHA-256 is the run's fingerprint: the same scenario and seed must give
// the same fingerprint, byte for byte. Records are also kept, when asked, for
// the Perfetto exporter. Event names follow QEMU's trace-events where one
// exists.
//
// The canonical form is a stream of 8-byte words, formatted nowhere: a record
// is a header word (its kind and argument count, and a thread or name), the
// ids of its strings, its times and values as float64, then per argument its
// key's id, the value's type and the value (a float64, a string's id, or 0/1).
// A string gets an id the first time the trace meets it, and that first time
// a definition record (the id and the string's length) followed by the
// string's UTF-16 code units goes into the hash; later records name it by id. So
// the fingerprint covers every name and value as the text form did, for the
// cost of a few stores per record; nothing is allocated per record.
// Leaves out: QEMU's trace backends (simple, log, dtrace); here one sink.
import { createHash, type Hash } from 'node:crypto';

export type TraceArgs = Readonly<Record<string, string | number | boolean>>;

/** One trace record. ph follows the Chrome trace-event phases. */
export type TraceRecord =
  | { ph: 'i'; ts: number; thread: string; name: string; args?: TraceArgs }
  | { ph: 'X'; ts: number; dur: number; thread: string; name: string; cat: string; args?: TraceArgs }
  | { ph: 'C'; ts: number; name: string; value: number }
  | { ph: 'f'; ts: number; thread: string; id: number; name: string; end: boolean };

/** Record kinds of the canonical form. */
const STRING = 1;
const INSTANT = 2;
const SLICE = 3;
const COUNTER = 4;
const FLOW_START = 5;
const FLOW_END = 6;
/** Argument value types. */
const NUMBER = 0;
const TEXT = 1;
const BOOLEAN = 2;
const OTHER = 3;

/** Words buffered before they are hashed (64 KiB). */
const BUFFER_WORDS = 1 << 13;
/** Arguments a record may have (a record fits the buffer). */
const ARGS_MAX = 256;
/** Slots of the string-id cache (a power of two). */
const ID_CACHE = 256;

export class Trace {
  readonly records: TraceRecord[] = [];
  private readonly hash: Hash = createHash('sha256');
  private readonly buffer = new ArrayBuffer(8 * BUFFER_WORDS);
  private readonly f64 = new Float64Array(this.buffer);
  private readonly u32 = new Uint32Array(this.buffer);
  private readonly bytes = new Uint8Array(this.buffer);
  /** Words written to the buffer and not hashed yet. */
  private words = 0;
  private readonly ids = new Map<string, number>();
  /** The last thread named and its id: a thread usually writes several records in a row. */
  private lastThread: string | null = null;
  private lastThreadId = 0;
  private readonly cachedStrings: (string | null)[] = new Array<string | null>(ID_CACHE).fill(null);
  private readonly cachedIds = new Uint32Array(ID_CACHE);
  /** Ids of the record's argument keys and string values, found before it is written. */
  private readonly argIds = new Uint32Array(2 * ARGS_MAX);
  private count = 0;
  private nextFlow = 1;
  private digest: string | undefined;

  /** Whether records are written at all: kept, or hashed into the fingerprint. */
  readonly on: boolean;

  constructor(
    private readonly now: () => number,
    /** Keep records for the exporters (memory grows with the run). */
    readonly keep: boolean,
    /** Hash the records into the fingerprint; off (and nothing kept), records cost nothing and sha256() is ''. */
    readonly fingerprint = true,
  ) {
    this.on = keep || fingerprint;
  }

  /** Number of records written. */
  get length(): number {
    return this.count;
  }

  /** An instant event on a thread (QEMU trace-event name where one exists). */
  event(thread: string, name: string, args?: TraceArgs): void {
    if (!this.on) return;
    const ts = this.now();
    const t = this.threadId(thread);
    const nm = this.id(name);
    const n = args ? this.internArgs(args) : 0;
    const w = this.begin(INSTANT, n, t, nm, 0);
    this.f64[w + 2] = ts;
    this.words = w + 3;
    if (args) this.writeArgs(args);
    if (this.keep) this.records.push(args ? { ph: 'i', ts, thread, name, args } : { ph: 'i', ts, thread, name });
  }

  /** A finished slice [ts, ts + dur) on a thread: a handler, a BH, a BQL hold. */
  slice(thread: string, name: string, cat: string, ts: number, dur: number, args?: TraceArgs): void {
    if (!this.on) return;
    const t = this.threadId(thread);
    const nm = this.id(name);
    const c = this.id(cat);
    const n = args ? this.internArgs(args) : 0;
    const w = this.begin(SLICE, n, t, nm, c);
    this.f64[w + 2] = ts;
    this.f64[w + 3] = dur;
    this.words = w + 4;
    if (args) this.writeArgs(args);
    if (this.keep) {
      this.records.push(args ? { ph: 'X', ts, dur, thread, name, cat, args } : { ph: 'X', ts, dur, thread, name, cat });
    }
  }

  /** A counter sample (dirty pages, remaining bytes, ...). */
  counter(name: string, value: number): void {
    if (!this.on) return;
    const ts = this.now();
    const w = this.begin(COUNTER, 0, 0, this.id(name), 0);
    this.f64[w + 2] = ts;
    this.f64[w + 3] = value;
    this.words = w + 4;
    if (this.keep) this.records.push({ ph: 'C', ts, name, value });
  }

  /** Starts a flow arrow (a kick) and returns its id for flowEnd. */
  flowStart(thread: string, name: string): number {
    const id = this.nextFlow++;
    this.flow(FLOW_START, thread, name, id, false);
    return id;
  }

  /** Ends a flow arrow where the kick was served. */
  flowEnd(thread: string, name: string, id: number): void {
    this.flow(FLOW_END, thread, name, id, true);
  }

  /** The fingerprint: SHA-256 of the canonical form. Ends the trace. */
  sha256(): string {
    if (!this.fingerprint) return '';
    if (this.digest === undefined) {
      this.flush();
      this.digest = this.hash.digest('hex');
    }
    return this.digest;
  }

  private flow(kind: number, thread: string, name: string, id: number, end: boolean): void {
    if (!this.on) return;
    const ts = this.now();
    const t = this.threadId(thread);
    const w = this.begin(kind, 0, t, this.id(name), 0);
    this.f64[w + 2] = ts;
    this.f64[w + 3] = id;
    this.words = w + 4;
    if (this.keep) this.records.push({ ph: 'f', ts, thread, id, name, end });
  }

  /** Makes room for a record of n arguments and writes its two header words; returns where it starts. */
  private begin(kind: number, n: number, a: number, b: number, c: number): number {
    if (this.digest !== undefined) throw new Error('trace written after its fingerprint was taken');
    this.count++;
    if (this.words + 4 + 2 * n > BUFFER_WORDS) this.flush();
    const w = this.words;
    const u32 = this.u32;
    u32[2 * w] = kind | (n << 8);
    u32[2 * w + 1] = a;
    u32[2 * w + 2] = b;
    u32[2 * w + 3] = c;
    return w;
  }

  /** Gives the keys and string values of args their ids before the record is written; returns how many there are. */
  private internArgs(args: TraceArgs): number {
    const argIds = this.argIds;
    let n = 0;
    for (const k in args) {
      if (n >= ARGS_MAX) throw new RangeError(`trace record with more than ${ARGS_MAX} arguments`);
      argIds[2 * n] = this.id(k);
      const v = args[k];
      if (typeof v === 'string') argIds[2 * n + 1] = this.id(v);
      n++;
    }
    return n;
  }

  /** Writes the arguments whose ids internArgs found (the same keys, in the same order). */
  private writeArgs(args: TraceArgs): void {
    const f64 = this.f64;
    const u32 = this.u32;
    const argIds = this.argIds;
    let w = this.words;
    let i = 0;
    for (const k in args) {
      const v = args[k];
      let type = OTHER;
      let value = 0;
      if (typeof v === 'number') {
        type = NUMBER;
        value = v;
      } else if (typeof v === 'string') {
        type = TEXT;
        value = argIds[2 * i + 1]!;
      } else if (typeof v === 'boolean') {
        type = BOOLEAN;
        value = v ? 1 : 0;
      }
      u32[2 * w] = argIds[2 * i]!;
      u32[2 * w + 1] = type;
      f64[w + 1] = value;
      w += 2;
      i++;
    }
    this.words = w;
  }

  private threadId(thread: string): number {
    if (thread === this.lastThread) return this.lastThreadId;
    const id = this.id(thread);
    this.lastThread = thread;
    this.lastThreadId = id;
    return id;
  }

  /** The id of a string; the first time, its definition goes into the hash (no record is half written then). */
  private id(s: string): number {
    // A small cache in front of the map, by length and two characters: names
    // and keys are mostly the same few string constants, found by identity.
    const n = s.length;
    const slot = n === 0 ? 0 : (n + 7 * s.charCodeAt(0) + 13 * s.charCodeAt(n >> 1)) & (ID_CACHE - 1);
    if (this.cachedStrings[slot] === s) return this.cachedIds[slot]!;
    const known = this.ids.get(s);
    if (known !== undefined) {
      this.cachedStrings[slot] = s;
      this.cachedIds[slot] = known;
      return known;
    }
    if (this.digest !== undefined) throw new Error('trace written after its fingerprint was taken');
    const id = this.ids.size + 1;
    this.ids.set(s, id);
    this.flush();
    this.u32[0] = STRING;
    this.u32[1] = id;
    this.f64[1] = s.length;
    this.hash.update(this.bytes.subarray(0, 16));
    this.hash.update(s, 'utf16le');
    this.cachedStrings[slot] = s;
    this.cachedIds[slot] = id;
    return id;
  }

  private flush(): void {
    if (this.words > 0) this.hash.update(this.bytes.subarray(0, 8 * this.words));
    this.words = 0;
  }
}
