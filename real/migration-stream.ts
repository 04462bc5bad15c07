// The source's end of a migration to another process (sim/migration's
// MigrationDestination and MigrationWire over a TCP socket). RAM save's pages
// are copied out of guest memory into the send buffer as they are saved; the
// link's send() flushes that buffer to the socket, and the migration thread
// blocks (waits for EPOLLOUT) while the socket is full, as QEMU's migration
// thread blocks in qemu_fflush. Device state is every vCPU's registers,
// special registers and FPU (read while the vCPUs are parked), the virtqueue's
// device-side indices and virtio-net's tx_waiting. At switchover the source
// sends end-of-stream and checks the destination: both sides digest their
// memory (SHA-256 per MiB) and every chunk must agree, every acknowledged write
// must be on the flushed disk; then GO, and the destination starts the VM.
// The memory check is not part of the reported downtime (QEMU makes no such
// check); it is reported beside it.
// Every wait on the destination is bounded by the stream timeout (no write
// progress, no answer for that long); a broken or stalled stream throws
// MigrationStreamError, which fails the migration. GO is the point of no
// return: before it the destination cannot have started the guest and the
// source resumes it; after it the error says the guest is lost on both sides.
// Leaves out: postcopy, a return path for page requests, resuming a broken
// stream (QEMU's postcopy-recover), keepalives.
import type { Co } from '../sim/platform.ts';
import type { Machine } from '../sim/machine.ts';
import type { BlkDevice } from '../sim/devices/devices.ts';
import type { GuestMemory } from '../sim/guest/memory.ts';
import { MigrationStreamError, verifyDisks, type MigrationDestination } from '../sim/migration/destination.ts';
import type { MigrationLink, MigrationWire } from '../sim/migration/link.ts';
import { InvariantError } from '../sim/invariant.ts';
import type { KvmFpu, KvmRegs, KvmSregs } from './kvm/index.ts';
import { DIGEST_CHUNK_PAGES, firstDifferentChunk, KVM_PAGE_SIZE } from './guest-memory.ts';
import type { KvmGuest } from './kvm-guest.ts';
import type { RealPlatform } from './platform.ts';
import type { SplitRingState } from './split-ring.ts';
import {
  PAGE_FLAG_ZERO, SECTION, SectionReader, SectionWriter, parse, splitJsonTail,
  type DestinationReport, type LoadedMessage, type SectionType,
} from './stream.ts';

/** What the destination needs besides RAM to run the guest. */
export interface DeviceState {
  readonly vcpus: readonly { regs: KvmRegs; sregs: KvmSregs; fpu: KvmFpu }[];
  readonly net: { ring: SplitRingState; tx_waiting: boolean; replies: number; consumed: number } | null;
}

/** The first message: what the destination checks it was built alike. */
export interface HelloMessage {
  readonly pages: number;
  readonly page_size: number;
  readonly vcpus: number;
  readonly scenario: string;
}

/** Chunks digested between two chances for the other threads to run (8 MiB). */
const DIGEST_SLICE_CHUNKS = 8;

/** How far the source got: whether the destination may run the guest. */
export type SwitchoverPhase = 'before-go' | 'go-sent' | 'running';

const SECTION_NAMES = new Map<number, string>(Object.entries(SECTION).map(([k, v]) => [v, k]));

export class StreamDestination implements MigrationDestination, MigrationWire {
  readonly wire: MigrationWire = this;
  /** Pages put on the stream. */
  pagesReceived = 0;
  running = false;
  /** Bytes written to the socket, section headers included. */
  wireBytes = 0;
  /** The destination's messages, as they arrive. */
  loaded: LoadedMessage | null = null;
  report: DestinationReport | null = null;
  /** Time the switchover check took (both sides digesting memory). */
  checkNs = 0;
  /** GO on the socket (the destination may start the guest), and the destination said it runs. */
  phase: SwitchoverPhase = 'before-go';
  /** The first error the stream gave (what a MigrationStreamError said), or null. */
  streamError: string | null = null;
  private readonly out = new SectionWriter();
  private readonly in = new SectionReader();
  private readonly readable;
  private readonly writable;

  constructor(
    private readonly platform: RealPlatform,
    private readonly guest: KvmGuest,
    readonly fd: number,
    private readonly deviceState: () => DeviceState,
    hello: HelloMessage,
    /** No write progress or no answer for this long fails the migration. */
    readonly streamTimeoutNs: number,
  ) {
    const n = platform.socketNotifiers('migration.socket', fd);
    this.readable = n.readable;
    this.writable = n.writable;
    this.out.json(SECTION.hello, hello);
  }

  /** QEMU: save_zero_page / save_normal_page: the page as it is now goes into the send buffer. */
  savePage(page: number, zero: boolean): void {
    const o = this.out;
    o.begin(SECTION.ram);
    o.ensure(8 + KVM_PAGE_SIZE);
    o.u32(page);
    o.u32(zero ? PAGE_FLAG_ZERO : 0);
    if (zero) {
      o.buf[o.len++] = 0;
    } else {
      o.buf.set(this.guest.ram.page(page), o.len);
      o.len += KVM_PAGE_SIZE;
    }
    this.pagesReceived++;
  }

  /** MigrationWire: flushes what RAM save buffered (QEMU: qemu_fflush on a blocking socket). */
  *transmit(_bytes: number): Co<void> {
    yield* this.flush();
  }

  *sendDeviceState(link: MigrationLink, _bytes: number): Co<void> {
    this.out.end();
    const before = this.out.len;
    this.out.json(SECTION.device, this.deviceState());
    yield* link.send(this.out.len - before);
  }

  *arrive(_src: GuestMemory, disks: readonly BlkDevice[], _link: MigrationLink): Co<number> {
    const p = this.platform;
    this.out.end();
    this.out.begin(SECTION.eos);
    this.out.end();
    yield* this.flush();
    // The source's memory no longer changes (the VM is stopped): digest it while the destination
    // loads, a slice at a time so the main loop keeps running (this thread holds no lock now).
    const ram = this.guest.ram;
    const mine = new Uint8Array(ram.chunks * 32);
    let digestNs = 0;
    for (let c = 0; c < ram.chunks; c += DIGEST_SLICE_CHUNKS) {
      const t0 = p.nowNs();
      for (let i = c; i < Math.min(ram.chunks, c + DIGEST_SLICE_CHUNKS); i++) ram.digestChunk(i, mine);
      digestNs += p.nowNs() - t0;
      yield* p.sleep(0);
    }
    const msg = yield* this.receive(SECTION.loaded);
    const { json, tail } = splitJsonTail<LoadedMessage>(msg);
    this.loaded = json;
    this.checkNs = Math.max(digestNs, json.check_ns);
    const chunk = firstDifferentChunk(tail, mine);
    if (chunk >= 0) {
      this.out.json(SECTION.abort, { reason: `memory differs in chunk ${chunk}` });
      try {
        yield* this.flush();
      } catch {
        // the invariant is what counts; the destination ends either way
      }
      const first = chunk * DIGEST_CHUNK_PAGES;
      throw new InvariantError('lost-page',
        `pages ${first}-${first + DIGEST_CHUNK_PAGES - 1} (guest addresses 0x${(first * KVM_PAGE_SIZE).toString(16)}-` +
        `0x${((first + DIGEST_CHUNK_PAGES) * KVM_PAGE_SIZE - 1).toString(16)}) differ at switchover: ` +
        'the destination\'s memory digest is not the source\'s');
    }
    verifyDisks(disks);
    this.out.begin(SECTION.go);
    this.out.end();
    // From the first byte of GO on the socket, the destination may start the guest.
    yield* this.flush(() => { this.phase = 'go-sent'; });
    yield* this.receive(SECTION.running);
    this.phase = 'running';
    return this.checkNs;
  }

  /** The destination started on GO; nothing runs here any more. */
  start(_source: Machine): void {}

  /** Waits for the destination's report (after it ran the guest for `windowNs` there). */
  *awaitReport(windowNs: number): Co<DestinationReport> {
    const r = parse<DestinationReport>(yield* this.receive(SECTION.report, windowNs + this.streamTimeoutNs));
    this.report = r;
    return r;
  }

  /** The error for what went wrong, saying whether the guest is lost; the first is kept. */
  private broke(why: string): MigrationStreamError {
    const e = this.phase === 'before-go'
      ? new MigrationStreamError(why)
      : this.phase === 'go-sent'
        ? new MigrationStreamError(`the guest is lost on both sides: ${why} after GO ` +
          '(the source stopped it for good at switchover, the destination did not say it started)', true)
        : new MigrationStreamError(`the guest is lost on both sides: ${why} after the guest started there ` +
          '(the source stopped it for good at switchover)', true);
    this.streamError ??= e.message;
    return e;
  }

  /**
   * Writes the send buffer to the socket, waiting while it is full (at most
   * the stream timeout without progress); `wrote` runs once bytes are out.
   */
  private *flush(wrote?: () => void): Co<void> {
    const o = this.out;
    o.end();
    const p = this.platform;
    let off = 0;
    while (off < o.len) {
      let n: number | null;
      try {
        n = p.io.write(this.fd, o.buf.subarray(off, o.len));
      } catch (e) {
        throw this.broke(`the migration stream broke: ${(e as Error).message}`);
      }
      if (n === null) {
        this.writable.read();
        const t0 = p.nowNs();
        const ready = yield* p.wait([this.writable], this.streamTimeoutNs);
        if (ready.length === 0) {
          throw this.broke(`the destination stopped reading: no write progress for ${Math.round((p.nowNs() - t0) / 1e6)} ms ` +
            `(stream timeout ${this.streamTimeoutNs / 1e6} ms)`);
        }
        continue;
      }
      off += n;
      if (n > 0) wrote?.();
    }
    this.wireBytes += o.len;
    o.reset();
  }

  /**
   * Reads until a section of `type` arrives; an error message, end of stream
   * or no bytes for timeoutNs (default: the stream timeout) throws.
   */
  private *receive(type: SectionType, timeoutNs = this.streamTimeoutNs): Co<Uint8Array> {
    const p = this.platform;
    const what = SECTION_NAMES.get(type) ?? String(type);
    let since = p.nowNs();
    for (;;) {
      const s = this.in.next();
      if (s) {
        if (s.type === type) return s.payload;
        if (s.type === SECTION.error) throw this.broke(`the destination failed: ${parse<{ message: string }>(s.payload).message}`);
        throw this.broke(`unexpected section ${SECTION_NAMES.get(s.type) ?? s.type} from the destination (waiting for ${what})`);
      }
      if (this.in.eof) throw this.broke(`the destination closed the migration stream (waiting for ${what})`);
      this.readable.read();
      try {
        if (this.in.fill(p.io, this.fd) > 0) {
          since = p.nowNs();
          continue;
        }
        if (this.in.eof) continue;
      } catch (e) {
        throw this.broke(`the migration stream broke: ${(e as Error).message} (waiting for ${what})`);
      }
      const left = since + timeoutNs - p.nowNs();
      if (left <= 0 || (yield* p.wait([this.readable], left)).length === 0) {
        throw this.broke(`the destination did not answer for ${Math.round((p.nowNs() - since) / 1e6)} ms ` +
          `(waiting for ${what}; stream timeout ${this.streamTimeoutNs / 1e6} ms)`);
      }
    }
  }
}
