// The destination side of a migration: what it received of each page (the
// content version), and the switchover check. At switchover every page must
// hold exactly what the source holds, and every write the guest saw
// acknowledged must be on the flushed (shared) disk; the first difference is
// an invariant violation naming the page or sector. MigrationDestination is
// what the source's migration code talks to; on KVM it is a second process
// at the end of a TCP stream (real/migration-stream.ts), whose sends and
// waits throw MigrationStreamError when the stream breaks or stops moving.
// What a page costs the destination depends on whether its RAM holds the
// page yet (QEMU 7.2, ram_load_precopy): the first write to a page it never
// touched faults it in; a zero page is only checked (ram_handle_compressed:
// buffer_is_zero, then no memset), which reads the kernel's shared zero page
// for a page never touched and 4 KiB of RAM for one it holds. With
// -mem-prealloc (migration.destination_prealloc) it holds every page from the
// start.
import { HOST_COSTS_DEFAULT, type HostCosts } from '../scenario/qemu.ts';
import { bitmapNew, popcount32, setRange, testAndSetBit, testBit } from '../util/bitmap.ts';
import { PageVersions } from './page-versions.ts';
import type { GuestRam } from '../guest/ram.ts';
import type { GuestMemory, PageSink } from '../guest/memory.ts';
import type { BlkDevice } from '../devices/devices.ts';
import type { Machine } from '../machine.ts';
import type { Co, Platform } from '../platform.ts';
import { InvariantError } from '../invariant.ts';
import type { MigrationLink, MigrationWire } from './link.ts';

/** Destination's time to load device state and start its vCPUs (not in QEMU's downtime, which ends at the source's last write). */
export const DEST_START_NS = 1_000_000;

/**
 * The stream to the destination broke or stopped moving (QEMU: an error on
 * the migration QEMUFile, which migration_detect_error and migrate_set_error
 * turn into MIGRATION_STATUS_FAILED). `lost`: it happened after the source
 * told the destination to start, so the guest may run there and the source
 * must not resume it; before that the source resumes.
 */
export class MigrationStreamError extends Error {
  constructor(message: string, readonly lost = false) {
    super(message);
    this.name = 'MigrationStreamError';
  }
}

/** The far end of the migration stream, as the source sees it. */
export interface MigrationDestination extends PageSink {
  readonly pagesReceived: number;
  /** True once the VM runs there. */
  running: boolean;
  /** What carries the stream's bytes; null: the modelled link (MigrationLink sleeps for them). */
  readonly wire: MigrationWire | null;
  /** QEMU: the device part of qemu_savevm_state_complete_precopy: every device's vmstate, about `bytes`. */
  sendDeviceState(link: MigrationLink, bytes: number): Co<void>;
  /**
   * The stream's last byte reaches the destination, which loads the device
   * state and is checked: every page equal to the source's, every acknowledged
   * write on the flushed disk (InvariantError on the first loss). Returns the
   * time the check itself took, which is not downtime: QEMU makes no such check.
   */
  arrive(src: GuestMemory, disks: readonly BlkDevice[], link: MigrationLink): Co<number>;
  /** QEMU: process_incoming_migration_bh -> vm_start: the VM runs on the destination. */
  start(source: Machine): void;
}

export class Destination implements MigrationDestination {
  readonly pages: number;
  /** What the destination holds of each page, as differences from the source's initial image. */
  readonly versions: PageVersions;
  readonly wire = null;
  pagesReceived = 0;
  running = false;

  /** Pages the destination's RAM holds (written, or preallocated); a zero page's check leaves a page untouched. */
  private readonly touched: Uint32Array;
  private loadCostNs = 0;

  /** prealloc: QEMU's -mem-prealloc, every page held from the start (touch_all_pages). */
  constructor(private readonly platform: Platform, readonly src: GuestRam, private readonly host: HostCosts = HOST_COSTS_DEFAULT, prealloc = false) {
    this.pages = src.pages;
    this.versions = new PageVersions(src);
    this.touched = bitmapNew(this.pages);
    if (prealloc) setRange(this.touched, 0, this.pages);
  }

  /**
   * A page arrives with the content the source has when it sends it. QEMU's
   * ram_load writes a normal page (its first write to a page it never touched
   * faults it in); a zero page is only checked (ram_handle_compressed
   * skips the memset when buffer_is_zero finds the page zero already): the
   * shared zero page's scan, as on the source, for a page never touched,
   * a read of the page for one the destination holds.
   */
  savePage(page: number, zero: boolean): void {
    this.versions.set(page, this.src.version(page));
    this.pagesReceived++;
    const h = this.host;
    if (zero) this.loadCostNs += testBit(this.touched, page) ? h.dest_zero_page_ns : h.zero_page_scan_ns;
    else this.loadCostNs += testAndSetBit(this.touched, page) ? h.dest_page_ns : h.dest_first_touch_ns;
  }

  /**
   * XBZRLE found the page byte for byte as the destination has it: its
   * version is the source's again, at no cost. Checked: the versions must
   * stand for the same bytes (equal, or a byte counter back at its value).
   */
  unchanged(page: number): void {
    const had = this.versions.get(page);
    const now = this.src.version(page);
    if (had !== now && !(this.src.isByteCounterPage(page) && (had & 255) === (now & 255))) {
      throw new InvariantError('lost-page',
        `xbzrle sent nothing for page ${page} (unchanged), but the destination has version ${had} and the source ${now}`);
    }
    this.versions.set(page, now);
  }

  /**
   * A run of pages arrives (the first pass sends whole words of them);
   * returns the zero pages among them. Word by word: a word of pages never
   * written is 32 zero pages whose content the destination has; otherwise its
   * versions are copied (PageVersions.copyWord: next to nothing for a word
   * the guest never rewrote), and its normal pages written (and touched).
   * first and count are multiples of 32 (whole words of the bitmap).
   */
  saveRun(first: number, count: number): number {
    const src = this.src;
    const dv = this.versions;
    const touched = this.touched;
    let zeros = 0;
    let zerosHeld = 0;
    let fresh = 0;
    for (let w = first >>> 5, end = (first + count) >>> 5; w < end; w++) {
      const base = w * 32;
      const t = touched[w]!;
      const unwritten = src.unwrittenMask(base);
      if (unwritten === -1) {
        zeros += 32;
        zerosHeld += popcount32(t);
        continue;
      }
      dv.copyWord(w);
      const zero = src.zeroMask(base, unwritten);
      const normal = ~zero;
      zeros += popcount32(zero);
      zerosHeld += popcount32(zero & t);
      fresh += popcount32(normal & ~t);
      touched[w] = t | normal;
    }
    this.pagesReceived += count;
    const h = this.host;
    this.loadCostNs += fresh * h.dest_first_touch_ns + (count - fresh - zeros) * h.dest_page_ns +
      zerosHeld * h.dest_zero_page_ns + (zeros - zerosHeld) * h.zero_page_scan_ns;
    return zeros;
  }

  /** Bytes of host memory the destination's page state holds now. */
  get bytes(): number {
    return this.versions.bytes + this.touched.byteLength;
  }

  takeLoadCostNs(): number {
    const ns = this.loadCostNs;
    this.loadCostNs = 0;
    return ns;
  }

  *sendDeviceState(link: MigrationLink, bytes: number): Co<void> {
    yield* link.send(bytes);
  }

  /**
   * The last byte leaves the socket and takes the link's latency to arrive;
   * loading and starting take DEST_START_NS. A link-break before it arrives
   * loses the end of the stream: the destination never starts, and the
   * source, which told it to, must not run the guest again (QEMU's source
   * would even report completed; the model reports the loss).
   */
  *arrive(_src: GuestMemory, disks: readonly BlkDevice[], link: MigrationLink): Co<number> {
    if (link.breaks.length === 0) {
      yield* this.platform.sleep(link.arrivalNs() + DEST_START_NS);
    } else {
      const t0 = this.platform.nowNs();
      const arriveAt = t0 + link.arrivalNs();
      yield* this.platform.sleep(arriveAt - t0);
      const cut = link.breakBetween(link.connectedAtNs, arriveAt);
      if (cut) throw new MigrationStreamError(`the stream broke (${cut.name}) before the destination had the device state`, true);
      yield* this.platform.sleep(DEST_START_NS);
    }
    this.verify(this.src, disks);
    return 0;
  }

  /** One process models both sides: the destination's start is the source machine's vm_start. */
  start(source: Machine): void {
    source.vmStart();
  }

  /** The first page whose content differs from the source's, or -1. */
  firstDifferentPage(src: GuestRam): number {
    return this.versions.firstDifference(src);
  }

  /** Checks memory and disks at switchover; throws InvariantError on the first loss. */
  verify(src: GuestRam, disks: readonly BlkDevice[]): void {
    const page = this.firstDifferentPage(src);
    if (page >= 0) {
      throw new InvariantError('lost-page',
        `page ${page} (guest address 0x${(page * src.pageSize).toString(16)}) differs at switchover: ` +
        `destination has version ${this.versions.get(page)}, source ${src.version(page)}`);
    }
    verifyDisks(disks);
  }
}

/** Every write the guest saw acknowledged is on the flushed disk; throws InvariantError otherwise. */
export function verifyDisks(disks: readonly BlkDevice[]): void {
  for (const d of disks) {
    const acked = d.driver.acked;
    const stable = d.backend.stable;
    for (let b = 0; b < acked.length; b++) {
      if (acked[b]! > stable[b]!) {
        const sector = (b * d.dev.spec.io.request_bytes) / 512;
        throw new InvariantError('lost-write',
          `${d.dev.spec.name} sector ${sector}: the guest saw write version ${acked[b]} acknowledged, ` +
          `the flushed disk has version ${stable[b]}`);
      }
    }
  }
}
