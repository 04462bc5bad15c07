// multifd (QEMU 4.0 on, migration/multifd.c): multifd-channels sender
// threads, each with its own stream on the link. The migration thread walks
// the dirty bitmap as before but, instead of writing a page, queues it in a
// packet of MULTIFD_PACKET_SIZE (512 KiB) of pages (multifd_queue_page); a
// full packet goes to the next channel with no job, round-robin, after a wait
// for one when all are busy (multifd_send_pages). A channel thread, outside
// the BQL, finds the packet's zero pages when zero-page-detection is
// `multifd` (9.0's multifd_send_zero_page_detect), copies its normal pages
// into its socket (writev) and writes the packet header (a MultiFDPacket_t of
// 320 bytes plus 8 per page slot). Zero pages under `legacy` are the
// migration thread's, on the main stream, before it queues anything
// (save_zero_page); under `none` they go as normal pages. Per-page CPU costs
// are the channel's, so N channels copy N times faster, up to the host cores
// they share (qemu.host.migration_cores).
// multifd_send_sync_main flushes the partial packet, sends a SYNC packet on
// every channel and waits until each channel has written everything queued
// before it: the migration thread waits, channels with nothing left idle.
// QEMU syncs at setup, at ram_save_complete and, up to 7.2, at the end of
// every ram_save_iterate (per section) or, from 8.0, when the scan of the
// bitmap wraps (per round, with RAM_SAVE_FLAG_MULTIFD_FLUSH on the main
// stream). The sync keeps a page's copies in order: a page may be sent again
// only after a sync, which the model asserts (a page queued twice between two
// syncs could reach the destination older-copy-last: a lost page).
// Bytes count against the shared rate limit and in ram.transferred when QEMU
// counts them: when the migration thread hands a packet over (7.2's
// multifd_send_pages), or once the channel wrote it (9.x, after its
// zero-page detection).
// Leaves out: the channels' initial MultiFDInit_t packet (not counted in
// transferred), compression (zlib, zstd, qpl, uadk), zero-copy send, TLS,
// mapped-ram, the destination's receive threads' own sync; 7.2's SYNC flag
// riding on a page packet not yet taken (the model always sends it alone);
// the migration thread's own time per queued page (the bitmap walk, as
// without multifd, costs nothing here).
import type { Co, Notifier, Platform } from '../platform.ts';
import type { GuestMemory, PageSink } from '../guest/memory.ts';
import type { Trace } from '../instrument/trace.ts';
import { InvariantError } from '../invariant.ts';
import { bitmapNew } from '../util/bitmap.ts';
import type { HostCosts, QemuProfile } from '../scenario/qemu.ts';
import { MULTIFD_PACKET_SIZE, type MultifdSpec, type ZeroPageDetection } from '../scenario/migration.ts';
import type { LinkStream, MigrationLink } from './link.ts';

/** QEMU: sizeof(MultiFDPacket_t) before its offset array (migration/multifd.h, 7.2 and 9.2 alike). */
export const MULTIFD_PACKET_HEADER_BYTES = 320;
/** QEMU: one be64 offset per page slot of a packet. */
export const MULTIFD_OFFSET_BYTES = 8;
/** QEMU 8.0 on: RAM_SAVE_FLAG_MULTIFD_FLUSH, a be64 on the main stream after a per-round sync. */
export const MULTIFD_FLUSH_BYTES = 8;

/** RAM save's counters that multifd adds to (RamState's; QEMU's ram_counters / mig_stats). */
export interface RamCounters {
  transferred: number;
  normal: number;
  duplicate: number;
}

/** A channel's job: a packet of pages, or a SYNC packet (no pages). */
interface Job {
  readonly pages: Uint32Array;
  readonly count: number;
  readonly sync: boolean;
}

const NO_PAGES = new Uint32Array(0);

/** One sender channel (QEMU: MultiFDSendParams and its multifd_send_thread). */
export class MultifdChannel {
  /** Packets written (page packets and SYNC packets; not the initial one). */
  packets = 0;
  /** Normal pages written (QEMU: total_normal_pages). */
  normalPages = 0;
  /** Jobs handed over and not yet written (QEMU: pending_job). */
  readonly jobs: Job[] = [];
  /** QEMU: p->pages, the page array the migration thread may swap with its own while the channel has no job. */
  pages: Uint32Array;
  /** QEMU: p->sem (work to do), p->sem_sync (a SYNC packet written) as a count and its notifier. */
  readonly sem: Notifier;
  readonly semSync: Notifier;
  syncsDone = 0;
  /** Wakes the thread when a host core it waits for frees up. */
  readonly coreWake: Notifier;
  /** Which pages of the packet being written its zero-page detection found zero. */
  readonly zero: Uint8Array;

  constructor(p: Platform, readonly id: number, readonly stream: LinkStream, pageCount: number) {
    this.pages = new Uint32Array(pageCount);
    this.zero = new Uint8Array(pageCount);
    this.sem = p.createNotifier(`multifd_send_${id}.sem`);
    this.semSync = p.createNotifier(`multifd_send_${id}.sem_sync`);
    this.coreWake = p.createNotifier(`multifd_send_${id}.core`);
  }

  get name(): string {
    return this.stream.name;
  }

  /** Bytes this channel's stream carried. */
  get transferred(): number {
    return this.stream.transferred;
  }
}

/** Host cores the channel threads share: a thread spends CPU only on a free one, FIFO. */
class CorePool {
  private free: number;
  private readonly waiters: Notifier[] = [];

  constructor(private readonly p: Platform, cores: number) {
    this.free = cores > 0 ? cores : Infinity;
  }

  *run(ns: number, wake: Notifier): Co<void> {
    if (ns <= 0) return;
    while (this.free === 0) {
      this.waiters.push(wake);
      yield* this.p.wait([wake], -1);
      wake.read();
    }
    this.free--;
    yield* this.p.cpu(ns);
    this.free++;
    this.waiters.shift()?.set();
  }
}

/** The sending side of multifd (QEMU: multifd_send_state). */
export class MultifdSend {
  readonly channels: MultifdChannel[] = [];
  readonly detection: ZeroPageDetection;
  /** QEMU: page_count, the page slots of a packet. */
  readonly pageCount: number;
  /** QEMU: p->packet_len, the header bytes of every packet. */
  readonly packetLen: number;
  /** multifd_send_sync_main calls, and the migration thread's time waiting in them. */
  syncWaits = 0;
  syncWaitTotalNs = 0;
  syncWaitMaxNs = 0;
  /** QEMU: multifd_send_state->packet_num. */
  packetNum = 0;
  /** Pages sent since the last sync (a bitmap), and the words of it that have bits set. */
  private readonly sentSinceSync: Uint32Array;
  private readonly sentWords: number[] = [];
  private pending: Uint32Array;
  private pendingCount = 0;
  private nextChannel = 0;
  private readonly channelsReady: Notifier;
  private readonly cores: CorePool;
  private quit = false;
  private counters: RamCounters = { transferred: 0, normal: 0, duplicate: 0 };
  /** Count bytes when the migration thread hands a packet over (7.2), or once the channel wrote it (9.x). */
  readonly accountAtQueue: boolean;
  /** Sync per section (end of ram_save_iterate, up to 7.2) or per round (bitmap wrap, 8.0 on). */
  readonly syncPerRound: boolean;

  constructor(
    private readonly p: Platform,
    private readonly link: MigrationLink,
    spec: MultifdSpec,
    profile: QemuProfile,
    private readonly host: HostCosts,
    private readonly ram: GuestMemory,
    private readonly sink: PageSink,
    private readonly trace: Trace,
  ) {
    this.detection = spec.zero_page_detection;
    this.pageCount = Math.floor(MULTIFD_PACKET_SIZE / ram.pageSize);
    this.packetLen = MULTIFD_PACKET_HEADER_BYTES + MULTIFD_OFFSET_BYTES * this.pageCount;
    this.accountAtQueue = !profile.zero_page_detection;
    this.syncPerRound = profile.multifd_sync === 'per-round';
    this.pending = new Uint32Array(this.pageCount);
    this.sentSinceSync = bitmapNew(ram.pages);
    this.channelsReady = p.createNotifier('multifd_send_state.channels_ready');
    this.cores = new CorePool(p, host.migration_cores);
    const streams = link.openChannels(spec.channels);
    for (let i = 0; i < spec.channels; i++) this.channels.push(new MultifdChannel(p, i, streams[i]!, this.pageCount));
  }

  /** RAM save's counters, which multifd's packets add to. */
  bind(counters: RamCounters): void {
    this.counters = counters;
  }

  /** QEMU: multifd_save_setup: one multifd_send_thread per channel. */
  start(): void {
    for (const ch of this.channels) this.p.spawn(ch.name, () => this.sendThread(ch));
  }

  /**
   * A page leaves the migration thread, on a channel or (a legacy zero page)
   * on the main stream. A page sent twice between two syncs could arrive
   * older copy last: that is a lost page.
   */
  noteSent(page: number): void {
    const w = page >>> 5;
    const bit = 1 << (page & 31);
    const word = this.sentSinceSync[w]!;
    if ((word & bit) !== 0) {
      throw new InvariantError('lost-page',
        `page ${page} sent twice between two multifd syncs: the destination may load its older copy last`);
    }
    if (word === 0) this.sentWords.push(w);
    this.sentSinceSync[w] = word | bit;
  }

  /** The page left the migration thread since the last multifd sync: it may still be in a channel, on its way. */
  sentThisRound(page: number): boolean {
    return (this.sentSinceSync[page >>> 5]! & (1 << (page & 31))) !== 0;
  }

  /** QEMU: multifd_queue_page: adds a page to the packet; true when the packet is full (send it with sendPages). */
  queuePage(page: number): boolean {
    this.noteSent(page);
    this.pending[this.pendingCount++] = page;
    if (this.accountAtQueue) this.counters.normal++;
    return this.pendingCount === this.pageCount;
  }

  /** QEMU: multifd_send_pages: hands the packet to the next channel with no job, waiting for one if all are busy. */
  *sendPages(): Co<void> {
    const n = this.channels.length;
    let ch: MultifdChannel | null = null;
    for (;;) {
      for (let k = 0; k < n && !ch; k++) {
        const c = this.channels[(this.nextChannel + k) % n]!;
        if (c.jobs.length === 0) ch = c;
      }
      if (ch) break;
      yield* this.p.wait([this.channelsReady], -1);
      this.channelsReady.read();
    }
    this.nextChannel = (ch.id + 1) % n;
    this.packetNum++;
    const count = this.pendingCount;
    // The page arrays change hands, as QEMU's do.
    const pages = this.pending;
    this.pending = ch.pages;
    ch.pages = pages;
    this.pendingCount = 0;
    ch.jobs.push({ pages, count, sync: false });
    if (this.accountAtQueue) this.account(count * this.ram.pageSize + this.packetLen);
    ch.sem.set();
  }

  /**
   * QEMU: multifd_send_sync_main: sends the partial packet, a SYNC packet on
   * every channel, and waits until every channel has written it.
   */
  *syncMain(): Co<void> {
    if (this.pendingCount > 0) yield* this.sendPages();
    for (const ch of this.channels) {
      this.packetNum++;
      ch.jobs.push({ pages: NO_PAGES, count: 0, sync: true });
      if (this.accountAtQueue) this.account(this.packetLen);
      ch.sem.set();
    }
    for (const w of this.sentWords) this.sentSinceSync[w] = 0;
    this.sentWords.length = 0;
    const t0 = this.p.nowNs();
    for (const ch of this.channels) {
      while (ch.syncsDone === 0) {
        yield* this.p.wait([ch.semSync], -1);
        ch.semSync.read();
      }
      ch.syncsDone--;
    }
    const waited = this.p.nowNs() - t0;
    this.syncWaits++;
    this.syncWaitTotalNs += waited;
    this.syncWaitMaxNs = Math.max(this.syncWaitMaxNs, waited);
    this.trace.event(this.p.current().name, 'multifd_send_sync_main', { packet_num: this.packetNum, waited_ns: waited });
  }

  /** QEMU: multifd_send_terminate_threads: the channel threads end (a job not yet written is dropped). */
  terminate(): void {
    this.quit = true;
    for (const ch of this.channels) ch.sem.set();
  }

  private account(bytes: number): void {
    this.link.account(bytes);
    this.counters.transferred += bytes;
  }

  /** QEMU: multifd_send_thread, outside the BQL. */
  private *sendThread(ch: MultifdChannel): Co<void> {
    const p = this.p;
    const detect = this.detection === 'multifd';
    for (;;) {
      while (ch.jobs.length === 0 && !this.quit) {
        yield* p.wait([ch.sem], -1);
        ch.sem.read();
      }
      if (this.quit) return;
      const job = ch.jobs[0]!;
      let zeros = 0;
      // QEMU: multifd_send_zero_page_detect sorts the zero pages to the end of the packet.
      for (let i = 0; i < job.count; i++) {
        const zero = detect && this.ram.isZeroPage(job.pages[i]!);
        ch.zero[i] = zero ? 1 : 0;
        if (zero) zeros++;
      }
      const normals = job.count - zeros;
      // Scanning, then writev's copy of the normal pages into the socket.
      yield* this.cores.run(Math.round(zeros * this.host.zero_page_scan_ns + normals * this.host.page_send_ns), ch.coreWake);
      // The pages as they are when the channel copies them (a page written
      // since is dirty again and goes in a later round).
      for (let i = 0; i < job.count; i++) this.sink.savePage(job.pages[i]!, ch.zero[i] === 1);
      const destNs = this.sink.takeLoadCostNs?.() ?? 0;
      const bytes = this.packetLen + normals * this.ram.pageSize;
      if (!this.accountAtQueue) {
        this.account(bytes);
        this.counters.normal += normals;
        this.counters.duplicate += zeros;
      }
      ch.packets++;
      ch.normalPages += normals;
      this.trace.event(ch.name, 'multifd_send', {
        id: ch.id, normal: normals, zero: zeros, flags: job.sync ? 1 : 0, next_packet_size: normals * this.ram.pageSize,
      });
      yield* ch.stream.write(bytes, destNs);
      ch.jobs.shift();
      if (job.sync) {
        ch.syncsDone++;
        ch.semSync.set();
      }
      this.channelsReady.set();
    }
  }
}
