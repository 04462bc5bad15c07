// The migration stream's link to the destination: a bandwidth and a one-way
// latency, with QEMU's rate limit on top (max-bandwidth, enforced per
// BUFFER_DELAY window of 100 ms) and the bandwidth estimate QEMU derives from
// what a window transferred (migration_update_counters). On KVM a real
// socket carries the bytes (a MigrationWire) and the time they take is its own.
// Leaves out: TCP dynamics, multifd channels, compression.
import type { Co, Platform } from '../platform.ts';

/** A real carrier of the stream: transmit() returns once the bytes left (QEMU: qemu_fflush). */
export interface MigrationWire {
  transmit(bytes: number): Co<void>;
}

/** QEMU: BUFFER_DELAY (migration/migration.h): the rate-limit and counter window. */
export const BUFFER_DELAY_NS = 100_000_000;

export class MigrationLink {
  /** Bytes put on the wire in total. */
  transferred = 0;
  /** Rate limit in bytes/s; Infinity while disabled (during completion). */
  rateLimit: number;
  windowStartNs = 0;
  windowBytes = 0;

  constructor(
    private readonly platform: Platform,
    readonly bandwidth: number,
    readonly latencyNs: number,
    readonly maxBandwidth: number,
    private readonly wire: MigrationWire | null = null,
  ) {
    this.rateLimit = maxBandwidth > 0 ? maxBandwidth : Infinity;
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

  /** Sends bytes: the sending thread is busy for their time on the wire. */
  *send(bytes: number): Co<void> {
    if (bytes <= 0) return;
    this.transferred += bytes;
    this.windowBytes += bytes;
    if (this.wire) return yield* this.wire.transmit(bytes);
    yield* this.platform.sleep(Math.max(1, Math.round((bytes * 1e9) / this.bandwidth)));
  }

  /** Time left in the current window. */
  windowLeftNs(): number {
    return Math.max(0, this.windowStartNs + BUFFER_DELAY_NS - this.platform.nowNs());
  }

  /** Starts a new window (migration_rate_reset). */
  resetWindow(): void {
    this.windowStartNs = this.platform.nowNs();
    this.windowBytes = 0;
  }
}
