/**
 * Typed entry point of the latsim KVM addon (real/kvm/build/Release/latsim_kvm.node).
 *
 * The addon is thin: /dev/kvm ioctls, one native thread per vCPU looping on KVM_RUN,
 * and raw-fd helpers (eventfd, epoll, loopback TCP, files). This module types it and
 * wraps the fds in small classes (Kvm, Vm, KvmVcpu) with the same lifecycle as kvmtool:
 * open, create VM, set memory, create vCPU, run, handle exits. It also says, without
 * throwing, why real mode is unavailable (`probeKvm`): addon not built, /dev/kvm
 * missing or not permitted, wrong API version, missing capability.
 *
 * The dirty ring (KVM_CAP_DIRTY_LOG_RING, or its _ACQ_REL form) is enabled on the
 * VM before its vCPUs exist (Vm.enableDirtyRing), mapped per vCPU
 * (KvmVcpu.mapDirtyRing), collected into a dirty bitmap (collectDirtyRing) and
 * reset (Vm.resetDirtyRings); a full ring is the exit `dirty_ring_full`.
 *
 * Leaves out: devices, exit routing and any main-loop policy (they live in the real
 * Platform), interrupt controllers, MSRs/XSAVE/LAPIC state, several memory slots
 * per ring.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// ---------------------------------------------------------------------------
// Native surface

export interface KvmSegment {
  base: bigint;
  limit: number;
  selector: number;
  type: number;
  present: number;
  dpl: number;
  db: number;
  s: number;
  l: number;
  g: number;
  avl: number;
  unusable: number;
}

export interface KvmDtable {
  base: bigint;
  limit: number;
}

/** struct kvm_regs */
export interface KvmRegs {
  rax: bigint; rbx: bigint; rcx: bigint; rdx: bigint;
  rsi: bigint; rdi: bigint; rsp: bigint; rbp: bigint;
  r8: bigint; r9: bigint; r10: bigint; r11: bigint;
  r12: bigint; r13: bigint; r14: bigint; r15: bigint;
  rip: bigint; rflags: bigint;
}

/** struct kvm_sregs (field names as in linux/kvm.h) */
export interface KvmSregs {
  cs: KvmSegment; ds: KvmSegment; es: KvmSegment; fs: KvmSegment;
  gs: KvmSegment; ss: KvmSegment; tr: KvmSegment; ldt: KvmSegment;
  gdt: KvmDtable; idt: KvmDtable;
  cr0: bigint; cr2: bigint; cr3: bigint; cr4: bigint; cr8: bigint;
  efer: bigint; apic_base: bigint;
  interrupt_bitmap: bigint[];
}

/** struct kvm_fpu */
export interface KvmFpu {
  fpr: Uint8Array; // 8 x 16 bytes
  fcw: number;
  fsw: number;
  ftwx: number;
  last_opcode: number;
  last_ip: bigint;
  last_dp: bigint;
  xmm: Uint8Array; // 16 x 16 bytes
  mxcsr: number;
}

/** Partial updates: unspecified fields keep their current value. */
export type KvmSregsUpdate = Partial<Omit<KvmSregs, keyof SegmentFields | 'gdt' | 'idt'>> & {
  [K in keyof SegmentFields]?: Partial<KvmSegment>;
} & { gdt?: Partial<KvmDtable>; idt?: Partial<KvmDtable> };
interface SegmentFields {
  cs: 0; ds: 0; es: 0; fs: 0; gs: 0; ss: 0; tr: 0; ldt: 0;
}
type U64In = bigint | number;
export type KvmRegsUpdate = Partial<Record<keyof KvmRegs, U64In>>;

interface ExitCommon {
  /** vCPU id */
  vcpu: number;
  /** 1, 2, 3 ... per vCPU */
  seq: number;
  /** CLOCK_MONOTONIC when KVM_RUN returned (same clock as process.hrtime.bigint()) */
  monotonicNs: bigint;
  /** kvm_run.exit_reason */
  rawReason: number;
}
export interface IoExit extends ExitCommon {
  reason: 'io';
  terminal: false;
  direction: 'in' | 'out';
  port: number;
  /** access size in bytes: 1, 2 or 4 */
  size: number;
  /** repetitions (rep ins/outs); data holds size * count bytes */
  count: number;
  /** bytes written by the guest (direction 'out' only) */
  data?: Uint8Array;
}
export interface MmioExit extends ExitCommon {
  reason: 'mmio';
  terminal: false;
  addr: number;
  len: number;
  isWrite: boolean;
  /** bytes written by the guest (isWrite only) */
  data?: Uint8Array;
}
export interface HltExit extends ExitCommon {
  reason: 'hlt';
  terminal: false;
}
/** KVM_EXIT_DIRTY_RING_FULL: the vCPU's dirty ring is soft-full; answer after reaping. */
export interface DirtyRingFullExit extends ExitCommon {
  reason: 'dirty_ring_full';
  terminal: false;
}
/** The vCPU thread has ended; no answer is expected. */
export interface TerminalExit extends ExitCommon {
  reason: 'shutdown' | 'fail_entry' | 'internal_error' | 'system_event' | 'error' | 'unknown';
  terminal: true;
  /** ETRIPLEFAULT, EFAILENTRY, EINTERNAL, ESYSTEMEVENT, EEXIT or an errno name */
  code: string;
  message: string;
  detail: number;
}
export type VcpuExit = IoExit | MmioExit | HltExit | DirtyRingFullExit | TerminalExit;

/**
 * created: not started; running: in or around KVM_RUN; exit: an exit awaits
 * complete(); paused: parked outside KVM_RUN; ended: the thread is gone.
 */
export type VcpuPhase = 'created' | 'running' | 'exit' | 'paused' | 'ended';

export interface KvmConstants {
  KVM_API_VERSION: number;
  cap: Record<CapName, number>;
  mem: { LOG_DIRTY_PAGES: number; READONLY: number };
  dirtyLogManual: { ENABLE: number; INITIALLY_SET: number };
  epoll: { IN: number; OUT: number; ERR: number; HUP: number; RDHUP: number; ET: number };
  exitReason: Record<'IO' | 'HLT' | 'MMIO' | 'SHUTDOWN' | 'FAIL_ENTRY' | 'INTERNAL_ERROR' | 'SYSTEM_EVENT' | 'DIRTY_RING_FULL', number>;
}

export type CapName =
  | 'IRQCHIP' | 'HLT' | 'USER_MEMORY' | 'SET_TSS_ADDR' | 'EXT_CPUID' | 'NR_VCPUS' | 'VCPUS_MAX'
  | 'NR_MEMSLOTS' | 'SYNC_MMU' | 'IOEVENTFD' | 'IOEVENTFD_ANY_LENGTH' | 'IRQFD' | 'GET_TSC_KHZ'
  | 'IMMEDIATE_EXIT' | 'MANUAL_DIRTY_LOG_PROTECT2' | 'READONLY_MEM' | 'DIRTY_LOG_RING' | 'DIRTY_LOG_RING_ACQ_REL' | 'XSAVE'
  | 'VCPU_EVENTS' | 'ADJUST_CLOCK' | 'SET_IDENTITY_MAP_ADDR';

/** Raw-fd helpers. Sockets and eventfds are non-blocking: null means "would block". */
export interface FdIo {
  eventfdCreate(initval?: number, semaphore?: boolean): number;
  /** The counter (and reset it), or null if it was zero. */
  eventfdRead(fd: number): number | null;
  eventfdWrite(fd: number, value?: U64In): void;
  epollCreate(): number;
  epollCtl(epfd: number, op: 'add' | 'mod' | 'del', fd: number, events?: number): void;
  /** Blocks up to timeoutMs (-1: forever). Fills out[2i] = fd, out[2i+1] = events; returns the count (0 on timeout or signal). */
  epollWait(epfd: number, out: Int32Array, timeoutMs: number): number;
  /** Blocks up to timeoutMs until fd is readable. */
  pollIn(fd: number, timeoutMs: number): boolean;
  tcpListen(host: string, port: number, backlog?: number): number;
  tcpAccept(listenFd: number): number | null;
  /** The connect may still be in progress: wait for EPOLLOUT, then check socketError. */
  tcpConnect(host: string, port: number): number;
  socketLocalPort(fd: number): number;
  socketError(fd: number): string | null;
  /** Bytes read, 0 at end of stream, null if it would block. */
  read(fd: number, buf: Uint8Array): number | null;
  /** Bytes written, null if it would block. */
  write(fd: number, buf: Uint8Array): number | null;
  fileOpen(path: string, mode?: 'r' | 'r+' | 'w+' | 'a+'): number;
  pread(fd: number, buf: Uint8Array, position: number): number;
  pwrite(fd: number, buf: Uint8Array, position: number): number;
  fdatasync(fd: number): void;
  ftruncate(fd: number, size: number): void;
  fileSize(fd: number): number;
  close(fd: number): void;
}

export interface NativeKvm extends FdIo {
  constants: KvmConstants;
  openKvm(path?: string): number;
  getApiVersion(kvmFd: number): number;
  checkExtension(fd: number, cap: number): number;
  getVcpuMmapSize(kvmFd: number): number;
  createVm(kvmFd: number, type?: number): number;
  closeVm(vmFd: number): void;
  mmapGuestMemory(sizeBytes: number): ArrayBuffer;
  setUserMemoryRegion(
    vmFd: number, slot: number, flags: number, guestPhysAddr: number,
    buffer?: ArrayBuffer, offset?: number, size?: number,
  ): void;
  getDirtyLog(vmFd: number, slot: number, bitmap: Uint32Array): void;
  clearDirtyLog(vmFd: number, slot: number, firstPage: number, numPages: number, bitmap: Uint32Array): void;
  enableCap(fd: number, cap: number, arg0?: U64In, arg1?: U64In, arg2?: U64In, arg3?: U64In): void;
  setTssAddr(vmFd: number, addr: number): void;
  registerIoeventfd(vmFd: number, addr: number, len: number, pio: boolean, datamatch?: U64In): number;
  unregisterIoeventfd(vmFd: number, eventFd: number, addr: number, len: number, pio: boolean, datamatch?: U64In): void;
  createVcpu(kvmFd: number, vmFd: number, id: number): { fd: number; exitFd: number };
  vcpuStart(vcpuFd: number): void;
  vcpuReadExit(vcpuFd: number): VcpuExit | null;
  vcpuComplete(vcpuFd: number, data?: Uint8Array): void;
  vcpuPause(vcpuFd: number, timeoutMs?: number): VcpuPhase;
  vcpuResume(vcpuFd: number): void;
  vcpuPhase(vcpuFd: number): VcpuPhase;
  vcpuClose(vcpuFd: number): void;
  getRegs(vcpuFd: number): KvmRegs;
  setRegs(vcpuFd: number, regs: KvmRegsUpdate): void;
  getSregs(vcpuFd: number): KvmSregs;
  setSregs(vcpuFd: number, sregs: KvmSregsUpdate): void;
  getFpu(vcpuFd: number): KvmFpu;
  setFpu(vcpuFd: number, fpu: Partial<KvmFpu>): void;
  getTscKhz(vcpuFd: number): number;
  resetDirtyRings(vmFd: number): number;
  vcpuMapDirtyRing(vcpuFd: number, entries: number): void;
  vcpuCollectDirtyRing(vcpuFd: number, bitmap: Uint32Array, slot: number): number;
  vcpuDirtyRingPending(vcpuFd: number): number;
}

// ---------------------------------------------------------------------------
// Errors and availability

/** Error codes this module raises itself; the addon adds errno names. */
export type KvmErrorCode = 'ENOADDON' | 'ENOKVM' | 'EACCES' | 'EAPI' | 'ENOCAP' | 'ETRIPLEFAULT' | string;

export class KvmError extends Error {
  readonly code: KvmErrorCode;
  constructor(code: KvmErrorCode, message: string) {
    super(message);
    this.name = 'KvmError';
    this.code = code;
  }
}

export interface Unavailable {
  available: false;
  code: KvmErrorCode;
  /** One line, starting with "unavailable: ". */
  reason: string;
}

export const KVM_API_VERSION = 12;
/** sizeof(struct kvm_dirty_gfn): a ring entry. */
export const DIRTY_GFN_BYTES = 16;
/** Capabilities the Vm/KvmVcpu classes rely on. */
export const REQUIRED_CAPS: readonly CapName[] = ['USER_MEMORY', 'IOEVENTFD', 'IMMEDIATE_EXIT'];

const here = dirname(fileURLToPath(import.meta.url));
export const DEFAULT_ADDON_PATH = join(here, 'build', 'Release', 'latsim_kvm.node');
/** /dev/kvm, or LATSIM_KVM_DEVICE (lets tests and users point elsewhere). */
export const DEFAULT_KVM_DEVICE = process.env['LATSIM_KVM_DEVICE'] ?? '/dev/kvm';

const loaded = new Map<string, NativeKvm>();

function errorCode(e: unknown): string {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'EUNKNOWN';
}

function errorMessage(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0] ?? '';
}

/** Loads the addon, or says why it cannot. */
export function loadAddon(addonPath: string = DEFAULT_ADDON_PATH): { available: true; native: NativeKvm } | Unavailable {
  const cached = loaded.get(addonPath);
  if (cached) return { available: true, native: cached };
  if (!existsSync(addonPath)) {
    return {
      available: false,
      code: 'ENOADDON',
      reason: `unavailable: the KVM addon is not built (${addonPath} is missing; run npm run build:kvm)`,
    };
  }
  try {
    const native = createRequire(import.meta.url)(addonPath) as NativeKvm;
    loaded.set(addonPath, native);
    return { available: true, native };
  } catch (e) {
    return { available: false, code: 'ENOADDON', reason: `unavailable: the KVM addon does not load: ${errorMessage(e)}` };
  }
}

/** The raw-fd helpers (they need the addon, not /dev/kvm). Throws KvmError ENOADDON. */
export function openFdIo(addonPath?: string): FdIo {
  const a = loadAddon(addonPath);
  if (!a.available) throw new KvmError(a.code, a.reason);
  return a.native;
}

export interface KvmProbe {
  available: true;
  apiVersion: number;
  /** KVM_CHECK_EXTENSION result per capability (0 = absent). */
  caps: Record<CapName, number>;
  /** KVM_CLEAR_DIRTY_LOG with manual protection is offered. */
  manualDirtyLog: boolean;
  /** ... and with KVM_DIRTY_LOG_INITIALLY_SET. */
  manualDirtyLogInitiallySet: boolean;
}

export interface OpenOptions {
  devicePath?: string;
  addonPath?: string;
}

/** What this host offers, or why real mode is unavailable. Never throws. */
export function probeKvm(opts: OpenOptions = {}): KvmProbe | Unavailable {
  let kvm: Kvm;
  try {
    kvm = Kvm.open(opts);
  } catch (e) {
    const code = errorCode(e);
    return { available: false, code, reason: `unavailable: ${errorMessage(e)}` };
  }
  try {
    const c = kvm.native.constants;
    const caps = {} as Record<CapName, number>;
    for (const name of Object.keys(c.cap) as CapName[]) caps[name] = kvm.checkExtension(name);
    const manual = caps.MANUAL_DIRTY_LOG_PROTECT2;
    return {
      available: true,
      apiVersion: kvm.apiVersion,
      caps,
      manualDirtyLog: (manual & c.dirtyLogManual.ENABLE) !== 0,
      manualDirtyLogInitiallySet: (manual & c.dirtyLogManual.INITIALLY_SET) !== 0,
    };
  } finally {
    kvm.close();
  }
}

/** Turns a terminal exit into the error it stands for (code ETRIPLEFAULT etc.). */
export function exitError(exit: TerminalExit): KvmError {
  return new KvmError(exit.code, exit.message);
}

// ---------------------------------------------------------------------------
// Classes

/** An open /dev/kvm. */
export class Kvm {
  readonly native: NativeKvm;
  readonly fd: number;
  readonly apiVersion: number;

  private constructor(native: NativeKvm, fd: number, apiVersion: number) {
    this.native = native;
    this.fd = fd;
    this.apiVersion = apiVersion;
  }

  /**
   * Opens /dev/kvm and checks the API version and REQUIRED_CAPS.
   * Throws KvmError: ENOADDON, ENOKVM, EACCES, EAPI, ENOCAP (or an errno name).
   */
  static open(opts: OpenOptions = {}): Kvm {
    const native = openFdIo(opts.addonPath) as NativeKvm;
    const fd = native.openKvm(opts.devicePath ?? DEFAULT_KVM_DEVICE);
    try {
      const version = native.getApiVersion(fd);
      if (version !== KVM_API_VERSION) {
        throw new KvmError('EAPI', `KVM API version is ${version}, latsim needs ${KVM_API_VERSION}`);
      }
      const kvm = new Kvm(native, fd, version);
      const missing = REQUIRED_CAPS.filter((cap) => kvm.checkExtension(cap) <= 0);
      if (missing.length > 0) {
        throw new KvmError('ENOCAP', `KVM lacks capabilit${missing.length > 1 ? 'ies' : 'y'} ${missing.map((m) => `KVM_CAP_${m}`).join(', ')}`);
      }
      return kvm;
    } catch (e) {
      native.close(fd);
      throw e;
    }
  }

  checkExtension(cap: CapName): number {
    return this.native.checkExtension(this.fd, this.native.constants.cap[cap]);
  }

  createVm(): Vm {
    return new Vm(this, this.native.createVm(this.fd));
  }

  close(): void {
    this.native.close(this.fd);
  }
}

export interface MemoryRegion {
  slot: number;
  guestPhysAddr: number;
  /** From Vm.allocMemory (or any page-aligned ArrayBuffer). Kept alive while the slot exists. */
  memory: ArrayBuffer;
  offset?: number;
  size?: number;
  logDirty?: boolean;
  readonly?: boolean;
}

export interface IoeventfdSpec {
  addr: number;
  /** 1, 2, 4 or 8 bytes (0 = any length, MMIO with KVM_CAP_IOEVENTFD_ANY_LENGTH) */
  len: number;
  space: 'pio' | 'mmio';
  /** Only writes of this value signal the eventfd. */
  datamatch?: bigint | number;
}

/** A KVM virtual machine. */
export class Vm {
  readonly kvm: Kvm;
  readonly fd: number;
  private manual = false;
  private ringEntries = 0;
  private ringCap: 'DIRTY_LOG_RING_ACQ_REL' | 'DIRTY_LOG_RING' | null = null;

  constructor(kvm: Kvm, fd: number) {
    this.kvm = kvm;
    this.fd = fd;
    // Needed before entering real mode on Intel; harmless elsewhere.
    if (kvm.checkExtension('SET_TSS_ADDR') > 0) kvm.native.setTssAddr(fd, 0xfffbd000);
  }

  private get native(): NativeKvm {
    return this.kvm.native;
  }

  /** Whether KVM_CLEAR_DIRTY_LOG must be used after KVM_GET_DIRTY_LOG. */
  get manualDirtyLog(): boolean {
    return this.manual;
  }

  /**
   * Enables KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 (before adding memory): KVM_GET_DIRTY_LOG
   * then only reads, and clearDirtyLog re-protects. Returns false if not offered.
   */
  enableManualDirtyLog(initiallySet = false): boolean {
    const offered = this.kvm.checkExtension('MANUAL_DIRTY_LOG_PROTECT2');
    const m = this.native.constants.dirtyLogManual;
    if ((offered & m.ENABLE) === 0 || (initiallySet && (offered & m.INITIALLY_SET) === 0)) return false;
    this.native.enableCap(this.fd, this.native.constants.cap.MANUAL_DIRTY_LOG_PROTECT2, m.ENABLE | (initiallySet ? m.INITIALLY_SET : 0));
    this.manual = true;
    return true;
  }

  /** Entries of each vCPU's dirty ring, once enabled; 0: the dirty log. */
  get dirtyRingEntries(): number {
    return this.ringEntries;
  }

  /** The capability the ring was enabled with, or null. */
  get dirtyRingCap(): 'DIRTY_LOG_RING_ACQ_REL' | 'DIRTY_LOG_RING' | null {
    return this.ringCap;
  }

  /**
   * QEMU: kvm_init's dirty-ring setup: KVM_ENABLE_CAP of KVM_CAP_DIRTY_LOG_RING_ACQ_REL
   * (or KVM_CAP_DIRTY_LOG_RING) with entries x 16 bytes per vCPU, before any vCPU
   * exists. Returns which capability was used, or null when the host offers neither
   * or allows fewer entries (the VM keeps the dirty log).
   */
  enableDirtyRing(entries: number): 'DIRTY_LOG_RING_ACQ_REL' | 'DIRTY_LOG_RING' | null {
    const bytes = entries * DIRTY_GFN_BYTES;
    for (const cap of ['DIRTY_LOG_RING_ACQ_REL', 'DIRTY_LOG_RING'] as const) {
      const code = this.native.constants.cap[cap];
      if (code === undefined) continue;
      // The VM's answer is the largest ring it allows, in bytes.
      const max = this.native.checkExtension(this.fd, code);
      if (max <= 0) continue;
      if (bytes > max) return null;
      this.native.enableCap(this.fd, code, bytes);
      this.ringEntries = entries;
      this.ringCap = cap;
      return cap;
    }
    return null;
  }

  /** KVM_RESET_DIRTY_RINGS: write-protects the pages of every collected entry again; returns how many. */
  resetDirtyRings(): number {
    return this.native.resetDirtyRings(this.fd);
  }

  /** Anonymous private memory, page-aligned, zero-filled, unmapped when garbage-collected. */
  allocMemory(sizeBytes: number): ArrayBuffer {
    return this.native.mmapGuestMemory(sizeBytes);
  }

  setMemoryRegion(r: MemoryRegion): void {
    const m = this.native.constants.mem;
    const flags = (r.logDirty ? m.LOG_DIRTY_PAGES : 0) | (r.readonly ? m.READONLY : 0);
    this.native.setUserMemoryRegion(this.fd, r.slot, flags, r.guestPhysAddr, r.memory, r.offset, r.size);
  }

  deleteMemoryRegion(slot: number): void {
    this.native.setUserMemoryRegion(this.fd, slot, 0, 0);
  }

  /** Words needed for a dirty bitmap of `pages` pages (KVM pads to 64 bits). */
  static bitmapWords(pages: number): number {
    return Math.ceil(pages / 64) * 2;
  }

  /** KVM_GET_DIRTY_LOG: bit i of `bitmap` (word i >> 5, bit i & 31) = page i of the slot. */
  getDirtyLog(slot: number, bitmap: Uint32Array): void {
    this.native.getDirtyLog(this.fd, slot, bitmap);
  }

  /** KVM_CLEAR_DIRTY_LOG: bit i of `bitmap` clears page firstPage + i (firstPage % 64 == 0). */
  clearDirtyLog(slot: number, firstPage: number, numPages: number, bitmap: Uint32Array): void {
    this.native.clearDirtyLog(this.fd, slot, firstPage, numPages, bitmap);
  }

  /** KVM_IOEVENTFD: returns a non-blocking eventfd that counts guest writes to the address. */
  registerIoeventfd(spec: IoeventfdSpec): number {
    return this.native.registerIoeventfd(this.fd, spec.addr, spec.len, spec.space === 'pio', spec.datamatch);
  }

  unregisterIoeventfd(eventFd: number, spec: IoeventfdSpec): void {
    this.native.unregisterIoeventfd(this.fd, eventFd, spec.addr, spec.len, spec.space === 'pio', spec.datamatch);
  }

  createVcpu(id: number): KvmVcpu {
    const { fd, exitFd } = this.native.createVcpu(this.kvm.fd, this.fd, id);
    return new KvmVcpu(this.native, id, fd, exitFd);
  }

  /** Stops and closes this VM's vCPUs, releases its memory slots, closes the VM fd. */
  close(): void {
    this.native.closeVm(this.fd);
  }
}

/**
 * A vCPU run by a native thread. Exits arrive on `exitFd` (an eventfd for the main
 * loop's epoll); readExit() takes the record; complete() answers it and lets the
 * thread re-enter KVM_RUN. Until then the guest is stopped.
 */
export class KvmVcpu {
  private readonly native: NativeKvm;
  readonly id: number;
  readonly fd: number;
  readonly exitFd: number;
  private pendingRead: { size: number } | null = null;

  constructor(native: NativeKvm, id: number, fd: number, exitFd: number) {
    this.native = native;
    this.id = id;
    this.fd = fd;
    this.exitFd = exitFd;
  }

  start(): void {
    this.native.vcpuStart(this.fd);
  }

  /** The unread exit, if any (non-blocking). */
  readExit(): VcpuExit | null {
    const e = this.native.vcpuReadExit(this.fd);
    if (e && e.reason === 'io' && e.direction === 'in') this.pendingRead = { size: e.size * e.count };
    else if (e && e.reason === 'mmio' && !e.isWrite) this.pendingRead = { size: e.len };
    else if (e) this.pendingRead = null;
    return e;
  }

  /** Blocks up to timeoutMs for the next exit. */
  waitExit(timeoutMs: number): VcpuExit | null {
    const e = this.readExit();
    if (e) return e;
    if (!this.native.pollIn(this.exitFd, timeoutMs)) return null;
    return this.readExit();
  }

  /**
   * Answers the pending exit. For a PIO IN or MMIO read pass the bytes, or a number
   * encoded little-endian in the access size. Throws the terminal code (e.g.
   * ETRIPLEFAULT) if the vCPU has ended.
   */
  complete(data?: Uint8Array | number | bigint): void {
    if (typeof data === 'number' || typeof data === 'bigint') {
      const size = this.pendingRead?.size ?? 0;
      if (size === 0 || size > 8) throw new KvmError('EINVAL', 'a numeric answer needs a pending read of 1 to 8 bytes');
      const bytes = new Uint8Array(8);
      new DataView(bytes.buffer).setBigUint64(0, BigInt.asUintN(64, BigInt(data)), true);
      data = bytes.subarray(0, size);
    }
    this.native.vcpuComplete(this.fd, data);
    this.pendingRead = null;
  }

  /**
   * Leaves KVM_RUN and parks the thread. Returns 'paused', or 'exit' when an exit
   * must be completed first (then call pause again), or 'created'/'ended'.
   */
  pause(timeoutMs = 5000): VcpuPhase {
    return this.native.vcpuPause(this.fd, timeoutMs);
  }

  resume(): void {
    this.native.vcpuResume(this.fd);
  }

  phase(): VcpuPhase {
    return this.native.vcpuPhase(this.fd);
  }

  getRegs(): KvmRegs {
    return this.native.getRegs(this.fd);
  }

  setRegs(regs: KvmRegsUpdate): void {
    this.native.setRegs(this.fd, regs);
  }

  getSregs(): KvmSregs {
    return this.native.getSregs(this.fd);
  }

  setSregs(sregs: KvmSregsUpdate): void {
    this.native.setSregs(this.fd, sregs);
  }

  getFpu(): KvmFpu {
    return this.native.getFpu(this.fd);
  }

  setFpu(fpu: Partial<KvmFpu>): void {
    this.native.setFpu(this.fd, fpu);
  }

  tscKhz(): number {
    return this.native.getTscKhz(this.fd);
  }

  /** Maps this vCPU's dirty ring (the VM's ring enabled with this many entries). */
  mapDirtyRing(entries: number): void {
    this.native.vcpuMapDirtyRing(this.fd, entries);
  }

  /** QEMU: kvm_dirty_ring_reap_one: the ring's new entries of slot set their page's bit in bitmap; returns how many. */
  collectDirtyRing(bitmap: Uint32Array, slot = 0): number {
    return this.native.vcpuCollectDirtyRing(this.fd, bitmap, slot);
  }

  /** Entries pushed and not yet collected. */
  dirtyRingPending(): number {
    return this.native.vcpuDirtyRingPending(this.fd);
  }

  /** Stops the thread and closes the vCPU and its exit eventfd. */
  close(): void {
    this.native.vcpuClose(this.fd);
  }
}
