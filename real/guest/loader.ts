/**
 * Loads the guest payload and puts a vCPU straight into 64-bit long mode from the
 * host, so the payload needs no mode-switch code: writes a flat GDT, identity page
 * tables for the first 4 GiB (2 MiB pages; MMIO addresses included), the image at
 * PAYLOAD_ADDR, then sets CR0/CR3/CR4/EFER, segments and RIP/RSP via KVM_SET_SREGS
 * and KVM_SET_REGS. No IDT is loaded (limit 0): any exception escalates to a triple
 * fault, which the vCPU reports as SHUTDOWN.
 * Leaves out: real-mode boot, interrupts, SMP start-up (no INIT/SIPI: every vCPU
 * starts at the entry, told its index in RDI).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { KvmSegment, KvmVcpu } from '../kvm/index.ts';
import { GDT_ADDR, GUEST_RAM_MIN, PAGE_TABLE_ADDR, PAYLOAD_ADDR, STACK_TOP } from './layout.ts';

export const PAYLOAD_PATH = join(dirname(fileURLToPath(import.meta.url)), 'build', 'payload.bin');

const CR0_PE = 1n << 0n, CR0_MP = 1n << 1n, CR0_ET = 1n << 4n, CR0_NE = 1n << 5n;
const CR0_WP = 1n << 16n, CR0_AM = 1n << 18n, CR0_PG = 1n << 31n;
const CR4_PAE = 1n << 5n, CR4_OSFXSR = 1n << 9n, CR4_OSXMMEXCPT = 1n << 10n;
const EFER_LME = 1n << 8n, EFER_LMA = 1n << 10n;
const PTE_P = 1n, PTE_RW = 2n, PTE_PS = 1n << 7n;

/** Reads build/payload.bin; throws with the build command if it is missing. */
export function readPayload(path = PAYLOAD_PATH): Uint8Array {
  if (!existsSync(path)) throw new Error(`guest payload not built: ${path} is missing (run node real/guest/build.mjs)`);
  return new Uint8Array(readFileSync(path));
}

/**
 * Zeroes guest memory below STACK_TOP and writes GDT, page tables and the image.
 * `memory` is guest RAM starting at guest-physical 0.
 */
export function loadPayload(memory: ArrayBuffer, image: Uint8Array = readPayload()): void {
  if (memory.byteLength < GUEST_RAM_MIN) throw new RangeError(`guest RAM must be at least ${GUEST_RAM_MIN} bytes`);
  if (image.length > STACK_TOP - PAYLOAD_ADDR - 0x80000) throw new RangeError('payload image exceeds 512 KiB');
  new Uint8Array(memory, 0, STACK_TOP).fill(0);
  const view = new DataView(memory);
  // GDT: null, 64-bit code (0x08), data (0x10).
  view.setBigUint64(GDT_ADDR + 0x08, 0x00af9b000000ffffn, true);
  view.setBigUint64(GDT_ADDR + 0x10, 0x00cf93000000ffffn, true);
  // PML4[0] -> PDPT; PDPT[0..3] -> four page directories of 2 MiB pages.
  const pml4 = PAGE_TABLE_ADDR, pdpt = PAGE_TABLE_ADDR + 0x1000, pd0 = PAGE_TABLE_ADDR + 0x2000;
  view.setBigUint64(pml4, BigInt(pdpt) | PTE_P | PTE_RW, true);
  for (let g = 0; g < 4; g++) {
    const pd = pd0 + g * 0x1000;
    view.setBigUint64(pdpt + g * 8, BigInt(pd) | PTE_P | PTE_RW, true);
    for (let i = 0; i < 512; i++) {
      const phys = (BigInt(g) << 30n) | (BigInt(i) << 21n);
      view.setBigUint64(pd + i * 8, phys | PTE_P | PTE_RW | PTE_PS, true);
    }
  }
  new Uint8Array(memory, PAYLOAD_ADDR, image.length).set(image);
}

function segment(selector: number, code: boolean): KvmSegment {
  return {
    base: 0n, limit: 0xffffffff, selector, present: 1, dpl: 0, s: 1, g: 1, avl: 0, unusable: 0,
    type: code ? 11 : 3, // execute/read accessed; read/write accessed
    l: code ? 1 : 0,
    db: code ? 0 : 1,
  };
}

/** Puts `vcpu` (not running) in long mode at the payload entry, its index in RDI (its mailbox and stack). */
export function bootLongMode(vcpu: KvmVcpu): void {
  const data = segment(0x10, false);
  vcpu.setSregs({
    cs: segment(0x08, true), ds: data, es: data, fs: data, gs: data, ss: data,
    gdt: { base: BigInt(GDT_ADDR), limit: 3 * 8 - 1 },
    idt: { base: 0n, limit: 0 },
    cr0: CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_AM | CR0_PG,
    cr3: BigInt(PAGE_TABLE_ADDR),
    cr4: CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT,
    efer: EFER_LME | EFER_LMA,
  });
  vcpu.setRegs({ rip: BigInt(PAYLOAD_ADDR), rsp: BigInt(STACK_TOP), rflags: 2n, rdi: BigInt(vcpu.id) });
}
