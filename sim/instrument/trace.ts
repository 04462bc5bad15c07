// The trace of a run. Every record is written to a canonical text form whose
// SHA-256 is the run's fingerprint: the same scenario and seed must give the
// same fingerprint, byte for byte. Records are also kept, when asked, for the
// Perfetto exporter. Event names follow QEMU's trace-events where one exists.
// Leaves out: QEMU's trace backends (simple, log, dtrace); here one sink.
import { createHash, type Hash } from 'node:crypto';

export type TraceArgs = Readonly<Record<string, string | number | boolean>>;

/** One trace record. ph follows the Chrome trace-event phases. */
export type TraceRecord =
  | { ph: 'i'; ts: number; thread: string; name: string; args?: TraceArgs }
  | { ph: 'X'; ts: number; dur: number; thread: string; name: string; cat: string; args?: TraceArgs }
  | { ph: 'C'; ts: number; name: string; value: number }
  | { ph: 'f'; ts: number; thread: string; id: number; name: string; end: boolean };

const FLUSH_CHARS = 1 << 16;

export class Trace {
  readonly records: TraceRecord[] = [];
  private readonly hash: Hash = createHash('sha256');
  private buffer = '';
  private count = 0;
  private nextFlow = 1;
  private digest: string | undefined;

  constructor(
    private readonly now: () => number,
    /** Keep records for the exporters (memory grows with the run). */
    readonly keep: boolean,
  ) {}

  /** Number of records written. */
  get length(): number {
    return this.count;
  }

  /** An instant event on a thread (QEMU trace-event name where one exists). */
  event(thread: string, name: string, args?: TraceArgs): void {
    const ts = this.now();
    this.write(`${ts} i ${thread} ${name}${formatArgs(args)}\n`);
    if (this.keep) this.records.push(args ? { ph: 'i', ts, thread, name, args } : { ph: 'i', ts, thread, name });
  }

  /** A finished slice [ts, ts + dur) on a thread: a handler, a BH, a BQL hold. */
  slice(thread: string, name: string, cat: string, ts: number, dur: number, args?: TraceArgs): void {
    this.write(`${ts} X ${thread} ${cat} ${name} ${dur}${formatArgs(args)}\n`);
    if (this.keep) {
      this.records.push(args ? { ph: 'X', ts, dur, thread, name, cat, args } : { ph: 'X', ts, dur, thread, name, cat });
    }
  }

  /** A counter sample (dirty pages, remaining bytes, ...). */
  counter(name: string, value: number): void {
    const ts = this.now();
    this.write(`${ts} C ${name} ${value}\n`);
    if (this.keep) this.records.push({ ph: 'C', ts, name, value });
  }

  /** Starts a flow arrow (a kick) and returns its id for flowEnd. */
  flowStart(thread: string, name: string): number {
    const id = this.nextFlow++;
    const ts = this.now();
    this.write(`${ts} f ${thread} ${name} ${id}\n`);
    if (this.keep) this.records.push({ ph: 'f', ts, thread, id, name, end: false });
    return id;
  }

  /** Ends a flow arrow where the kick was served. */
  flowEnd(thread: string, name: string, id: number): void {
    const ts = this.now();
    this.write(`${ts} F ${thread} ${name} ${id}\n`);
    if (this.keep) this.records.push({ ph: 'f', ts, thread, id, name, end: true });
  }

  /** The fingerprint: SHA-256 of the canonical text. Ends the trace. */
  sha256(): string {
    if (this.digest === undefined) {
      this.hash.update(this.buffer);
      this.buffer = '';
      this.digest = this.hash.digest('hex');
    }
    return this.digest;
  }

  private write(line: string): void {
    if (this.digest !== undefined) throw new Error('trace written after its fingerprint was taken');
    this.count++;
    this.buffer += line;
    if (this.buffer.length >= FLUSH_CHARS) {
      this.hash.update(this.buffer);
      this.buffer = '';
    }
  }
}

function formatArgs(args: TraceArgs | undefined): string {
  if (!args) return '';
  let s = '';
  for (const k of Object.keys(args)) s += ` ${k}=${args[k]}`;
  return s;
}
