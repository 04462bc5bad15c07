// The KVM dirty ring: KVM's half (a page pushes one entry until it is reset,
// the soft limit), the ring-full exit at the occupancy KVM exits at, the
// reaps (ring-full, kvm-reaper, the migration's flush), and no dirty page
// lost on the way from a vCPU's ring to the destination.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { KVM_DIRTY_RING_RSVD_ENTRIES, SimDirtyRings } from '../../../sim/guest/dirty-ring.ts';
import { GuestRam } from '../../../sim/guest/ram.ts';
import { buildWorld } from '../../../sim/world.ts';
import { simulate } from '../../../sim/run.ts';
import { SimPlatform } from '../../../sim/sim-platform.ts';
import { Scheduler } from '../../../sim/scheduler/index.ts';
import { bitmapNew, countSetBits, testBit } from '../../../sim/util/bitmap.ts';
import { InvariantError } from '../../../sim/invariant.ts';
import { S, scenario } from '../helpers.ts';

describe('SimDirtyRings (KVM\'s half)', () => {
  it('pushes a page once until its entry is collected and reset, into the writing vCPU\'s ring', () => {
    const rings = new SimDirtyRings(2, 1024, 4096);
    rings.write(0, 7);
    rings.write(0, 7);
    rings.write(1, 7); // writable since vcpu0's write: nothing to push
    rings.write(1, 9);
    expect([rings.used(0), rings.used(1)]).toEqual([1, 1]);
    const log = bitmapNew(4096);
    expect(rings.collect(0, log)).toBe(1);
    expect(testBit(log, 7) && !testBit(log, 9)).toBe(true);
    // Collected but not reset: the page stays writable, the entry occupies the ring.
    rings.write(0, 7);
    expect(rings.used(0)).toBe(1);
    expect(rings.reset()).toBe(1);
    expect(rings.used(0)).toBe(0);
    rings.write(0, 7);
    expect(rings.used(0)).toBe(1);
    expect(rings.inRing(9) && rings.inRing(7)).toBe(true);
  });

  it('is soft-full at size - KVM_DIRTY_RING_RSVD_ENTRIES and refuses to overflow', () => {
    const rings = new SimDirtyRings(1, 1024, 8192);
    expect(rings.softLimit).toBe(1024 - KVM_DIRTY_RING_RSVD_ENTRIES);
    for (let p = 0; p < rings.softLimit - 1; p++) rings.write(0, p);
    expect(rings.softFull(0)).toBe(false);
    rings.write(0, 5000);
    expect(rings.softFull(0)).toBe(true);
    for (let p = 6000; p < 6000 + KVM_DIRTY_RING_RSVD_ENTRIES; p++) rings.write(0, p);
    expect(() => rings.write(0, 7000)).toThrow(InvariantError);
  });

  it('collect and reset keep every written page either in a ring or in the log', () => {
    fc.assert(fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 255 }), fc.boolean()), { maxLength: 400 }), (ops) => {
      const rings = new SimDirtyRings(3, 1024, 256);
      const log = bitmapNew(256);
      const written = new Set<number>();
      for (const [vcpu, page, reap] of ops) {
        rings.write(vcpu, page);
        written.add(page);
        if (reap) {
          for (let v = 0; v < 3; v++) rings.collect(v, log);
          rings.reset();
        }
      }
      for (const p of written) expect(rings.inRing(p) || testBit(log, p)).toBe(true);
    }));
  });
});

describe('GuestRam with a dirty ring', () => {
  it('sends logged writes to the rings instead of the log, and starts them empty when logging starts', () => {
    const ram = new GuestRam(64 * 4096, 4096, { vcpus: 2, dirtyRingSize: 1024 });
    ram.write(3, 0);
    expect(ram.dirtyRing!.used(0)).toBe(0);
    ram.logging = true;
    ram.write(3, 1);
    ram.writeRounds(10, 4, 3, 0);
    expect([ram.dirtyRing!.used(0), ram.dirtyRing!.used(1)]).toEqual([4, 1]);
    expect(countSetBits(ram.dirtyLog)).toBe(0);
    ram.logging = false;
    ram.logging = true;
    expect(ram.dirtyRing!.used(0)).toBe(0);
  });
});

const RING_GUEST = (ring: number, rate: number, vcpus = 1) => scenario(`
name: ring-full
duration: 3s
vm: { memory: 256MiB, vcpus: ${vcpus}, dirty_ring_size: ${ring} }
guest:
  workloads:
    - vcpus: all
      dirty: { rate: ${rate}/s, pattern: sequential }
`);

/** A world whose dirty logging is on from the start (as a migration turns it on), run for ns. */
function runLogging(text: ReturnType<typeof RING_GUEST>, ns: number) {
  const platform = new SimPlatform(new Scheduler({ seed: 1 }));
  const world = buildWorld(text, platform, false);
  const ring = world.guest.kvmDirtyRing!;
  const seen: { vcpu: number; used: number; at: number }[] = [];
  const exit = ring.ringFullExit.bind(ring);
  ring.ringFullExit = (v, ...rest) => {
    seen.push({ vcpu: v.index, used: world.guest.ram.dirtyRing!.used(v.index), at: platform.nowNs() });
    return exit(v, ...rest);
  };
  world.guest.ram.logging = true;
  platform.scheduler.run(ns);
  return { world, ring, seen };
}

describe('ring-full exits', () => {
  it('come when the ring holds its soft limit, right after the write that filled it', () => {
    // 200,000 new pages a second fill the 960 entries of a 1024-entry ring every 4.8 ms.
    const { world, ring, seen } = runLogging(RING_GUEST(1024, 200_000), 100_000_000);
    expect(seen.length).toBeGreaterThan(15);
    for (const s of seen) expect(s.used).toBe(1024 - KVM_DIRTY_RING_RSVD_ENTRIES);
    // One write lasts 5 us: each exit comes within a write of the 960th entry;
    // between two, the vCPU also spent the reap of 960 entries (150 ns each) out of guest mode.
    const reapNs = 960 * world.machine.qemu.host.dirty_ring_reap_ns;
    for (let i = 1; i < seen.length; i++) expect(Math.abs(seen[i]!.at - seen[i - 1]!.at - 4_800_000 - reapNs)).toBeLessThan(5_000);
    expect(ring.ringFullExits).toBe(seen.length);
    expect(ring.reaps).toBe(seen.length);
    expect(ring.reapedPages).toBe(seen.length * 960);
    expect(world.machine.vcpus[0]!.exits).toBe(seen.length);
  });

  it('bound a vCPU that is running in guest mode when the migration turns logging on', () => {
    // The vCPU is amid a bulk run of up to a slice when logging starts at 1 s:
    // 200,000 new pages a second would write far past a 1024-entry ring in that
    // run; it stops at the soft limit instead.
    const { result, world } = simulate(scenario(`
name: ring-at-log-start
duration: 1500ms
vm: { memory: 1GiB, vcpus: 1, dirty_ring_size: 1024 }
guest:
  workloads:
    - vcpus: all
      exits: { rate: 200/s, cost: 10us }
      dirty: { rate: 200000/s, pattern: uniform }
migration: { start: 1s, max_bandwidth: 1GiB/s, link: { bandwidth: 10Gbit/s } }
`));
    expect(result.outcome).not.toBe('invariant');
    expect(result.error).toBeNull();
    expect(world.guest.kvmDirtyRing!.ringFullExits).toBeGreaterThan(50);
  });

  it('do not come while kvm-reaper collects faster than the guest fills the ring', () => {
    // 500 new pages a second; the reaper collects every second, the ring holds 960.
    const { ring, seen } = runLogging(RING_GUEST(1024, 500), 2_500_000_000);
    expect(seen).toEqual([]);
    expect(ring.reaperIteration).toBe(2);
    expect(ring.reapedPages).toBe(1000);
  });

  it('reap every vCPU\'s ring under the BQL, not only the full one', () => {
    const { world, seen } = runLogging(RING_GUEST(1024, 200_000, 2), 30_000_000);
    expect(seen.length).toBeGreaterThan(0);
    const rings = world.guest.ram.dirtyRing!;
    // The exits alternate between the vCPUs; whoever reaps empties both rings.
    const first = seen[0]!;
    expect(first.used).toBe(960);
    const bql = world.machine.bql.table().filter((r) => r.site === 'kvm_cpu_exec');
    expect(bql.reduce((n, r) => n + r.holds, 0)).toBe(seen.length);
    expect(rings.used(0) + rings.used(1)).toBeLessThan(2 * 960);
  });
});

describe('no dirty page lost with the ring', () => {
  const migrating = (seed: number, ring: number, rate: number, pattern: string) => scenario(`
name: ring-migrate-${seed}
seed: ${seed}
duration: 40s
vm: { memory: 128MiB, vcpus: 2, populated: 50%, dirty_ring_size: ${ring} }
guest:
  workloads:
    - vcpus: all
      dirty: { rate: ${rate}/s, pattern: ${pattern} }
migration:
  start: 500ms
  max_bandwidth: 256MiB/s
expect:
  migration_status: completed
`);

  it('across ring-full exits, reaps and syncs, the destination holds what the source holds', () => {
    for (const [seed, ring, rate, pattern] of [[1, 1024, 8000, 'uniform'], [2, 2048, 8000, 'sequential'], [3, 1024, 3000, 'hotset'], [4, 4096, 6000, 'increment']] as const) {
      const { result, world } = simulate(migrating(seed, ring, rate, pattern));
      expect(result.error, `seed ${seed}`).toBeNull();
      expect(result.migration!.status).toBe('completed');
      expect(result.migration!.verified).toBe(true);
      expect(result.migration!.dirty_tracking).toBe('ring');
      if (pattern === 'uniform') expect(world.guest.kvmDirtyRing!.ringFullExits, `seed ${seed}`).toBeGreaterThan(0);
    }
  });

  it('the tracking checker catches a sync that drops what the rings reaped', () => {
    const s = migrating(5, 1024, 20_000, 'uniform');
    const { result } = simulate({ ...s, migration: { ...s.migration!, bug: 'sync-drops-new-bits' } });
    expect(result.outcome).toBe('invariant');
    expect(result.error).toMatch(/lost-page.*neither the migration bitmap, the dirty log nor a dirty ring holds it/);
  });

  it('every sync kicks every vCPU out of guest mode once, dropping the BQL meanwhile', () => {
    const { result } = simulate(migrating(6, 1024, 2000, 'uniform'));
    const syncs = result.migration!.ram['dirty-sync-count'];
    const work = result.bql.table.filter((r) => r.site === 'process_queued_cpu_work');
    expect(work.map((r) => r.thread)).toEqual(['vcpu0', 'vcpu1']);
    for (const r of work) expect(r.holds).toBe(syncs);
    expect(result.sim_time_ns).toBeGreaterThan(S);
  });
});
