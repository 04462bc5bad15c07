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
// MigrationWire) and the time they take is its own.
// With multifd the wire carries several streams (the main one and one per
// channel, each a TCP connection of its own: LinkStream). They share the
// wire's bandwidth in the order they write (first come, first carried); each
// has its own send buffer, and its own receiving thread at the destination,
// which holds only that stream back when it loads slower than the wire.
// The rate limit stays one for all: bytes count against it where QEMU
// counts them (account()), whichever stream carries them.
// MigrationWire) and the time they take is its own. A scenario's link-break
// faults cut the link for a while: a send while it is cut fails (the
// migration decides how, through its guard), and what was in flight when it
// broke is lost. Postcopy's preempt channel is a second link of the same kind.
// When the host leaves the migration thread and the destination one core
// between them (qemu.host.cores: the running vCPUs hold the others), the
// thread's work for a write waits until the destination has loaded the
// writes before it: the two take turns instead of overlapping.
// Leaves out: TCP dynamics (slow start, windows, fair sharing of a congested
// wire), compression; postcopy's two channels sharing the wire's bandwidth.
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
  /** When the wire and the destination have taken everything written so far (the main stream alone). */
  drainedAtNs = 0;
  /** With channels: when the shared wire has carried every byte written so far, on any stream. */
  wireFreeNs = 0;
  /** With channels: the main stream, one of the wire's streams like them; null: the main stream alone. */
  private main: LinkStream | null = null;
  readonly channels: LinkStream[] = [];
  /** When the last send's bytes began and ended draining (what postcopy needs to time each page's arrival). */
  lastSendFromNs = 0;
  lastSendToNs = 0;
  /** Link-break faults, in time order. */
  breaks: readonly LinkBreak[] = [];
  /** When the current connection was made: a break since then broke it for good. */
  connectedAtNs = 0;
  /** Runs before every send: throws when the migration says the stream is broken. */
  guard: (() => void) | null = null;
  /** True while the migration thread and the destination's loading share one host core (the main stream alone). */
  sharedCore: (() => boolean) | null = null;
  /** When the destination has loaded every write so far (its own work, not the wire's). */
  private destLoadedAtNs = 0;
  private readonly bufferNs: number;

  constructor(
    readonly platform: Platform,
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
   * Opens n more streams on the wire, one per multifd channel (QEMU:
   * multifd_new_send_channel_create, a socket each). The main stream then
   * shares the wire with them.
   */
  openChannels(n: number): readonly LinkStream[] {
    if (this.wire) throw new Error('multifd channels run on the modelled link only');
    this.main ??= new LinkStream(this, 'main');
    for (let i = 0; i < n; i++) this.channels.push(new LinkStream(this, `multifd_send_${this.channels.length}`));
    return this.channels;
  }

  /** The main stream, once channels share the wire (null before). */
  mainStream(): LinkStream | null {
    return this.main;
  }

  /**
   * Counts bytes in transferred and against the rate limit, without writing
   * them (QEMU: the migration thread accounting a multifd packet:
   * qemu_file_acct_rate_limit in 7.2's multifd_send_pages).
   */
  account(bytes: number): void {
    this.transferred += bytes;
    this.windowBytes += bytes;
  }

  /**
   * Writes bytes into the stream (QEMU: qemu_put_buffer + qemu_fflush): the
   * thread spends cost.cpuNs first, then the bytes queue behind what the
   * socket holds; a blocking writer returns once they are in the buffer.
   */
  *send(bytes: number, cost: SendCost = {}): Co<void> {
    const rest = this.sendNow(bytes, cost);
    if (rest !== null) yield* rest;
  }

  /**
   * send() as far as it goes without the thread giving way
   * (Platform.tryAdvance): null when the write is done, else what is left
   * of it, to run with yield*.
   */
  sendNow(bytes: number, cost: SendCost = {}): Co<void> | null {
    const cpuNs = cost.cpuNs ?? 0;
    if (cpuNs) {
      // One core for both: the destination has it until it has loaded what came before.
      const behind = this.sharedCore?.() ? Math.ceil(this.destLoadedAtNs - this.platform.nowNs()) : 0;
      if (behind > 0 && !this.platform.tryAdvance(behind, false)) return this.sendAfter(behind, cpuNs, bytes, cost);
      if (!this.platform.tryAdvance(cpuNs, true)) return this.sendAfter(0, cpuNs, bytes, cost);
    }
    return this.write(bytes, cost);
  }

  /** The rest of a send that has to give way: waiting behind the destination, the CPU, then the bytes. */
  private *sendAfter(behindNs: number, cpuNs: number, bytes: number, cost: SendCost): Co<void> {
    if (behindNs > 0) yield* this.platform.sleep(behindNs);
    yield* this.platform.cpu(cpuNs);
    const rest = this.write(bytes, cost);
    if (rest !== null) yield* rest;
  }

  /** The bytes of a send, once its CPU time is spent; null when the writer need not wait for the buffer. */
  private write(bytes: number, cost: SendCost): Co<void> | null {
    this.guard?.();
    if (bytes <= 0) return null;
    this.account(bytes);
    if (this.wire) return this.wire.transmit(bytes);
    if (this.main) return this.main.write(bytes, cost.destNs ?? 0);
    const p = this.platform;
    const now = p.nowNs();
    const busyNs = Math.max(1, Math.round((bytes * 1e9) / this.bandwidth), Math.round(cost.destNs ?? 0));
    this.lastSendFromNs = Math.max(now, this.drainedAtNs);
    this.drainedAtNs = this.lastSendFromNs + busyNs;
    this.lastSendToNs = this.drainedAtNs;
    if (cost.destNs) this.destLoadedAtNs = this.lastSendFromNs + cost.destNs;
    if (cost.blocking === false) return null;
    const room = Math.ceil(this.drainedAtNs - this.bufferNs);
    if (room > now && !p.tryAdvance(room - now, false)) return p.sleep(room - now);
    return null;
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
    if (!this.main) return Math.max(0, this.drainedAtNs - this.platform.nowNs()) + this.latencyNs;
    const drained = Math.max(this.main.tailNs, ...this.channels.map((c) => c.tailNs));
    return Math.max(0, Math.ceil(drained - this.platform.nowNs())) + this.latencyNs;
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
    this.destLoadedAtNs = Math.min(this.destLoadedAtNs, this.drainedAtNs);
  }

  /** Starts a new window (migration_rate_reset). */
  resetWindow(): void {
    this.windowStartNs = this.platform.nowNs();
    this.windowBytes = 0;
  }
}

/** A write that the wire and the stream's receiver are taking, from `fromNs` to `toNs`. */
interface InFlight {
  readonly fromNs: number;
  readonly toNs: number;
  readonly bytes: number;
}

/**
 * One TCP connection on a link shared with others (the main stream or a
 * multifd channel's): its writes go on the wire in the order all streams
 * write, its send buffer holds SOCKET_BUFFER_BYTES, and its receiver at the
 * destination loads what arrives (destNs per write) one write after another.
 * Accounting against the rate limit is the caller's (MigrationLink.account).
 */
export class LinkStream {
  /** Bytes written on this stream. */
  transferred = 0;
  /** When the destination has taken this stream's last byte. */
  tailNs = 0;
  private readonly inFlight: InFlight[] = [];

  constructor(private readonly link: MigrationLink, readonly name: string) {}

  /**
   * QEMU: qio_channel_writev_full_all on the stream's socket: the bytes queue
   * on the wire behind every stream's earlier ones; returns once the socket's
   * send buffer holds them (the writer blocks while it is full).
   */
  *write(bytes: number, destNs = 0): Co<void> {
    if (bytes <= 0) return;
    const link = this.link;
    const p = link.platform;
    const now = p.nowNs();
    while (this.inFlight.length > 0 && this.inFlight[0]!.toNs <= now) this.inFlight.shift();
    this.transferred += bytes;
    const wireNs = (bytes * 1e9) / link.bandwidth;
    const start = Math.max(now, link.wireFreeNs);
    link.wireFreeNs = start + wireNs;
    // The receiver takes the write once it has taken the ones before.
    const fromNs = Math.max(start, this.tailNs);
    const toNs = Math.max(start + wireNs, fromNs + destNs, fromNs + 1);
    this.tailNs = toNs;
    this.inFlight.push({ fromNs, toNs, bytes });
    const room = Math.ceil(this.roomAtNs());
    if (room > now) yield* p.sleep(room - now);
  }

  /** When no more than the send buffer's worth of this stream's bytes is still unsent (they drain evenly over each write's span). */
  private roomAtNs(): number {
    let later = 0;
    for (let j = this.inFlight.length - 1; j >= 0; j--) {
      const w = this.inFlight[j]!;
      if (later + w.bytes > SOCKET_BUFFER_BYTES) {
        const keep = SOCKET_BUFFER_BYTES - later;
        return w.toNs - (keep / w.bytes) * (w.toNs - w.fromNs);
      }
      later += w.bytes;
    }
    return 0;
  }
}
