/**
 * Shared set-up for the real-mode tests: open KVM or skip with the reason (or fail,
 * when LATSIM_REAL_REQUIRED=1 as under `npm run test:kvm`), build the payload if
 * needed, boot it in a fresh VM, and a tiny exit loop standing in for the main loop.
 * Leaves out: the real Platform; this loop only answers what each test needs.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { Kvm, loadAddon, probeKvm, type KvmVcpu, type VcpuExit, type Vm } from '../../real/kvm/index.ts';
import { bootLongMode, loadPayload, PAYLOAD_PATH } from '../../real/guest/loader.ts';
import { Mailbox, type WorkloadParams } from '../../real/guest/mailbox.ts';
import { PAGE_SIZE } from '../../real/guest/layout.ts';

export const REAL_REQUIRED = process.env['LATSIM_REAL_REQUIRED'] === '1';

interface SkipContext {
  skip(note?: string): never;
}

function unavailable(ctx: SkipContext, reason: string): never {
  if (REAL_REQUIRED) throw new Error(`real mode required (LATSIM_REAL_REQUIRED=1) but ${reason}`);
  return ctx.skip(reason);
}

/** The addon's fd helpers, or skip: they need the addon but not /dev/kvm. */
export function addonOrSkip(ctx: SkipContext) {
  const a = loadAddon();
  if (!a.available) return unavailable(ctx, a.reason);
  return a.native;
}

let payloadChecked = false;

function ensurePayload(ctx: SkipContext): void {
  if (payloadChecked || existsSync(PAYLOAD_PATH)) {
    payloadChecked = true;
    return;
  }
  const script = join(import.meta.dirname, '..', '..', 'real', 'guest', 'build.mjs');
  const r = spawnSync(process.execPath, [script], { encoding: 'utf8' });
  if (r.status !== 0 || !existsSync(PAYLOAD_PATH)) {
    unavailable(ctx, `unavailable: guest payload does not build: ${(r.stderr || r.stdout || '').trim().split('\n').pop()}`);
  }
  payloadChecked = true;
}

/** An open /dev/kvm plus a built payload, or skip with the reason. */
export function kvmOrSkip(ctx: SkipContext): Kvm {
  const p = probeKvm();
  if (!p.available) return unavailable(ctx, p.reason);
  ensurePayload(ctx);
  return Kvm.open();
}

export const GUEST_RAM_BYTES = 16 << 20;

export interface Booted {
  vm: Vm;
  memory: ArrayBuffer;
  mailbox: Mailbox;
  vcpu: KvmVcpu;
}

export interface BootOptions {
  manualDirtyLog?: boolean;
  /** Entries of the KVM dirty ring to enable before the vCPU exists (0: the dirty log). */
  dirtyRing?: number;
  /** KVM_MEM_LOG_DIRTY_PAGES on the slot from the start (default true). */
  logDirty?: boolean;
  /** Runs after memory is loaded and before the vCPU starts. */
  beforeStart?: (b: Booted) => void;
}

/** A VM with one slot of GUEST_RAM_BYTES at 0 (dirty-logged by default) running the payload. */
export function bootPayload(kvm: Kvm, params: WorkloadParams, opts: BootOptions = {}): Booted {
  const vm = kvm.createVm();
  if (opts.manualDirtyLog && !vm.enableManualDirtyLog()) throw new Error('manual dirty log not offered');
  if (opts.dirtyRing && !vm.enableDirtyRing(opts.dirtyRing)) throw new Error(`no dirty ring of ${opts.dirtyRing} entries offered`);
  const memory = vm.allocMemory(GUEST_RAM_BYTES);
  loadPayload(memory);
  const mailbox = new Mailbox(memory);
  mailbox.write(params);
  vm.setMemoryRegion({ slot: 0, guestPhysAddr: 0, memory, logDirty: opts.logDirty ?? true });
  const vcpu = vm.createVcpu(0);
  if (opts.dirtyRing) vcpu.mapDirtyRing(opts.dirtyRing);
  bootLongMode(vcpu);
  const b = { vm, memory, mailbox, vcpu };
  opts.beforeStart?.(b);
  vcpu.start();
  return b;
}

export interface ServeOptions {
  /** Return true to stop before answering this exit. */
  until: (e: VcpuExit) => boolean;
  /** Value for a PIO IN / MMIO read (default 0). */
  answer?: (e: VcpuExit) => number;
  timeoutMs?: number;
  maxExits?: number;
}

/**
 * Waits for exits and answers them until `until` says stop (that exit stays
 * unanswered) or a terminal exit arrives. Returns every exit seen.
 */
export function serve(vcpu: KvmVcpu, o: ServeOptions): VcpuExit[] {
  const seen: VcpuExit[] = [];
  const deadline = performance.now() + (o.timeoutMs ?? 60_000);
  const maxExits = o.maxExits ?? 100_000;
  for (;;) {
    const left = Math.max(0, Math.ceil(deadline - performance.now()));
    const e = vcpu.waitExit(left);
    if (!e) throw new Error(`no vCPU exit within ${o.timeoutMs ?? 60_000} ms (phase ${vcpu.phase()}, ${seen.length} exits)`);
    seen.push(e);
    if (o.until(e) || e.terminal) return seen;
    if (seen.length >= maxExits) throw new Error(`more than ${maxExits} exits`);
    const isRead = (e.reason === 'io' && e.direction === 'in') || (e.reason === 'mmio' && !e.isWrite);
    vcpu.complete(isRead ? (o.answer?.(e) ?? 0) : undefined);
  }
}

/** True for the payload's final PORT_DONE write. */
export function isDone(e: VcpuExit): boolean {
  return e.reason === 'io' && e.direction === 'out' && e.port === 0x518;
}

/** The little-endian value a PIO OUT or MMIO write carried (throws for other exits). */
export function written(e: VcpuExit | undefined): number {
  if (!e || !(e.reason === 'io' || e.reason === 'mmio') || !e.data) throw new Error(`not a write exit: ${e?.reason}`);
  let v = 0;
  for (let i = e.data.length - 1; i >= 0; i--) v = v * 256 + e.data[i]!;
  return v;
}

/** Page numbers whose bit is set. */
export function setBits(bitmap: Uint32Array): Set<number> {
  const out = new Set<number>();
  bitmap.forEach((w, i) => {
    for (let b = 0; b < 32; b++) if ((w >>> b) & 1) out.add(i * 32 + b);
  });
  return out;
}

export function pagesOf(startAddr: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => startAddr / PAGE_SIZE + i);
}

/** Blocks the calling thread, as a stalled main loop would. */
export function blockFor(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
