// Postcopy live migration (QEMU >= 2.5, as QEMU 7.2 does it; the version
// profile says what changed since). Once migrate-start-postcopy took effect
// the source stops the VM, sends the discard bitmap (the pages dirty at the
// last sync, which the destination drops: ram_postcopy_send_discard_bitmap)
// and a package of the device state; the destination starts the guest while
// those pages are missing. A guest write to a missing page faults
// (userfaultfd): the vCPU waits while the destination's fault thread asks the
// source for the page on the return path (MIG_RP_MSG_REQ_PAGES, once per
// page: page_requested). The source queues it (ram_save_queue_pages) and the
// migration thread sends it ahead of its background scan (get_queued_page,
// which skips a page already sent), the scan going on after it; on the main
// channel the page waits behind whatever the socket already holds, with
// postcopy-preempt (7.1 on) it takes a channel of its own, sent by the
// return-path thread itself from 8.0. Pages arrive in order on each channel
// and are placed once each (UFFDIO_COPY: a second placement fails with
// EEXIST, here an invariant violation). When every page is sent, the source
// ends the stream and completes once the destination's SHUT comes back.
// A link-break pauses both sides (postcopy-paused, 3.0 on; before, the
// migration fails and the guest is lost); what was in flight is lost. After
// the link is back and the scenario's recovery delay, migrate-recover and
// migrate -r: a new connection, the destination's received bitmap (what is
// not in it is dirty again: ram_dirty_bitmap_reload), the resume handshake,
// and the destination asks again for the pages its vCPUs still wait for.
// A break before the switch's package arrived leaves a destination that never
// entered postcopy: nothing can be recovered, the migration stays paused.
// At the end the destination must hold every page as the source had it when
// it stopped (the destination check, for postcopy).
// Leaves out: huge pages (postcopy_chunk_hostpages, preempting a host page
// half sent), the two channels sharing the wire's bandwidth, the destination's
// fault thread and preempt thread as threads of their own (their CPU time),
// postcopy-blocktime, release-ram, migrate-pause, a failed recovery attempt
// (the destination always accepts migrate-recover once it is paused).
import type { Machine } from '../machine.ts';
import type { BlkDevice } from '../devices/devices.ts';
import type { GuestRam, PageGate, RamImage } from '../guest/ram.ts';
import type { PageSink } from '../guest/memory.ts';
import type { Co, Notifier, Platform } from '../platform.ts';
import type { HostCosts, LinkBreak, MigrationSpec, PostcopySpec, QemuProfile } from '../scenario/scenario.ts';
import { Histogram } from '../instrument/histogram.ts';
import { InvariantError, invariant } from '../invariant.ts';
import { bitmapNew, clearBit, countSetBits, findNextBit, testBit } from '../util/bitmap.ts';
import { DEST_START_NS, MigrationStreamError, verifyDisks, type Destination } from './destination.ts';
import { MigrationLink } from './link.ts';
import type { RamState } from './ram.ts';

/**
 * QEMU: IO_BUF_SIZE (migration/qemu-file.c), 32 KiB: the migration thread
 * writes its QEMUFile buffer out when it is full, blocking while the socket
 * is, and looks at the request queue between host pages: a request waits
 * for at most one buffer's write.
 */
export const POSTCOPY_CHUNK_BYTES = 32 * 1024;
/** QEMU: a discard range on the wire: be64 start and be64 length (savevm.c). */
const DISCARD_RANGE_BYTES = 16;
/** QEMU: MAX_DISCARDS_PER_COMMAND (migration/postcopy-ram.c), each command with its header and RAMBlock name. */
const DISCARDS_PER_COMMAND = 12;
const DISCARD_COMMAND_BYTES = 11;
/** The package's own bytes besides the device state: LISTEN, the pings, RUN and its length. */
const PACKAGE_HEADER_BYTES = 32;
/** QEMU: RAM_SAVE_FLAG_EOS. */
const EOS_BYTES = 8;

/** What Postcopy needs of the migration that owns it. */
export interface PostcopyHost {
  readonly machine: Machine;
  readonly link: MigrationLink;
  readonly ram: RamState;
  readonly dest: Destination;
  readonly guestRam: GuestRam;
  readonly disks: readonly BlkDevice[];
  readonly spec: MigrationSpec;
  readonly profile: QemuProfile;
  readonly host: HostCosts;
  /** A status change in the statechart. */
  event(type: 'POSTCOPY_PAUSE' | 'POSTCOPY_RECOVER' | 'POSTCOPY_RESUMED' | 'COMPLETED'): void;
  fail(reason: string): void;
  /** migration_update_counters when its window is over (snapshots, the bandwidth estimate). */
  updateCounters(): void;
  /** The destination ran the guest from atNs on. */
  destinationStarted(atNs: number): void;
  /** The migration is over (completed or failed). */
  readonly finished: boolean;
}

/** One channel to the destination, and the pages in flight on it in arrival order. */
class Channel {
  private pages: number[] = [];
  private arrive: number[] = [];
  private versions: number[] = [];
  private head = 0;
  /** Page -> when it arrives, for the pages in flight. */
  private readonly at = new Map<number, number>();

  constructor(readonly name: string, readonly link: MigrationLink) {}

  push(page: number, arriveNs: number, version: number): void {
    this.pages.push(page);
    this.arrive.push(arriveNs);
    this.versions.push(version);
    this.at.set(page, arriveNs);
  }

  /** Hands every page that arrived by tNs to place, in order. */
  takeDue(tNs: number, place: (page: number, version: number) => void): void {
    while (this.head < this.pages.length && this.arrive[this.head]! <= tNs) {
      const i = this.head++;
      const page = this.pages[i]!;
      if (this.at.get(page) === this.arrive[i]) this.at.delete(page);
      place(page, this.versions[i]!);
    }
    if (this.head === this.pages.length && this.head > 0) this.clear();
  }

  /** When page arrives, or -1 when it is not in flight here. */
  arrivalOf(page: number): number {
    return this.at.get(page) ?? -1;
  }

  /** The connection broke: what is in flight is lost. Returns how many pages. */
  drop(): number {
    const n = this.pages.length - this.head;
    this.clear();
    this.link.drop();
    return n;
  }

  private clear(): void {
    this.pages = [];
    this.arrive = [];
    this.versions = [];
    this.head = 0;
    this.at.clear();
  }
}

/** Pages one sender handed to the sink for its next write, with their bytes so far. */
interface Batch {
  pages: number[];
  ends: number[];
  bytes: number;
  loadNs: number;
}

const newBatch = (): Batch => ({ pages: [], ends: [], bytes: 0, loadNs: 0 });

/**
 * Where RAM save puts pages in postcopy: into the batch of the write about
 * to be made (begun just before it, so the two senders' writes never mix),
 * whose pages go in flight once the write is done; a write that fails takes
 * its batch with it. The destination places a page as UFFDIO_COPY (or
 * UFFDIO_ZEROPAGE) into memory it never touched.
 */
class PostcopySink implements PageSink {
  private target: Batch = newBatch();

  constructor(private readonly pageBytes: number, private readonly zeroBytes: number, private readonly placeNs: number) {}

  savePage(page: number, zero: boolean): void {
    const b = this.target;
    b.bytes += zero ? this.zeroBytes : this.pageBytes;
    b.pages.push(page);
    b.ends.push(b.bytes);
    b.loadNs += this.placeNs;
  }

  /** A new batch for the next write, which RAM save fills before its first yield. */
  begin(): Batch {
    this.target = newBatch();
    return this.target;
  }

  takeLoadCostNs(): number {
    const ns = this.target.loadNs;
    this.target.loadNs = 0;
    return ns;
  }
}

/** A fault a vCPU is waiting on: which page, since when. */
interface OpenFault {
  readonly page: number;
  readonly t0: number;
}

type Phase = 'precopy' | 'switching' | 'running' | 'done';

export class Postcopy {
  /** When postcopy_start began (-1: not yet); the migration sets it. */
  startedAtNs = -1;
  /** Guest accesses that waited for a page on the destination. */
  faults = 0;
  /** From a fault to the page's placement. */
  readonly faultLatency = new Histogram();
  /** Time vCPUs spent waiting for pages, all vCPUs together. */
  stallNs = 0;
  /** Pages the source sent because the destination asked for them. */
  requestedPages = 0;
  /** Pages the background scan sent after the switch. */
  backgroundPages = 0;
  /** QEMU: postcopy-requests: requests the source received. */
  requests = 0;
  /** Times the migration entered postcopy-paused, and came back from it. */
  paused = 0;
  recovered = 0;
  /** Pages lost in flight to link-breaks. */
  lostInFlight = 0;
  /** When migrate-start-postcopy was issued (-1: not yet). */
  commandAtNs = -1;
  /** Why the migration cannot be recovered (empty: it can). */
  unrecoverable = '';

  readonly gate: PageGate;
  private phase: Phase = 'precopy';
  private readonly p: Platform;
  private readonly spec: PostcopySpec;
  private readonly main: Channel;
  private readonly urgent: Channel;
  private readonly sink: PostcopySink;
  /** The source's memory as it stopped at the switch. */
  private snapshot: RamImage | null = null;
  /** The destination: pages not placed yet. */
  private readonly missing: Uint32Array;
  private missingCount = 0;
  /** QEMU: mis->page_requested: pages asked for and not yet placed. */
  private readonly requested = new Set<number>();
  private readonly waiters = new Map<number, Notifier[]>();
  private readonly vcpuWake: Notifier[] = [];
  private readonly open: (OpenFault | null)[] = [];
  /** QEMU: src_page_requests, and what wakes the migration thread for it (migration_make_urgent_request). */
  private readonly queue: number[] = [];
  private readonly urgentRequest: Notifier;
  /** Return-path messages that arrived at the source (pages asked for). */
  private readonly inbox: number[] = [];
  private readonly inboxReady: Notifier;
  /** Bumped on every break: what was sent before it and arrives after it is lost. */
  private epoch = 0;
  /** The break the migration is paused by (null: running). */
  private broken: LinkBreak | null = null;
  private destPaused = false;
  private destStarted = false;
  /** Between migrate -r and the resume ack. */
  private recovering = false;
  /** When the switch's package reaches the destination (-1: not sent). */
  private packageArriveNs = -1;
  private readonly resendQueued: boolean;

  constructor(private readonly h: PostcopyHost) {
    this.p = h.machine.platform;
    this.spec = h.spec.postcopy!;
    const link = h.link;
    this.main = new Channel('main', link);
    const preemptLink = new MigrationLink(this.p, link.bandwidth, link.latencyNs, 0);
    preemptLink.breaks = link.breaks;
    preemptLink.guard = () => {
      const b = preemptLink.breakBetween(preemptLink.connectedAtNs, this.p.nowNs());
      if (b) throw new MigrationStreamError(`the postcopy preempt channel broke (${b.name})`);
    };
    this.urgent = this.spec.preempt ? new Channel('preempt', preemptLink) : this.main;
    const header = h.spec.page_header_bytes;
    this.sink = new PostcopySink(h.guestRam.pageSize + header, header + 1, h.host.dest_first_touch_ns);
    this.missing = bitmapNew(h.guestRam.pages);
    this.urgentRequest = this.p.createNotifier('migration.urgent_request');
    this.inboxReady = this.p.createNotifier('return_path.messages');
    this.resendQueued = h.spec.bug === 'resend-queued-page';
    for (let v = 0; v < h.machine.vcpus.length; v++) {
      this.vcpuWake.push(this.p.createNotifier(`vcpu${v}.userfault`));
      this.open.push(null);
    }
    this.gate = {
      missing: this.missing,
      refresh: () => this.refresh(this.p.nowNs()),
      fault: (vcpu, page, interrupt) => this.fault(vcpu, page, interrupt),
    };
    for (const b of link.breaks) this.p.callAfter(Math.max(0, b.at_ns - this.p.nowNs()), () => this.onBreak(b));
  }

  /** The source's memory as it stopped at the switch (null before it). */
  get sourceAtSwitch(): RamImage | null {
    return this.snapshot;
  }

  get preempt(): boolean {
    return this.spec.preempt;
  }

  /** The switch is done: the migration thread runs postcopy (run()). */
  get switched(): boolean {
    return this.phase === 'running' || this.phase === 'done';
  }

  /** QEMU: qmp_migrate_start_postcopy at start_at (armed when the migration starts). */
  armStartAt(): void {
    if (this.spec.start_at_ns < 0) return;
    this.p.callAfter(Math.max(0, this.spec.start_at_ns - this.p.nowNs()), () => this.command());
  }

  private command(): void {
    if (this.commandAtNs >= 0) return;
    this.commandAtNs = this.p.nowNs();
    this.h.machine.trace.event('qmp', 'migrate-start-postcopy');
  }

  /** QEMU: s->start_postcopy, with start_after_passes issuing the command once the passes are done. */
  startRequested(dirtySyncCount: number): boolean {
    if (this.phase !== 'precopy') return false;
    if (this.spec.start_after_passes >= 0 && dirtySyncCount >= this.spec.start_after_passes + 1) this.command();
    return this.commandAtNs >= 0;
  }

  /**
   * QEMU: ram_postcopy_send_discard_bitmap, after the last sync with the VM
   * stopped: the source memory is what it is now; the dirty pages are missing
   * on the destination from here on; the scan starts over; postcopy's sink
   * and rate limit take over. Returns the discard messages' bytes.
   */
  switchOver(): number {
    const h = this.h;
    this.phase = 'switching';
    this.snapshot = h.guestRam.snapshot();
    this.missing.set(h.ram.bitmap);
    this.missingCount = h.ram.dirtyPages;
    invariant(countSetBits(this.missing, h.guestRam.pages) === this.missingCount, 'dirty pages counted and in the migration bitmap differ at the switch');
    h.ram.setSink(this.sink);
    h.ram.restartScan();
    h.ram.cleanup();
    h.guestRam.gate = this.gate;
    this.urgent.link.connectedAtNs = this.main.link.connectedAtNs;
    this.main.link.rateLimit = this.spec.max_bandwidth > 0 ? this.spec.max_bandwidth : Infinity;
    const ranges = countRuns(this.missing, h.guestRam.pages);
    return ranges * DISCARD_RANGE_BYTES + Math.ceil(ranges / DISCARDS_PER_COMMAND) * DISCARD_COMMAND_BYTES;
  }

  /** The bytes of the switch's package: the device state wrapped with LISTEN and RUN. */
  packageBytes(deviceStateBytes: number): number {
    return deviceStateBytes + PACKAGE_HEADER_BYTES;
  }

  /**
   * The package is in the socket: the source's part of the switch is done.
   * The return-path thread starts, and the destination runs the guest once
   * the package arrived and its device state loaded
   * (loadvm_postcopy_handle_run_bh), unless a break lost the package.
   */
  listen(): void {
    const m = this.h.machine;
    this.phase = 'running';
    this.packageArriveNs = this.p.nowNs() + this.main.link.arrivalNs();
    m.trace.event(this.p.current().name, 'postcopy_start_set_run');
    this.p.spawn('return path', () => this.returnPathThread());
    this.p.spawn('postcopy/listen', () => this.destinationStart());
  }

  private *destinationStart(): Co<void> {
    const p = this.p;
    const m = this.h.machine;
    yield* p.sleep(Math.max(0, this.packageArriveNs - p.nowNs()));
    if (this.unrecoverable) return;
    yield* p.sleep(DEST_START_NS);
    yield* m.bql.lock('loadvm_postcopy_handle_run_bh');
    if (m.runstate.running) throw new InvariantError('split-brain', 'the source runs while the destination starts in postcopy');
    this.verifyReceived();
    verifyDisks(this.h.disks);
    this.destStarted = true;
    this.h.dest.running = true;
    this.h.dest.start(m);
    m.bql.unlock();
    this.h.destinationStarted(p.nowNs());
  }

  /**
   * At the destination's start every page it was not told to discard must
   * hold what the source has (pre-copy sent it and it was not dirtied since).
   */
  private verifyReceived(): void {
    const snap = this.snapshot!;
    const versions = this.h.dest.versions;
    const page = versions.firstDifference(snap, this.missing);
    if (page >= 0) {
      throw new InvariantError('lost-page',
        `page ${page} (guest address 0x${(page * this.h.guestRam.pageSize).toString(16)}) differs when the destination starts in postcopy: ` +
        `destination has version ${versions.get(page)}, source ${snap.version(page)}, and it was not discarded`);
    }
  }

  // --- the source's migration thread after the switch ---

  /** QEMU: migration_thread in postcopy: requested pages first, then the background scan, until all is sent. */
  *run(): Co<void> {
    const h = this.h;
    let idle = 0;
    for (;;) {
      if (h.finished) return;
      if (this.broken) {
        if (!(yield* this.pause())) return;
        continue;
      }
      try {
        if (h.ram.dirtyPages === 0) {
          if (yield* this.complete()) return;
          continue;
        }
        if (this.queue.length > 0) {
          yield* this.serveQueue();
          continue;
        }
        const link = this.main.link;
        if (link.rateExceeded()) {
          // max-postcopy-bandwidth: wait for the window's end, or a request (migration_rate_limit).
          const ready = yield* this.p.wait([this.urgentRequest], Math.max(1, link.windowLeftNs()));
          if (ready.length > 0) this.urgentRequest.read();
          h.updateCounters();
          continue;
        }
        const epoch = this.epoch;
        const batch = this.sink.begin();
        const sent = yield* h.ram.savePages(link, Math.min(POSTCOPY_CHUNK_BYTES, link.windowBudget()));
        this.backgroundPages += this.commit(this.main, batch, epoch);
        // A pass that found nothing wraps to page 0; twice in a row with pages counted dirty is a bug.
        idle = sent === 0 ? idle + 1 : 0;
        invariant(idle < 2, `${h.ram.dirtyPages} dirty pages counted but none in the migration bitmap (postcopy)`);
        h.updateCounters();
      } catch (e) {
        this.streamError(e);
      }
    }
  }

  /** A write failed: the guard's break, handled as its event would (it may not have run yet). */
  private streamError(e: unknown): void {
    if (!(e instanceof MigrationStreamError)) throw e;
    const b = this.main.link.breakBetween(this.main.link.connectedAtNs, this.p.nowNs())
      ?? this.urgent.link.breakBetween(this.urgent.link.connectedAtNs, this.p.nowNs());
    invariant(b !== null, `a postcopy stream error without a link-break: ${e.message}`);
    this.onBreak(b);
  }

  /** QEMU: get_queued_page + ram_save_host_page for each queued request, on the urgent channel. */
  private *serveQueue(): Co<void> {
    while (this.queue.length > 0 && !this.broken) {
      const page = this.queue.shift()!;
      yield* this.sendRequested(page, true);
    }
  }

  /** One requested page: sent if still dirty (get_queued_page), else skipped. */
  private *sendRequested(page: number, moveScan: boolean): Co<void> {
    const m = this.h.machine;
    const thread = this.p.current().name;
    const epoch = this.epoch;
    const batch = this.sink.begin();
    if (yield* this.h.ram.saveQueuedPage(this.urgent.link, page, moveScan)) {
      m.trace.event(thread, 'get_queued_page', { page });
      this.requestedPages += this.commit(this.urgent, batch, epoch);
      return;
    }
    m.trace.event(thread, 'get_queued_page_not_dirty', { page });
    if (!this.resendQueued) return;
    // The planted bug: the page goes out again although the background stream sent it.
    this.sink.savePage(page, this.h.guestRam.isZeroPage(page));
    yield* this.urgent.link.send(batch.bytes, { destNs: this.sink.takeLoadCostNs() });
    this.requestedPages += this.commit(this.urgent, batch, epoch);
  }

  /**
   * The pages of a write are in the socket: each arrives when the wire has
   * taken the bytes before it, plus the latency (unless the link broke since
   * the write began: then they are lost). Returns how many went in flight.
   */
  private commit(ch: Channel, batch: Batch, epoch: number): number {
    const n = batch.pages.length;
    if (n === 0) return 0;
    const { pages, ends, bytes } = batch;
    if (epoch !== this.epoch) {
      this.lostInFlight += n;
      return n;
    }
    const link = ch.link;
    const from = link.lastSendFromNs;
    const span = link.lastSendToNs - from;
    const snap = this.snapshot!;
    for (let i = 0; i < n; i++) {
      const page = pages[i]!;
      ch.push(page, Math.round(from + (span * ends[i]!) / bytes) + link.latencyNs, snap.version(page));
      const w = this.waiters.get(page);
      if (w) for (const x of w) x.set();
    }
    return n;
  }

  /**
   * QEMU: migration_completion in postcopy-active: qemu_savevm_state_complete_postcopy
   * ends the stream, and await_return_path_close_on_source waits for the
   * destination's SHUT, sent once it has placed every page. True when completed.
   */
  private *complete(): Co<boolean> {
    const p = this.p;
    const h = this.h;
    const epoch = this.epoch;
    h.ram.transferred += EOS_BYTES;
    yield* this.main.link.send(EOS_BYTES);
    const until = p.nowNs() + Math.max(this.main.link.arrivalNs(), this.urgent.link.arrivalNs());
    yield* p.sleep(until - p.nowNs());
    if (epoch !== this.epoch) return false;
    this.refresh(p.nowNs());
    this.verifyComplete();
    h.guestRam.gate = null;
    // MIG_RP_MSG_SHUT on the return path. A break before it pauses the return
    // path too (postcopy_pause_return_path_thread); once recovered there is
    // nothing left to send, and the stream ends again.
    yield* p.sleep(this.main.link.latencyNs);
    if (epoch !== this.epoch) return false;
    this.phase = 'done';
    h.event('COMPLETED');
    return true;
  }

  /** Every page placed, each as the source had it when it stopped. */
  private verifyComplete(): void {
    const pages = this.h.guestRam.pages;
    const size = this.h.guestRam.pageSize;
    if (this.missingCount > 0) {
      const page = findNextBit(this.missing, 0, pages);
      throw new InvariantError('lost-page',
        `page ${page} (guest address 0x${(page * size).toString(16)}) never reached the destination: postcopy ended with ${this.missingCount} pages missing`);
    }
    const snap = this.snapshot!;
    const versions = this.h.dest.versions;
    const page = versions.firstDifference(snap);
    if (page >= 0) {
      throw new InvariantError('lost-page',
        `page ${page} (guest address 0x${(page * size).toString(16)}) differs at the end of postcopy: ` +
        `destination has version ${versions.get(page)}, source ${snap.version(page)}`);
    }
  }

  // --- the destination ---

  /** Places every page that arrived by tNs. */
  private refresh(tNs: number): void {
    this.main.takeDue(tNs, this.place);
    if (this.urgent !== this.main) this.urgent.takeDue(tNs, this.place);
  }

  /** QEMU: postcopy_place_page (UFFDIO_COPY): the page is there, its waiters wake. */
  private readonly place = (page: number, version: number): void => {
    if (!testBit(this.missing, page)) {
      throw new InvariantError('duplicate-page',
        `page ${page} (guest address 0x${(page * this.h.guestRam.pageSize).toString(16)}) placed twice on the destination ` +
        '(UFFDIO_COPY into a page already there fails with EEXIST)');
    }
    clearBit(this.missing, page);
    this.missingCount--;
    this.h.dest.versions.set(page, version);
    this.requested.delete(page);
    const w = this.waiters.get(page);
    if (w) {
      for (const n of w) n.set();
      this.waiters.delete(page);
    }
  };

  private arrivalOf(page: number): number {
    const a = this.main.arrivalOf(page);
    const b = this.urgent === this.main ? -1 : this.urgent.arrivalOf(page);
    return a < 0 ? b : b < 0 ? a : Math.min(a, b);
  }

  /**
   * The userfault on vcpu: the fault thread asks for the page (once), and
   * the vCPU sleeps until it is placed. False when interrupt came first.
   */
  private *fault(vcpu: number, page: number, interrupt: Notifier): Co<boolean> {
    const p = this.p;
    const t0 = p.nowNs();
    let f = this.open[vcpu];
    if (!f || f.page !== page) {
      f = { page, t0 };
      this.open[vcpu] = f;
      this.faults++;
      this.h.machine.trace.event(`vcpu${vcpu}`, 'postcopy_ram_fault_thread_request', { page });
      this.request(page);
    }
    const wake = this.vcpuWake[vcpu]!;
    for (;;) {
      this.refresh(p.nowNs());
      if (!testBit(this.missing, page)) break;
      const at = this.arrivalOf(page);
      let ready: readonly Notifier[];
      if (at >= 0) {
        ready = yield* p.wait([interrupt], Math.max(1, at - p.nowNs()));
      } else {
        const w = this.waiters.get(page);
        if (w) {
          if (!w.includes(wake)) w.push(wake);
        } else {
          this.waiters.set(page, [wake]);
        }
        ready = yield* p.wait([wake, interrupt], -1);
        if (ready.includes(wake)) wake.read();
      }
      if (ready.includes(interrupt)) {
        this.stallNs += p.nowNs() - t0;
        return false;
      }
    }
    this.stallNs += p.nowNs() - t0;
    this.faultLatency.record(p.nowNs() - f.t0);
    this.open[vcpu] = null;
    return true;
  }

  /** QEMU: migrate_send_rp_req_pages: once per page not placed; while paused, sent on the resume. */
  private request(page: number): void {
    if (this.requested.has(page)) return;
    this.requested.add(page);
    if (!this.destPaused) this.sendRequest(page);
  }

  /** MIG_RP_MSG_REQ_PAGES on the return path: the link's latency (lost if the link breaks meanwhile). */
  private sendRequest(page: number): void {
    const epoch = this.epoch;
    this.p.callAfter(this.main.link.latencyNs, () => {
      if (epoch !== this.epoch) return;
      this.inbox.push(page);
      this.inboxReady.set();
    });
  }

  // --- the source's return-path thread ---

  /**
   * QEMU: source_return_path_thread -> migrate_handle_rp_req_pages ->
   * ram_save_queue_pages: queue the page for the migration thread, or, with
   * postcopy-preempt from QEMU 8.0, send it on the preempt channel itself.
   */
  private *returnPathThread(): Co<void> {
    const direct = this.spec.preempt && this.h.profile.postcopy_urgent_from_return_path;
    for (;;) {
      yield* this.p.wait([this.inboxReady], -1);
      this.inboxReady.read();
      while (this.inbox.length > 0) {
        const page = this.inbox.shift()!;
        this.requests++;
        this.h.machine.trace.event('return path', 'migrate_handle_rp_req_pages', { page });
        if (this.broken || this.phase === 'done') continue;
        if (!direct) {
          this.queue.push(page);
          this.urgentRequest.set();
          continue;
        }
        try {
          yield* this.sendRequested(page, false);
        } catch (e) {
          this.streamError(e);
        }
      }
    }
  }

  // --- breaks, pause and recovery ---

  /**
   * The link broke (QEMU: an error on the migration channels, then
   * postcopy_pause on the source and postcopy_pause_incoming on the
   * destination): what arrived before the break is placed, the rest is lost.
   * During the switch the switch's own writes fail instead.
   */
  private onBreak(b: LinkBreak): void {
    if (this.phase === 'precopy' || this.phase === 'switching' || this.phase === 'done') return;
    if (this.broken === b) return;
    const h = this.h;
    const m = h.machine;
    const first = this.broken === null;
    this.refresh(b.at_ns);
    this.broken = b;
    this.epoch++;
    this.lostInFlight += this.main.drop() + (this.urgent === this.main ? 0 : this.urgent.drop());
    this.destPaused = true;
    if (!this.destStarted && this.packageArriveNs > b.at_ns) {
      this.unrecoverable = `the stream broke (${b.name}) before the destination had the switch's package: its load failed and it quit`;
    }
    m.trace.event('postcopy/listen', 'postcopy_pause_incoming', { fault: b.name });
    this.urgentRequest.set();
    if (!h.profile.postcopy_recover) {
      this.phase = 'done';
      h.fail(`the postcopy stream broke (${b.name}); QEMU ${h.profile.version} cannot recover it: the guest's missing pages are lost`);
      return;
    }
    if (first || this.recovering) this.paused++;
    this.recovering = false;
    h.event('POSTCOPY_PAUSE');
  }

  /**
   * QEMU: postcopy_pause, then postcopy_do_resume: wait for the link and
   * management (migrate-recover on the destination, migrate -r on the
   * source), connect again, reload the dirty bitmap from the destination's
   * received bitmap, and the resume handshake. True once postcopy-active
   * again; false when it never can be.
   */
  private *pause(): Co<boolean> {
    const p = this.p;
    const h = this.h;
    const m = h.machine;
    const link = this.main.link;
    for (;;) {
      const b = this.broken!;
      const wakeAt = b.at_ns + b.for_ns + this.spec.recover_after_ns;
      if (p.nowNs() < wakeAt) {
        yield* p.sleep(wakeAt - p.nowNs());
        continue;
      }
      const down = link.breakAt(p.nowNs());
      if (down && down !== b) {
        // Down again: management waits for this one too.
        this.onBreak(down);
        continue;
      }
      if (this.unrecoverable) {
        m.trace.event('migration', 'postcopy_pause', { unrecoverable: this.unrecoverable });
        return false;
      }
      h.event('POSTCOPY_RECOVER');
      this.recovering = true;
      m.trace.event('qmp', 'migrate-recover');
      const lat = link.latencyNs;
      // A new connection (and the preempt channel's, at the same time).
      link.connectedAtNs = p.nowNs();
      this.urgent.link.connectedAtNs = p.nowNs();
      yield* p.sleep(2 * lat);
      if (this.brokeAgain()) continue;
      // MIG_CMD_RECV_BITMAP; the destination answers with its received bitmap.
      const bitmapBytes = Math.ceil(h.guestRam.pages / 8) + 16;
      yield* p.sleep(2 * lat + Math.round((bitmapBytes * 1e9) / link.bandwidth));
      if (this.brokeAgain()) continue;
      h.ram.reloadBitmap(this.missing);
      m.trace.event('migration', 'ram_dirty_bitmap_reload_complete', { dirty_pages: h.ram.dirtyPages });
      // MIG_CMD_POSTCOPY_RESUME: the destination is active again and asks anew for what its vCPUs wait on.
      yield* p.sleep(lat);
      if (this.brokeAgain()) continue;
      this.destPaused = false;
      for (const page of this.requested) this.sendRequest(page);
      // MIG_RP_MSG_RESUME_ACK.
      yield* p.sleep(lat);
      if (this.brokeAgain()) continue;
      this.broken = null;
      this.recovering = false;
      this.recovered++;
      link.resetWindow();
      h.event('POSTCOPY_RESUMED');
      m.trace.event('migration', 'postcopy_pause_continued');
      return true;
    }
  }

  /** A break since the new connection: pause again (QEMU: postcopy_pause loops). */
  private brokeAgain(): boolean {
    const link = this.main.link;
    const b = link.breakBetween(link.connectedAtNs, this.p.nowNs());
    if (!b) return false;
    this.onBreak(b);
    return true;
  }
}

/** Runs of consecutive set bits: the discard ranges. */
function countRuns(bitmap: Uint32Array, pages: number): number {
  let runs = 0;
  let page = findNextBit(bitmap, 0, pages);
  while (page < pages) {
    runs++;
    while (page < pages && testBit(bitmap, page)) page++;
    page = findNextBit(bitmap, page, pages);
  }
  return runs;
}
