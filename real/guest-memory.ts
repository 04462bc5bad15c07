// Guest RAM on KVM as migration sees it (sim/guest/memory.ts's GuestMemory):
// the mmap'd memory of one slot at guest-physical 0, handed to JavaScript as
// an ArrayBuffer without copying; its dirty log fetched with KVM_GET_DIRTY_LOG
// into a word bitmap of the simulation's layout (in the WebAssembly arena, so
// migration_bitmap_sync takes its SIMD path); dirty logging switched on and off
// by re-registering the slot with and without KVM_MEM_LOG_DIRTY_PAGES, as
// memory_global_dirty_log_start/stop do through kvm_log_start. What the host
// itself writes into guest memory (a device's used ring, a mailbox) is not in
// KVM's log: writers mark it (QEMU: cpu_physical_memory_set_dirty_range after
// DMA) and logSync adds it. A zero page is
// one whose bytes are all zero (compared natively against a zero page).
// Chunk digests (SHA-256) let two processes check that their memories agree.
// With the dirty ring (real/dirty-ring.ts) KVM_GET_DIRTY_LOG is not used:
// reaping the rings sets the bitmap's bits, and logSync adds the host's own.
// Leaves out: several slots, KVM_CLEAR_DIRTY_LOG's deferred clearing (with
// manual protection the whole log is cleared right after each read).
import { createHash } from 'node:crypto';

import { bitmapNew } from '../sim/util/bitmap.ts';
import type { GuestMemory } from '../sim/guest/memory.ts';
import type { KvmDirtyRings } from '../sim/guest/dirty-ring.ts';
import type { Vm } from './kvm/index.ts';

export const KVM_PAGE_SIZE = 4096;
/** Pages per digest chunk (1 MiB). */
export const DIGEST_CHUNK_PAGES = 256;

export class KvmGuestMemory implements GuestMemory {
  readonly pages: number;
  readonly pageSize = KVM_PAGE_SIZE;
  readonly bytes: Uint8Array;
  /** KVM_GET_DIRTY_LOG's bitmap: KVM writes whole 64-bit words, so it covers pages rounded up to 64. */
  readonly dirtyLog: Uint32Array;
  /** Dirty-log reads (KVM_GET_DIRTY_LOG calls). */
  logReads = 0;
  /** The vCPUs' dirty rings, when the VM has them (set once the vCPUs exist). */
  dirtyRing: KvmDirtyRings | null = null;
  /** Each read clears the whole log: no chunked clearing here. */
  readonly manualLog = null;
  /** Pages the host wrote since the last logSync (not seen by KVM's log). */
  private readonly hostDirty: Uint32Array;
  private readonly view: Buffer;
  private readonly zero = Buffer.alloc(KVM_PAGE_SIZE);
  private logOn = false;

  constructor(
    readonly vm: Vm,
    readonly memory: ArrayBuffer,
    private readonly countWrites: () => number,
    readonly slot = 0,
  ) {
    if (memory.byteLength % KVM_PAGE_SIZE !== 0) throw new RangeError('guest memory is not a whole number of 4 KiB pages');
    this.pages = memory.byteLength / KVM_PAGE_SIZE;
    this.bytes = new Uint8Array(memory);
    this.view = Buffer.from(memory);
    this.dirtyLog = bitmapNew(Math.ceil(this.pages / 64) * 64);
    this.hostDirty = new Uint32Array(this.dirtyLog.length);
    this.register(false);
  }

  get writes(): number {
    return this.countWrites();
  }

  get logging(): boolean {
    return this.logOn;
  }

  /** QEMU: memory_global_dirty_log_start/stop -> kvm_log_start/stop: the slot's KVM_MEM_LOG_DIRTY_PAGES flag. */
  set logging(on: boolean) {
    if (on === this.logOn) return;
    this.register(on);
    this.logOn = on;
  }

  /**
   * QEMU: kvm_physical_sync_dirty_bitmap: KVM_GET_DIRTY_LOG (then
   * KVM_CLEAR_DIRTY_LOG under manual protection); with the dirty ring the
   * reaps filled the bitmap already (kvm_log_sync_global).
   */
  logSync(): void {
    if (!this.logOn) return;
    if (!this.dirtyRing) {
      this.vm.getDirtyLog(this.slot, this.dirtyLog);
      if (this.vm.manualDirtyLog) this.vm.clearDirtyLog(this.slot, 0, this.pages, this.dirtyLog);
      this.logReads++;
    }
    const log = this.dirtyLog;
    const host = this.hostDirty;
    for (let w = 0; w < host.length; w++) {
      if (host[w] !== 0) {
        log[w] = log[w]! | host[w]!;
        host[w] = 0;
      }
    }
  }

  /** The host wrote len bytes at guest address addr (QEMU: cpu_physical_memory_set_dirty_range). */
  markDirty(addr: number, len = 1): void {
    if (!this.logOn) return;
    const last = Math.floor((addr + Math.max(1, len) - 1) / KVM_PAGE_SIZE);
    for (let page = Math.floor(addr / KVM_PAGE_SIZE); page <= last; page++) {
      this.hostDirty[page >>> 5] = this.hostDirty[page >>> 5]! | (1 << (page & 31));
    }
  }

  isZeroPage(page: number): boolean {
    const off = page * KVM_PAGE_SIZE;
    return this.view.compare(this.zero, 0, KVM_PAGE_SIZE, off, off + KVM_PAGE_SIZE) === 0;
  }

  /** The bytes of a page (a view into guest memory, not a copy). */
  page(page: number): Uint8Array {
    return this.bytes.subarray(page * KVM_PAGE_SIZE, (page + 1) * KVM_PAGE_SIZE);
  }

  /** Chunks of DIGEST_CHUNK_PAGES pages. */
  get chunks(): number {
    return Math.ceil(this.pages / DIGEST_CHUNK_PAGES);
  }

  /** SHA-256 of chunk c, written at out[32 c]. */
  digestChunk(c: number, out: Uint8Array): void {
    const chunkBytes = DIGEST_CHUNK_PAGES * KVM_PAGE_SIZE;
    const from = c * chunkBytes;
    const to = Math.min(this.bytes.length, from + chunkBytes);
    out.set(createHash('sha256').update(this.bytes.subarray(from, to)).digest(), c * 32);
  }

  /** SHA-256 of each chunk, concatenated (32 bytes per chunk). */
  chunkDigests(): Uint8Array {
    const out = new Uint8Array(this.chunks * 32);
    for (let c = 0; c < this.chunks; c++) this.digestChunk(c, out);
    return out;
  }

  private register(logDirty: boolean): void {
    this.vm.setMemoryRegion({ slot: this.slot, guestPhysAddr: 0, memory: this.memory, logDirty });
  }
}

/** The first chunk whose digests differ, or -1. */
export function firstDifferentChunk(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return 0;
  for (let c = 0; c * 32 < a.length; c++) {
    for (let i = c * 32; i < c * 32 + 32; i++) if (a[i] !== b[i]) return c;
  }
  return -1;
}
