/**
 * The KVM dirty ring on this host (KVM_CAP_DIRTY_LOG_RING): the addon enables
 * it before the vCPU exists and maps it; the payload's writes come out of the
 * ring as KVM_EXIT_DIRTY_RING_FULL once it holds its soft limit (size - 64;
 * this machine kind's kvm_pvm exits a few dozen entries later, and pushes
 * a page about twice per write fault); collecting and KVM_RESET_DIRTY_RINGS let
 * the guest go on, and every page it wrote is collected. Then the model's side
 * on real KVM: a run and a live migration with vm.dirty_ring_size, and the
 * one-line error when the host offers no ring.
 * Skip cleanly only when the host lacks the capability (or KVM, or the addon).
 * Leaves out: timing (the nested test VM is slow).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { probeKvm, Vm, type Kvm } from '../../../real/kvm/index.ts';
import { WORK_ADDR } from '../../../real/guest/layout.ts';
import { KVM_DIRTY_RING_RSVD_ENTRIES } from '../../../sim/guest/dirty-ring.ts';
import { parseScenario } from '../../../cli/scenario-file.ts';
import { realRun } from '../../../real/run.ts';
import { realMigrate } from '../../../real/migrate.ts';
import { RealError } from '../../../real/errors.ts';
import { RealSession } from '../../../real/world.ts';
import { bootPayload, isDone, kvmOrSkip, pagesOf, setBits, GUEST_RAM_BYTES, type Booted } from '../helpers.ts';

const T = { timeout: 240_000 };
/** 4096 entries: kvm_pvm overflows smaller rings (real/dirty-ring.ts). */
const RING = 4096;

let open: Array<{ close(): void }> = [];
afterEach(() => {
  for (const o of open.reverse()) o.close();
  open = [];
});

type Ctx = Parameters<typeof kvmOrSkip>[0];

/** KVM with the dirty ring, or skip: the only reason to skip here is a host without it. */
function kvmWithRing(ctx: Ctx): Kvm {
  const k = kvmOrSkip(ctx);
  open.push(k);
  const p = probeKvm();
  if (!p.available || (p.caps.DIRTY_LOG_RING <= 0 && p.caps.DIRTY_LOG_RING_ACQ_REL <= 0)) {
    return ctx.skip('this host\'s KVM offers no KVM_CAP_DIRTY_LOG_RING');
  }
  return k;
}

describe('the KVM dirty ring through the addon', () => {
  it('is offered here, up to 65536 entries, and refused above what the VM allows', T, (ctx) => {
    const k = kvmWithRing(ctx);
    const vm = k.createVm();
    open.push(vm);
    expect(vm.enableDirtyRing(1 << 20)).toBeNull(); // 16 MiB of entries per vCPU: more than any KVM takes
    expect(vm.enableDirtyRing(65536)).not.toBeNull();
    expect(vm.dirtyRingEntries).toBe(65536);
  });

  it('exits with KVM_EXIT_DIRTY_RING_FULL at its soft limit, and hands over every written page', T, (ctx) => {
    const k = kvmWithRing(ctx);
    // 3000 pages written once each (in 16 MiB of guest memory): more entries than the ring holds.
    // A heartbeat exit every 15 pages lets KVM act on the soft-full request promptly.
    const range = { start: WORK_ADDR + 0x40000, pages: 3000 };
    const b: Booted = bootPayload(k, {
      workload: 'dirty', pattern: 'sequential', rangeStart: range.start, rangePages: range.pages,
      pagesPerTick: 15, maxTicks: 200, heartbeatEvery: 1,
    }, { dirtyRing: RING });
    open.push(b.vm);
    const log = new Uint32Array(Vm.bitmapWords(GUEST_RAM_BYTES / 4096));
    const fulls: number[] = [];
    let collected = 0;
    const deadline = performance.now() + 120_000;
    for (;;) {
      const e = b.vcpu.waitExit(Math.max(1, Math.round(deadline - performance.now())));
      if (!e) throw new Error(`no exit (phase ${b.vcpu.phase()})`);
      if (e.terminal) throw new Error(`${e.code}: ${e.message}`);
      if (e.reason === 'dirty_ring_full') {
        const pending = b.vcpu.dirtyRingPending();
        fulls.push(pending);
        const n = b.vcpu.collectDirtyRing(log);
        expect(n).toBe(pending);
        collected += n;
        expect(b.vm.resetDirtyRings()).toBe(n);
        b.vcpu.complete();
        continue;
      }
      if (isDone(e)) break;
      const isRead = (e.reason === 'io' && e.direction === 'in') || (e.reason === 'mmio' && !e.isWrite);
      b.vcpu.complete(isRead ? 0 : undefined);
    }
    const rest = b.vcpu.collectDirtyRing(log);
    collected += rest;
    b.vm.resetDirtyRings();
    expect(fulls.length).toBeGreaterThanOrEqual(1);
    // KVM asks for the exit once the ring holds its soft limit (PML hosts reserve 512 more), and
    // the vCPU leaves before the ring is full: within the reserved entries.
    for (const f of fulls) {
      expect(f).toBeGreaterThanOrEqual(RING - KVM_DIRTY_RING_RSVD_ENTRIES - 512);
      expect(f).toBeLessThan(RING);
    }
    const dirty = setBits(log);
    for (const p of pagesOf(range.start, range.pages)) expect(dirty.has(p), `page ${p}`).toBe(true);
    expect(collected).toBeGreaterThanOrEqual(range.pages);
  });
});

const dir = mkdtempSync(join(tmpdir(), 'latsim-real-ring-'));
// 16 MiB written at 20,000 pages a second fill the 4096-entry ring during the 2 s first pass
// (64 MiB at 32 MiB/s); the 1 s downtime limit then lets it converge. A heartbeat exit every
// tick (20 pages): kvm_pvm acts on a full ring late, and the guest must exit well within the
// ring's 64 reserved entries (real/dirty-ring.ts).
const RINGED = `
name: real-ring
seed: 5
duration: 2s
vm: { memory: 64MiB, vcpus: 1, dirty_ring_size: 4096 }
guest:
  workloads:
    - vcpus: all
      exits: { rate: 1000/s, cost: 10us }
      dirty: { rate: 20000/s, pattern: uniform, start: 4MiB, size: 16MiB }
migration:
  start: 300ms
  max_bandwidth: 32MiB/s
  downtime_limit: 1s
`;
const file = join(dir, 'ring.yaml');
writeFileSync(file, RINGED);

describe('the model\'s dirty ring on real KVM', () => {
  it('run: a real guest with the ring says so in its JSON (nothing logged without a migration)', T, (ctx) => {
    kvmWithRing(ctx);
    const run = realRun(parseScenario(RINGED, file));
    expect(run.result.outcome).toBe('ok');
    expect(run.real.dirty_tracking).toBe('ring');
    expect(run.real.ring_full_exits).toBe(0);
    expect(run.real.kvm.dirty_ring_cap).toMatch(/^DIRTY_LOG_RING/);
  });

  it('migrate: the syncs reap the rings, ring-full exits are served, memory arrives equal', T, async (ctx) => {
    kvmWithRing(ctx);
    const s = parseScenario(RINGED.replace('duration: 2s', 'duration: 120s'), file);
    const run = await realMigrate(s, { file, passArgs: ['--duration', '120s'], checkNs: 300_000_000 });
    const m = run.result.migration!;
    expect(run.result.error).toBeNull();
    expect(m.status).toBe('completed');
    expect(m.verified).toBe(true);
    expect(m.dirty_tracking).toBe('ring');
    expect(m.dirty_ring!.size).toBe(4096);
    expect(m.dirty_ring!.reaped_pages).toBeGreaterThan(0);
    expect(m.ring_full_exits).toBe(m.dirty_ring!.ring_full_exits);
    expect(m.ring_full_exits).toBeGreaterThan(0);
    expect(run.real.dirty_tracking).toBe('ring');
    expect(run.real.ring_full_exits).toBe(m.ring_full_exits);
  });

  it('a host without the ring: one line, real mode unavailable (exit 6)', T, (ctx) => {
    kvmWithRing(ctx);
    const enable = Vm.prototype.enableDirtyRing;
    Vm.prototype.enableDirtyRing = () => null;
    try {
      let err: unknown = null;
      try {
        RealSession.open(parseScenario(RINGED, file)).close();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(RealError);
      const re = err as RealError;
      expect(re.exitCode).toBe(6);
      expect(re.message).toBe('unavailable: this host\'s KVM offers no dirty ring of 4096 entries (KVM_CAP_DIRTY_LOG_RING); drop vm.dirty_ring_size to use the dirty log');
    } finally {
      Vm.prototype.enableDirtyRing = enable;
    }
  });
});
