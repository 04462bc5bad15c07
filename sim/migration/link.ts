// The migration stream's link to the destination: a bandwidth and a one-way
// latency, with QEMU's rate limit on top (max-bandwidth, enforced per
// BUFFER_DELAY window of 100 ms) and the bandwidth estimate QEMU derives from
// what a window transferred (migration_update_counters). The link is a pipe:
// bytes written go into the socket's send buffer and drain at the wire's
// speed or the destination's, whichever is slower (a destination that
// touches its pages for the first time loads much slower than it receives);
// a blocking writer (the migration thread's qemu_fflush) waits only while the
// buffer is full, so its CPU work overlaps the wire. A non-blocking writer
// (QEMU 1.1's buffered file on the main loop) never waits: it stops writing
// when the buffer is full. On KVM a real socket carries the bytes (a
// MigrationWire) and the time they take is its own. A scenario's link-break
// faults cut the link for a while: a send while it is cut fails (the
// migration decides how, through its guard), and what was in flight when it
// broke is lost. Postcopy's preempt channel is a second link of the same kind.
// Leaves out: TCP dynamics (slow start, windows), multifd channels, compression,
// two channels sharing the wire's bandwidth.
import type { Co, Platform } from '../platform.ts';
import type { LinkBreak } from '../scenario/scenario.ts';

/** A real carrier of the stream: transmit() returns once the bytes left (QEMU: qemu_fflush). */
export interface MigrationWire {
  transmit(bytes: number): Co<void>;
}

/** QEMU: BUFFER_DELAY (migration/migration.h): the rate-limit and counter window. */
export const BUFFER_DELAY_NS = 100_000_000;
/** The socket's send buffer (Linux autotunes loopback TCP up to about 4 MiB). */
export const SOCKET_BUFFER_BYTES = 4 * 2 ** 20;

/** What one write costs besides its bytes on the wire. */
export interface SendCost {
  /** CPU time of the writing thread before the bytes are written (scanning and copying pages). */
  readonly cpuNs?: number;
  /** The destination's time to load what the bytes carry. */
  readonly destNs?: number;
  /** false: a non-blocking socket; the writer never waits for the buffer. */
  readonly blocking?: boolean;
}

export class MigrationLink {
  /** Bytes put on the wire in total. */
  transferred = 0;
  /** Rate limit in bytes/s; Infinity while disabled (during completion). */
  rateLimit: number;
  windowStartNs = 0;
  windowBytes = 0;
  /** When the wire and the destination have taken everything written so far. */
  drainedAtNs = 0;
  /** When the last send's bytes began and ended draining (what postcopy needs to time each page's arrival). */
  lastSendFromNs = 0;
  lastSendToNs = 0;
  /** Link-break faults, in time order. */
  breaks: readonly LinkBreak[] = [];
  /** When the current connection was made: a break since then broke it for good. */
  connectedAtNs = 0;
  /** Runs before every send: throws when the migration says the stream is broken. */
  guard: (() => void) | null = null;
  private readonly bufferNs: number;

  constructor(
    private readonly platform: Platform,
    readonly bandwidth: number,
    readonly latencyNs: number,
    readonly maxBandwidth: number,
    private readonly wire: MigrationWire | null = null,
  ) {
    this.rateLimit = maxBandwidth > 0 ? maxBandwidth : Infinity;
    this.bufferNs = (SOCKET_BUFFER_BYTES * 1e9) / bandwidth;
  }

  /** Bytes the current window still allows. */
  windowBudget(): number {
    const limit = (this.rateLimit * BUFFER_DELAY_NS) / 1e9;
    return Math.max(0, limit - this.windowBytes);
  }

  /** QEMU: migration_rate_exceeded (migration/migration.c) */
  rateExceeded(): boolean {
    return this.windowBudget() <= 0;
  }

  /**
   * Writes bytes into the stream (QEMU: qemu_put_buffer + qemu_fflush): the
   * thread spends cost.cpuNs first, then the bytes queue behind what the
   * socket holds; a blocking writer returns once they are in the buffer.
   */
  *send(bytes: number, cost: SendCost = {}): Co<void> {
    if (cost.cpuNs) yield* this.platform.cpu(cost.cpuNs);
    this.guard?.();
    if (bytes <= 0) return;
    this.transferred += bytes;
    this.windowBytes += bytes;
    if (this.wire) return yield* this.wire.transmit(bytes);
    const p = this.platform;
    const now = p.nowNs();
    const busyNs = Math.max(1, Math.round((bytes * 1e9) / this.bandwidth), Math.round(cost.destNs ?? 0));
    this.lastSendFromNs = Math.max(now, this.drainedAtNs);
    this.drainedAtNs = this.lastSendFromNs + busyNs;
    this.lastSendToNs = this.drainedAtNs;
    if (cost.blocking === false) return;
    const room = Math.ceil(this.drainedAtNs - this.bufferNs);
    if (room > now) yield* p.sleep(room - now);
  }

  /** The send buffer holds more than it can take: a non-blocking writer stops (EAGAIN). */
  socketFull(): boolean {
    return this.drainedAtNs - this.platform.nowNs() > this.bufferNs;
  }

  /** Time until the buffer has room again. */
  socketRoomNs(): number {
    return Math.max(1, Math.ceil(this.drainedAtNs - this.bufferNs - this.platform.nowNs()));
  }

  /** Time until everything written has been taken by the destination, plus the one-way latency. */
  arrivalNs(): number {
    return Math.max(0, this.drainedAtNs - this.platform.nowNs()) + this.latencyNs;
  }

  /** Time left in the current window. */
  windowLeftNs(): number {
    return Math.max(0, this.windowStartNs + BUFFER_DELAY_NS - this.platform.nowNs());
  }

  /** The link-break in force at tNs, or null. */
  breakAt(tNs: number): LinkBreak | null {
    for (const b of this.breaks) if (tNs >= b.at_ns && tNs < b.at_ns + b.for_ns) return b;
    return null;
  }

  /** The first link-break that began in [fromNs, toNs], or null. */
  breakBetween(fromNs: number, toNs: number): LinkBreak | null {
    for (const b of this.breaks) if (b.at_ns >= fromNs && b.at_ns <= toNs) return b;
    return null;
  }

  /** Forgets what was in flight (the connection broke): nothing more arrives of it. */
  drop(): void {
    this.drainedAtNs = Math.min(this.drainedAtNs, this.platform.nowNs());
  }

  /** Starts a new window (migration_rate_reset). */
  resetWindow(): void {
    this.windowStartNs = this.platform.nowNs();
    this.windowBytes = 0;
  }
}
