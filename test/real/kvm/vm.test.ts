/**
 * Real-mode tests of the KVM addon: a VM with dirty-logged memory, a vCPU thread
 * running the guest payload, exits answered from JS, the dirty log, KVM_IOEVENTFD,
 * triple fault, pause and register state. They skip with the reason when /dev/kvm
 * or the addon is missing, and fail instead under `npm run test:kvm`.
 * Leaves out: workload patterns and the virtqueue protocol (test/real/guest/).
 */
import { afterEach, describe, expect, it } from 'vitest';

import { exitError, probeKvm, Vm, type Kvm, type TerminalExit } from '../../../real/kvm/index.ts';
import {
  MMIO_HELLO, PORT_DONE, PORT_HEARTBEAT, PORT_HELLO, PORT_VQ_NOTIFY, WORK_ADDR, GuestState,
} from '../../../real/guest/layout.ts';
import type { WorkloadParams } from '../../../real/guest/mailbox.ts';
import { bitmapFree, bitmapNew, syncDirtyLog, testBit } from '../../../sim/util/bitmap.ts';
import {
  blockFor, bootPayload, GUEST_RAM_BYTES, isDone, kvmOrSkip, pagesOf, serve, setBits, written, type BootOptions, type Booted,
} from '../helpers.ts';

const T = { timeout: 120_000 };
const PAGES = GUEST_RAM_BYTES / 4096;

let open: Array<{ close(): void }> = [];
afterEach(() => {
  for (const o of open.reverse()) o.close();
  open = [];
});

function kvm(ctx: Parameters<typeof kvmOrSkip>[0]): Kvm {
  const k = kvmOrSkip(ctx);
  open.push(k);
  return k;
}

function boot(k: Kvm, params: WorkloadParams, opts?: BootOptions): Booted {
  const b = bootPayload(k, params, opts);
  open.push(b.vm);
  return b;
}

describe('KVM addon on a real VM', () => {
  it('opens /dev/kvm at API version 12 with the capabilities used', T, (ctx) => {
    kvm(ctx);
    const p = probeKvm();
    expect(p.available).toBe(true);
    if (!p.available) return;
    expect(p.apiVersion).toBe(12);
    expect(p.caps.USER_MEMORY).toBeGreaterThan(0);
    expect(p.caps.IOEVENTFD).toBeGreaterThan(0);
    expect(p.caps.IMMEDIATE_EXIT).toBeGreaterThan(0);
    expect(p.caps.NR_MEMSLOTS).toBeGreaterThan(0);
  });

  it('creates a VM, a dirty-logged memory region and a vCPU in long mode', T, (ctx) => {
    const k = kvm(ctx);
    const vm = k.createVm();
    try {
      const mem = vm.allocMemory(GUEST_RAM_BYTES);
      expect(mem.byteLength).toBe(GUEST_RAM_BYTES);
      vm.setMemoryRegion({ slot: 0, guestPhysAddr: 0, memory: mem, logDirty: true });
      const bitmap = new Uint32Array(Vm.bitmapWords(PAGES));
      vm.getDirtyLog(0, bitmap);
      expect(setBits(bitmap).size).toBe(0);
      expect(() => vm.getDirtyLog(0, new Uint32Array(2))).toThrow(expect.objectContaining({ code: 'EINVAL' }));
      const cpu = vm.createVcpu(0);
      expect(cpu.phase()).toBe('created');
      cpu.setSregs({ efer: 0n });
      expect(cpu.getRegs().rip).toBe(0xfff0n); // x86 reset vector offset
      expect(cpu.getFpu().fpr.length).toBe(128);
    } finally {
      vm.close();
    }
  });

  it('hands PIO and MMIO exits to JS and resumes the guest with the answers', T, (ctx) => {
    const b = boot(kvm(ctx), { workload: 'hello' });
    const exits = serve(b.vcpu, {
      until: isDone,
      answer: (e) => (e.reason === 'io' && e.port === PORT_HELLO ? 0x12345678 : e.reason === 'mmio' ? 0xabcd0000 : 0),
      timeoutMs: 60_000,
    });
    const [pioIn, mmioRead, mmioWrite, done] = exits;
    expect(pioIn).toMatchObject({ reason: 'io', direction: 'in', port: PORT_HELLO, size: 4, count: 1 });
    expect(mmioRead).toMatchObject({ reason: 'mmio', addr: MMIO_HELLO, len: 4, isWrite: false });
    expect(mmioWrite).toMatchObject({ reason: 'mmio', addr: MMIO_HELLO, len: 4, isWrite: true });
    expect(written(mmioWrite)).toBe((0x12345678 ^ 0xabcd0000) >>> 0);
    expect(done).toMatchObject({ reason: 'io', direction: 'out', port: PORT_DONE });
    expect(b.mailbox.get('hello_pio')).toBe(0x12345678);
    expect(b.mailbox.get('hello_mmio')).toBe(0xabcd0000);
    expect(b.mailbox.get('state')).toBe(GuestState.done);
    expect(exits.map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    expect(exits[3]!.monotonicNs).toBeGreaterThan(exits[0]!.monotonicNs);
    b.vcpu.complete();
    expect(b.vcpu.waitExit(30_000)).toMatchObject({ reason: 'hlt' });
  });

  it('stalls the guest while the main loop leaves an exit unanswered', T, (ctx) => {
    const b = boot(kvm(ctx), {
      workload: 'dirty', pattern: 'sequential', rangeStart: WORK_ADDR, rangePages: 16, pagesPerTick: 1,
      heartbeatEvery: 1,
    });
    const first = serve(b.vcpu, { until: (e) => e.reason === 'io' && e.port === PORT_HEARTBEAT, timeoutMs: 60_000 });
    const beat = first.at(-1)!;
    const before = b.mailbox.get('heartbeat');
    blockFor(300);
    expect(b.mailbox.get('heartbeat')).toBe(before); // the vCPU thread waits for us
    expect(b.vcpu.phase()).toBe('exit');
    b.vcpu.complete();
    const next = serve(b.vcpu, { until: (e) => e.reason === 'io' && e.port === PORT_HEARTBEAT, timeoutMs: 60_000 });
    expect(b.mailbox.get('heartbeat')).toBeGreaterThan(before);
    expect(next.at(-1)!.monotonicNs - beat.monotonicNs).toBeGreaterThanOrEqual(300_000_000n);
    b.mailbox.set('stop', 1);
    b.vcpu.complete();
    serve(b.vcpu, { until: isDone, timeoutMs: 60_000 });
  });

  it('KVM_GET_DIRTY_LOG reports the pages the payload wrote', T, (ctx) => {
    const range = { start: WORK_ADDR + 0x40000, pages: 96 };
    const b = boot(kvm(ctx), {
      workload: 'dirty', pattern: 'sequential', rangeStart: range.start, rangePages: range.pages,
      pagesPerTick: range.pages, maxTicks: 2,
    });
    serve(b.vcpu, { until: isDone, timeoutMs: 60_000 });
    const bitmap = new Uint32Array(Vm.bitmapWords(PAGES));
    b.vm.getDirtyLog(0, bitmap);
    const dirty = setBits(bitmap);
    const expected = pagesOf(range.start, range.pages);
    for (const p of expected) expect(dirty.has(p), `page ${p} dirty`).toBe(true);
    expect(dirty.has(range.start / 4096 - 1)).toBe(false); // just below the range: untouched
    expect(dirty.has(range.start / 4096 + range.pages)).toBe(false); // just above
    // The read cleared the log (no manual protection): the halted guest writes nothing more.
    b.vm.getDirtyLog(0, bitmap);
    const again = setBits(bitmap);
    for (const p of expected) expect(again.has(p)).toBe(false);
  });

  it('fills the migration code\'s own bitmap, which migration_bitmap_sync then consumes', T, (ctx) => {
    const range = { start: WORK_ADDR + 0x80000, pages: 40 };
    const b = boot(kvm(ctx), {
      workload: 'dirty', pattern: 'sequential', rangeStart: range.start, rangePages: range.pages,
      pagesPerTick: range.pages, maxTicks: 1,
    });
    serve(b.vcpu, { until: isDone, timeoutMs: 60_000 });
    const kvmLog = bitmapNew(PAGES); // same word layout; may live in WebAssembly memory
    const migrationBitmap = bitmapNew(PAGES);
    try {
      b.vm.getDirtyLog(0, kvmLog);
      const added = syncDirtyLog(kvmLog, migrationBitmap);
      expect(added).toBeGreaterThanOrEqual(range.pages);
      for (const p of pagesOf(range.start, range.pages)) expect(testBit(migrationBitmap, p)).toBe(true);
      expect(testBit(migrationBitmap, range.start / 4096 + range.pages)).toBe(false);
    } finally {
      bitmapFree(kvmLog);
      bitmapFree(migrationBitmap);
    }
  });

  it('switches dirty logging on under a running guest, as migration setup does', T, (ctx) => {
    const range = { start: WORK_ADDR, pages: 48 };
    const b = boot(kvm(ctx), { workload: 'increment', rangeStart: range.start, rangePages: range.pages }, { logDirty: false });
    const bitmap = new Uint32Array(Vm.bitmapWords(PAGES));
    expect(() => b.vm.getDirtyLog(0, bitmap)).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    b.vm.setMemoryRegion({ slot: 0, guestPhysAddr: 0, memory: b.memory, logDirty: true });
    const passes = b.mailbox.get('heartbeat');
    const deadline = performance.now() + 60_000;
    while (b.mailbox.get('heartbeat') < passes + 2 && performance.now() < deadline) blockFor(1);
    b.vm.getDirtyLog(0, bitmap);
    const dirty = setBits(bitmap);
    for (const p of pagesOf(range.start, range.pages)) expect(dirty.has(p)).toBe(true);
    b.mailbox.set('stop', 1);
    serve(b.vcpu, { until: isDone, timeoutMs: 60_000 });
  });

  it('KVM_CLEAR_DIRTY_LOG re-protects pages under manual dirty-log protection', T, (ctx) => {
    const k = kvm(ctx);
    const p = probeKvm();
    if (!p.available || !p.manualDirtyLog) return ctx.skip('KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 not offered');
    const range = { start: WORK_ADDR, pages: 64 };
    const b = boot(k, { workload: 'increment', rangeStart: range.start, rangePages: range.pages, maxTicks: 1 },
      { manualDirtyLog: true });
    expect(b.vm.manualDirtyLog).toBe(true);
    serve(b.vcpu, { until: isDone, timeoutMs: 60_000 });
    const bitmap = new Uint32Array(Vm.bitmapWords(PAGES));
    const expected = pagesOf(range.start, range.pages);
    b.vm.getDirtyLog(0, bitmap);
    for (const pg of expected) expect(setBits(bitmap).has(pg)).toBe(true);
    b.vm.getDirtyLog(0, bitmap); // manual mode: reading does not clear
    for (const pg of expected) expect(setBits(bitmap).has(pg)).toBe(true);
    const first = range.start / 4096; // multiple of 64
    const clear = new Uint32Array(Vm.bitmapWords(range.pages)).fill(0xffffffff);
    b.vm.clearDirtyLog(0, first, range.pages, clear);
    b.vm.getDirtyLog(0, bitmap);
    for (const pg of expected) expect(setBits(bitmap).has(pg)).toBe(false);
  });

  it('shares guest RAM with JS through the ArrayBuffer, both ways, without copies', T, (ctx) => {
    const range = { start: WORK_ADDR, pages: 32 };
    const b = boot(kvm(ctx), { workload: 'increment', rangeStart: range.start, rangePages: range.pages, maxTicks: 3 }, {
      beforeStart: ({ memory }) => new Uint8Array(memory)[range.start + 5 * 4096] = 10,
    });
    const bytes = new Uint8Array(b.memory); // one view, created before the guest ran
    serve(b.vcpu, { until: isDone, timeoutMs: 60_000 });
    for (let i = 0; i < range.pages; i++) expect(bytes[range.start + i * 4096], `page ${i}`).toBe(i === 5 ? 13 : 3);
    expect(bytes[range.start + range.pages * 4096]).toBe(0);
    expect(b.mailbox.get('pages_written')).toBe(3 * range.pages);
  });

  it('KVM_IOEVENTFD turns a queue kick into an eventfd signal with no exit', T, (ctx) => {
    let kick = -1;
    const b = boot(kvm(ctx), {
      workload: 'virtio',
      virtio: { size: 16, notify: 'pio', notifyAddr: PORT_VQ_NOTIFY, queueIndex: 0, requests: 1, outLen: 64 },
    }, {
      beforeStart: (bb) => {
        kick = bb.vm.registerIoeventfd({ addr: PORT_VQ_NOTIFY, len: 2, space: 'pio', datamatch: 0 });
      },
    });
    const n = b.vm.kvm.native;
    expect(n.pollIn(kick, 60_000)).toBe(true);
    expect(n.eventfdRead(kick)).toBeGreaterThanOrEqual(1);
    expect(b.vcpu.readExit()).toBeNull(); // the kick did not come to userspace
    expect(b.mailbox.get('vq_kicks')).toBe(1);
    b.mailbox.set('stop', 1);
    serve(b.vcpu, { until: isDone, timeoutMs: 60_000 });
    b.vm.unregisterIoeventfd(kick, { addr: PORT_VQ_NOTIFY, len: 2, space: 'pio', datamatch: 0 });
    n.close(kick);
  });

  it('reports a triple fault as ETRIPLEFAULT', T, (ctx) => {
    const b = boot(kvm(ctx), { workload: 'tripleFault' });
    const exits = serve(b.vcpu, { until: () => false, timeoutMs: 60_000 });
    const last = exits.at(-1)!;
    expect(last).toMatchObject({ reason: 'shutdown', terminal: true, code: 'ETRIPLEFAULT' });
    expect(exitError(last as TerminalExit)).toMatchObject({ code: 'ETRIPLEFAULT' });
    expect(() => b.vcpu.complete()).toThrow(expect.objectContaining({ code: 'ETRIPLEFAULT' }));
    expect(b.vcpu.phase()).toBe('ended');
  });

  it('pauses with a pending PIO IN completed, and registers round-trip', T, (ctx) => {
    const b = boot(kvm(ctx), { workload: 'hello' });
    const [pioIn] = serve(b.vcpu, { until: (e) => e.reason === 'io', timeoutMs: 60_000 });
    expect(pioIn).toMatchObject({ direction: 'in', port: PORT_HELLO });
    expect(b.vcpu.pause()).toBe('exit'); // the exit must be answered first
    b.vcpu.complete(0x55aa55aa);
    expect(b.vcpu.pause()).toBe('paused');
    const regs = b.vcpu.getRegs();
    const sregs = b.vcpu.getSregs();
    expect(regs.rax & 0xffffffffn).toBe(0x55aa55aan); // the IN finished before the vCPU parked
    expect(sregs.efer & (1n << 10n)).not.toBe(0n); // still in long mode
    b.vcpu.setRegs(regs);
    b.vcpu.setSregs(sregs);
    b.vcpu.setFpu(b.vcpu.getFpu());
    expect(b.vcpu.getRegs()).toEqual(regs);
    b.vcpu.resume();
    serve(b.vcpu, { until: isDone, answer: () => 7, timeoutMs: 60_000 });
    expect(b.mailbox.get('hello_pio')).toBe(0x55aa55aa);
    expect(b.mailbox.get('hello_mmio')).toBe(7);
  });

  it('refuses register access while the vCPU runs', T, (ctx) => {
    const b = boot(kvm(ctx), { workload: 'dirty', pattern: 'uniform', rangeStart: WORK_ADDR, rangePages: 64, pagesPerTick: 8 });
    expect(() => b.vcpu.getRegs()).toThrow(expect.objectContaining({ code: 'EBUSY' }));
    expect(b.vcpu.pause()).toBe('paused');
    expect(b.vcpu.getRegs().rip).toBeGreaterThanOrEqual(0x100000n);
    b.vcpu.resume();
    b.mailbox.set('stop', 1);
    serve(b.vcpu, { until: isDone, timeoutMs: 60_000 });
  });
});
