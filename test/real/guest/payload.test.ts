/**
 * Real-mode tests of the guest payload's workloads: dirty patterns (uniform, hot
 * set, sequential) and their determinism per seed, QEMU migration-test's byte
 * increment, ping answered while paced, and the split-virtqueue driver served by a
 * small device written here in JS (MMIO kicks, then notification suppression),
 * and two vCPUs running different workloads from their own mailboxes and stacks.
 * Skip with the reason without /dev/kvm; fail instead under `npm run test:kvm`.
 * Leaves out: the real virtio-net/virtio-blk devices (they reuse the model's code).
 */
import { afterEach, describe, expect, it } from 'vitest';

import { Vm, type Kvm, type VcpuExit } from '../../../real/kvm/index.ts';
import {
  MMIO_VQ_NOTIFY, PORT_PONG, VQ_AVAIL_ADDR, VQ_DESC_ADDR, VQ_USED_ADDR, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE,
  VRING_USED_F_NO_NOTIFY, WORK_ADDR, GuestState,
} from '../../../real/guest/layout.ts';
import { Mailbox, type WorkloadParams } from '../../../real/guest/mailbox.ts';
import { bootLongMode, loadPayload } from '../../../real/guest/loader.ts';
import { blockFor, bootPayload, GUEST_RAM_BYTES, isDone, kvmOrSkip, serve, setBits, written, type Booted } from '../helpers.ts';

const T = { timeout: 120_000 };
let open: Array<{ close(): void }> = [];
afterEach(() => {
  for (const o of open.reverse()) o.close();
  open = [];
});

function run(ctx: Parameters<typeof kvmOrSkip>[0], params: WorkloadParams, opts?: Parameters<typeof bootPayload>[2]): Booted {
  const kvm: Kvm = kvmOrSkip(ctx);
  open.push(kvm);
  const b = bootPayload(kvm, params, opts);
  open.push(b.vm);
  return b;
}

/** Pages of [start, start + pages) whose first u64 is non-zero, with that value. */
function writtenPages(b: Booted, start: number, pages: number): Map<number, bigint> {
  const view = new DataView(b.memory);
  const out = new Map<number, bigint>();
  for (let i = 0; i < pages; i++) {
    const v = view.getBigUint64(start + i * 4096, true);
    if (v !== 0n) out.set(i, v);
  }
  return out;
}

const RANGE = { start: WORK_ADDR + 0x100000, pages: 256 };

describe('dirty workload', () => {
  it('uniform: writes stay in the range, carry the tick number, and are in the dirty log', T, (ctx) => {
    const b = run(ctx, { workload: 'dirty', pattern: 'uniform', rangeStart: RANGE.start, rangePages: RANGE.pages, pagesPerTick: 16, maxTicks: 8, seed: 7 });
    serve(b.vcpu, { until: isDone });
    expect(b.mailbox.get('state')).toBe(GuestState.done);
    expect(b.mailbox.get('pages_written')).toBe(128);
    expect(b.mailbox.get('heartbeat')).toBe(8);
    const written = writtenPages(b, RANGE.start, RANGE.pages);
    expect(written.size).toBeGreaterThan(32); // 128 random writes over 256 pages
    for (const v of written.values()) expect(v >= 1n && v <= 8n).toBe(true);
    expect(new DataView(b.memory).getBigUint64(RANGE.start + RANGE.pages * 4096, true)).toBe(0n);
    const bitmap = new Uint32Array(Vm.bitmapWords(GUEST_RAM_BYTES / 4096));
    b.vm.getDirtyLog(0, bitmap);
    const dirty = setBits(bitmap);
    for (const i of written.keys()) expect(dirty.has(RANGE.start / 4096 + i)).toBe(true);
  });

  it('uniform: the same seed writes the same memory', T, (ctx) => {
    const params: WorkloadParams = { workload: 'dirty', pattern: 'uniform', rangeStart: RANGE.start, rangePages: RANGE.pages, pagesPerTick: 8, maxTicks: 6, seed: 99 };
    const snap = (seed: number) => {
      const b = run(ctx, { ...params, seed });
      serve(b.vcpu, { until: isDone });
      return [...writtenPages(b, RANGE.start, RANGE.pages)];
    };
    const a = snap(99);
    expect(snap(99)).toEqual(a);
    expect(snap(100)).not.toEqual(a);
  });

  it('hot set: every write lands in the hot pages when hot_percent is 100', T, (ctx) => {
    const b = run(ctx, { workload: 'dirty', pattern: 'hotSet', rangeStart: RANGE.start, rangePages: RANGE.pages, hotPages: 8, hotPercent: 100, pagesPerTick: 32, maxTicks: 4, seed: 3 });
    serve(b.vcpu, { until: isDone });
    const written = writtenPages(b, RANGE.start, RANGE.pages);
    expect(written.size).toBeGreaterThan(0);
    for (const i of written.keys()) expect(i).toBeLessThan(8);
  });

  it('sequential: page after page, wrapping, last write holds the last tick', T, (ctx) => {
    const b = run(ctx, { workload: 'dirty', pattern: 'sequential', rangeStart: RANGE.start, rangePages: 10, pagesPerTick: 4, maxTicks: 5 });
    serve(b.vcpu, { until: isDone });
    // 20 writes over 10 pages: ticks 1..5 write pages 0-3, 4-7, 8-9+0-1, 2-5, 6-9.
    const want = [3n, 3n, 4n, 4n, 4n, 4n, 5n, 5n, 5n, 5n];
    expect([...writtenPages(b, RANGE.start, 10).values()]).toEqual(want);
    expect(b.mailbox.get('last_page')).toBe(RANGE.start + 9 * 4096);
  });

  it('rejects a range below the workload area', T, (ctx) => {
    const b = run(ctx, { workload: 'dirty', pattern: 'uniform', rangeStart: 0x1000, rangePages: 4, pagesPerTick: 1, maxTicks: 1 });
    const exits = serve(b.vcpu, { until: isDone });
    expect(written(exits.at(-1))).toBe(GuestState.badParams);
    expect(b.mailbox.get('pages_written')).toBe(0);
  });

  it('answers a ping while waiting for its next tick', T, (ctx) => {
    const b = run(ctx, { workload: 'dirty', pattern: 'sequential', rangeStart: RANGE.start, rangePages: 4, pagesPerTick: 1, tickTsc: 4e9 });
    b.mailbox.set('ping_req', 41);
    const exits = serve(b.vcpu, { until: (e) => e.reason === 'io' && e.port === PORT_PONG });
    expect(written(exits.at(-1))).toBe(41);
    expect(b.mailbox.get('ping_ack')).toBe(41);
    b.mailbox.set('stop', 1);
    b.vcpu.complete();
    serve(b.vcpu, { until: isDone });
  });
});

describe('several vCPUs', () => {
  it('each vCPU reads its own mailbox (index in RDI) and runs its own workload', T, (ctx) => {
    const kvm: Kvm = kvmOrSkip(ctx);
    open.push(kvm);
    const vm = kvm.createVm();
    open.push(vm);
    const memory = vm.allocMemory(GUEST_RAM_BYTES);
    loadPayload(memory);
    const a = new Mailbox(memory, 0, 0);
    const b = new Mailbox(memory, 0, 1);
    a.write({ workload: 'dirty', pattern: 'sequential', rangeStart: RANGE.start, rangePages: 8, pagesPerTick: 8, maxTicks: 3 });
    b.write({ workload: 'increment', rangeStart: RANGE.start + 0x10000, rangePages: 4, maxTicks: 5 });
    vm.setMemoryRegion({ slot: 0, guestPhysAddr: 0, memory, logDirty: false });
    const cpus = [vm.createVcpu(0), vm.createVcpu(1)];
    for (const c of cpus) {
      bootLongMode(c);
      c.start();
    }
    for (const c of cpus) serve(c, { until: isDone });
    expect([a.get('state'), b.get('state')]).toEqual([GuestState.done, GuestState.done]);
    expect([a.get('boots'), b.get('boots')]).toEqual([1, 1]);
    expect([a.get('heartbeat'), b.get('heartbeat')]).toEqual([3, 5]);
    expect([a.get('pages_written'), b.get('pages_written')]).toEqual([24, 20]);
    const view = new DataView(memory);
    expect(view.getBigUint64(RANGE.start, true)).toBe(3n); // the dirty workload's last tick
    expect(view.getUint8(RANGE.start + 0x10000)).toBe(5); // the increment's passes
  });
});

describe('increment workload (migration-test style)', () => {
  it('adds one to the first byte of every page, pass after pass', T, (ctx) => {
    const b = run(ctx, { workload: 'increment', rangeStart: RANGE.start, rangePages: 64, maxTicks: 4 });
    serve(b.vcpu, { until: isDone });
    const bytes = new Uint8Array(b.memory);
    for (let i = 0; i < 64; i++) {
      expect(bytes[RANGE.start + i * 4096]).toBe(4);
      expect(bytes[RANGE.start + i * 4096 + 1]).toBe(0);
    }
    expect(b.mailbox.get('heartbeat')).toBe(4);
  });
});

/** A minimal device side for the split ring: consumes avail entries, returns used ones. */
class TestDevice {
  private readonly view: DataView;
  private lastAvail = 0;
  usedIdx = 0;
  readonly seen: number[] = [];
  constructor(memory: ArrayBuffer, private readonly size: number, private readonly inFill: number) {
    this.view = new DataView(memory);
  }
  /** Processes every available request; returns how many. */
  process(): number {
    const v = this.view;
    const availIdx = v.getUint16(VQ_AVAIL_ADDR + 2, true);
    let n = 0;
    while (this.lastAvail !== availIdx) {
      const head = v.getUint16(VQ_AVAIL_ADDR + 4 + 2 * (this.lastAvail % this.size), true);
      let d = head, written = 0;
      for (;;) {
        const desc = VQ_DESC_ADDR + 16 * d;
        const addr = Number(v.getBigUint64(desc, true));
        const len = v.getUint32(desc + 8, true);
        const flags = v.getUint16(desc + 12, true);
        if (flags & VRING_DESC_F_WRITE) {
          new Uint8Array(v.buffer, addr, len).fill(this.inFill);
          written += len;
        } else {
          const req = v.getUint32(addr, true);
          expect(v.getUint32(addr + 4, true)).toBe(len);
          for (let i = 8; i < len; i++) expect(v.getUint8(addr + i)).toBe((req + i) & 0xff);
          this.seen.push(req);
        }
        if (!(flags & VRING_DESC_F_NEXT)) break;
        d = v.getUint16(desc + 14, true);
      }
      const elem = VQ_USED_ADDR + 4 + 8 * (this.usedIdx % this.size);
      v.setUint32(elem, head, true);
      v.setUint32(elem + 4, written, true);
      this.usedIdx = (this.usedIdx + 1) & 0xffff;
      this.lastAvail = (this.lastAvail + 1) & 0xffff;
      n++;
    }
    if (n) v.setUint16(VQ_USED_ADDR + 2, this.usedIdx, true); // publish after the elements
    return n;
  }
}

describe('virtio split-ring driver', () => {
  const virtio = { size: 16, notify: 'mmio' as const, notifyAddr: MMIO_VQ_NOTIFY, queueIndex: 3, requests: 40, outLen: 100, inLen: 16, batch: 4 };

  it('posts request chains and kicks the MMIO notify address; a JS device completes them', T, (ctx) => {
    const b = run(ctx, { workload: 'virtio', virtio });
    const dev = new TestDevice(b.memory, virtio.size, 0x5a);
    const kicks: VcpuExit[] = [];
    serve(b.vcpu, {
      until: (e) => {
        if (e.reason === 'mmio' && e.isWrite && e.addr === MMIO_VQ_NOTIFY) {
          kicks.push(e);
          dev.process();
        }
        return isDone(e);
      },
    });
    expect(b.mailbox.get('state')).toBe(GuestState.done);
    expect(dev.seen).toEqual(Array.from({ length: 40 }, (_, i) => i));
    expect(b.mailbox.get('vq_completed')).toBe(40);
    expect(b.mailbox.get('vq_used_bytes')).toBe(40 * 16);
    expect(b.mailbox.get('vq_kicks')).toBe(kicks.length);
    expect(kicks[0]).toMatchObject({ len: 2, data: new Uint8Array([3, 0]) });
    expect(b.mailbox.get('vq_desc_addr')).toBe(VQ_DESC_ADDR);
    expect(b.mailbox.get('vq_avail_addr')).toBe(VQ_AVAIL_ADDR);
    expect(b.mailbox.get('vq_used_addr')).toBe(VQ_USED_ADDR);
    expect(new Uint8Array(b.memory)[Number(new DataView(b.memory).getBigUint64(VQ_DESC_ADDR + 16, true))]).toBe(0x5a);
  });

  it('skips kicks while the device sets VRING_USED_F_NO_NOTIFY, and the device polls', T, (ctx) => {
    const b = run(ctx, { workload: 'virtio', virtio: { ...virtio, requests: 24 } }, {
      beforeStart: ({ memory }) => new DataView(memory).setUint16(VQ_USED_ADDR, VRING_USED_F_NO_NOTIFY, true),
    });
    const dev = new TestDevice(b.memory, virtio.size, 0);
    for (let i = 0; i < 2000 && b.mailbox.get('vq_completed') < 24; i++) {
      dev.process();
      blockFor(5);
    }
    expect(b.mailbox.get('vq_completed')).toBe(24);
    serve(b.vcpu, { until: isDone });
    expect(b.mailbox.get('vq_kicks')).toBe(0);
    expect(b.mailbox.get('vq_kicks_suppressed')).toBeGreaterThan(0);
  });
});
