// The migration stream between two latsim processes, both directions. A
// section is one byte of type, a u32 length (little-endian) and the payload.
// RAM sections hold page records laid out as the model counts them: a zero
// page is an 8-byte header (u32 page number, u32 flags = ZERO) and one byte, a
// normal page the header and its 4096 bytes, so the bytes on the wire are the
// model's `transferred` plus five per section. JSON sections carry the rest
// (device state with 64-bit registers as strings). The source writes; the
// destination answers on the same socket (QEMU's return path).
// Leaves out: QEMU's own stream format (vmstate sections, RAM_SAVE_FLAG_*),
// compression, multifd channels.
import type { FdIo } from './kvm/index.ts';

export const SECTION = {
  // source -> destination
  hello: 1,
  ram: 2,
  device: 3,
  eos: 4,
  go: 5,
  abort: 6,
  // destination -> source
  loaded: 10,
  running: 11,
  report: 12,
  error: 13,
} as const;
export type SectionType = (typeof SECTION)[keyof typeof SECTION];

export const SECTION_HEADER_BYTES = 5;
export const PAGE_RECORD_HEADER_BYTES = 8;
export const PAGE_FLAG_ZERO = 1;

/** The destination's answer once it loaded the stream: its memory digests and what checking cost. */
export interface LoadedMessage {
  readonly load_ns: number;
  readonly check_ns: number;
  readonly pages_received: number;
}

/** The destination's report once the guest ran there for a while. */
export interface DestinationReport {
  readonly running: boolean;
  readonly heartbeat_before: number;
  readonly heartbeat_after: number;
  readonly window_ms: number;
  readonly exits: number;
  readonly pings_answered: number;
  readonly pages_received: number;
  readonly wire_bytes: number;
}

/** A growable byte buffer that writes sections. */
export class SectionWriter {
  buf = new Uint8Array(1 << 20);
  len = 0;
  private open = -1;

  ensure(extra: number): void {
    if (this.len + extra <= this.buf.length) return;
    let n = this.buf.length;
    while (n < this.len + extra) n *= 2;
    const b = new Uint8Array(n);
    b.set(this.buf.subarray(0, this.len));
    this.buf = b;
  }

  /** Starts a section of type unless one of that type is open. */
  begin(type: SectionType): void {
    if (this.open >= 0) {
      if (this.buf[this.open] === type) return;
      this.end();
    }
    this.ensure(SECTION_HEADER_BYTES);
    this.open = this.len;
    this.buf[this.len] = type;
    this.len += SECTION_HEADER_BYTES;
  }

  /** Closes the open section (writes its length). */
  end(): void {
    if (this.open < 0) return;
    new DataView(this.buf.buffer).setUint32(this.open + 1, this.len - this.open - SECTION_HEADER_BYTES, true);
    this.open = -1;
  }

  bytes(data: Uint8Array): void {
    this.ensure(data.length);
    this.buf.set(data, this.len);
    this.len += data.length;
  }

  u32(v: number): void {
    this.ensure(4);
    new DataView(this.buf.buffer).setUint32(this.len, v, true);
    this.len += 4;
  }

  /** A whole section of JSON (and optional trailing bytes after a u32 JSON length). */
  json(type: SectionType, value: unknown, tail?: Uint8Array): void {
    const text = new TextEncoder().encode(stringify(value));
    this.begin(type);
    if (tail) this.u32(text.length);
    this.bytes(text);
    if (tail) this.bytes(tail);
    this.end();
  }

  reset(): void {
    this.len = 0;
    this.open = -1;
  }
}

/** Reads sections out of a byte stream that arrives in pieces. */
export class SectionReader {
  buf = new Uint8Array(1 << 22);
  len = 0;
  eof = false;

  /**
   * Reads what the socket has (at most maxBytes). Returns the bytes read; 0
   * with eof set at end of stream, or when nothing was there.
   */
  fill(io: FdIo, fd: number, maxBytes = 64 << 20): number {
    let total = 0;
    while (total < maxBytes) {
      if (this.len === this.buf.length) {
        const b = new Uint8Array(this.buf.length * 2);
        b.set(this.buf);
        this.buf = b;
      }
      const n = io.read(fd, this.buf.subarray(this.len));
      if (n === null) break;
      if (n === 0) {
        this.eof = true;
        break;
      }
      this.len += n;
      total += n;
    }
    return total;
  }

  /** The next whole section, or null; the payload is a view valid until the next call. */
  next(): { type: number; payload: Uint8Array } | null {
    if (this.len < SECTION_HEADER_BYTES) return null;
    const size = new DataView(this.buf.buffer).getUint32(1, true);
    if (this.len < SECTION_HEADER_BYTES + size) {
      if (SECTION_HEADER_BYTES + size > this.buf.length) {
        const b = new Uint8Array(SECTION_HEADER_BYTES + size);
        b.set(this.buf.subarray(0, this.len));
        this.buf = b;
      }
      return null;
    }
    const type = this.buf[0]!;
    const payload = this.buf.slice(SECTION_HEADER_BYTES, SECTION_HEADER_BYTES + size);
    this.buf.copyWithin(0, SECTION_HEADER_BYTES + size, this.len);
    this.len -= SECTION_HEADER_BYTES + size;
    return { type, payload };
  }
}

/**
 * Writes all of data to a non-blocking socket, waiting (blocking) for room:
 * for small control messages. Throws if the socket takes nothing for timeoutMs.
 */
export function writeAllBlocking(io: FdIo, fd: number, data: Uint8Array, timeoutMs: number): void {
  let off = 0;
  let since = performance.now();
  while (off < data.length) {
    const n = io.write(fd, data.subarray(off));
    if (n === null) {
      if (performance.now() - since >= timeoutMs) throw new Error(`the peer took no bytes for ${timeoutMs} ms`);
      io.pollIn(fd, 1); // no pollOut helper: back off a millisecond
      continue;
    }
    off += n;
    since = performance.now();
  }
}

/** JSON with bigints (as {"$big": "…"}) and byte arrays (as {"$u8": [...]}). */
export function stringify(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (typeof v === 'bigint') return { $big: v.toString() };
    if (v instanceof Uint8Array) return { $u8: Array.from(v) };
    return v;
  });
}

export function parse<T>(bytes: Uint8Array): T {
  return JSON.parse(new TextDecoder().decode(bytes), (_k, v: unknown) => {
    if (v !== null && typeof v === 'object') {
      const o = v as { $big?: string; $u8?: number[] };
      if (typeof o.$big === 'string') return BigInt(o.$big);
      if (Array.isArray(o.$u8)) return Uint8Array.from(o.$u8);
    }
    return v;
  }) as T;
}

/** Splits a section that carries JSON followed by bytes (written by SectionWriter.json with a tail). */
export function splitJsonTail<T>(payload: Uint8Array): { json: T; tail: Uint8Array } {
  const n = new DataView(payload.buffer, payload.byteOffset).getUint32(0, true);
  return { json: parse<T>(payload.subarray(4, 4 + n)), tail: payload.subarray(4 + n) };
}
