// How the migration's dirty bitmap sync reads dirty pages, and what it costs
// under the BQL: KVM_GET_DIRTY_LOG for the whole of RAM (the log), the reap of
// what the vCPUs dirtied (the ring), or a read of the log whose clearing is
// put off to just before each clear_bmap chunk is sent (manual protection).
// Also the JSON's dirty-tracking fields and the scenario's checks.
import { describe, expect, it } from 'vitest';
import { simulate } from '../../../sim/run.ts';
import type { RunResult } from '../../../sim/results.ts';
import { scenario } from '../helpers.ts';
import { parseScenario, ScenarioError } from '../../../cli/scenario-file.ts';

const run = (o: { memory: string; rate: number; ring?: number; manual?: boolean; shift?: number; vcpus?: number; pattern?: string; populated?: string; hot?: string }): RunResult => simulate(scenario(`
name: tracking
seed: 4
duration: 40s
vm:
  memory: ${o.memory}
  vcpus: ${o.vcpus ?? 2}
  populated: ${o.populated ?? '10%'}
  ${o.ring ? `dirty_ring_size: ${o.ring}` : ''}
  ${o.manual ? 'manual_dirty_log_protect: true' : ''}
guest:
  workloads:
    - vcpus: all
      dirty: { rate: ${o.rate}/s, pattern: ${o.hot ? `hotset, hot_set: ${o.hot}, cold: 0%` : o.pattern ?? 'uniform'} }
migration:
  start: 1s
  max_bandwidth: 1GiB/s
  link: { bandwidth: 25Gbit/s }
  ${o.shift ? `clear_bitmap_shift: ${o.shift}` : ''}
expect:
  migration_status: completed
`)).result;

const syncHold = (r: RunResult): number => Math.max(...r.migration!.iterations.map((i) => i.bql_hold_ns));

describe('the sync\'s hold of the BQL', () => {
  it('grows with guest RAM for the dirty log, and hardly at all for the dirty ring', () => {
    // Both guests dirty all of the same 4096 hot pages during the first pass: the sync reaps as many in both.
    const same = { rate: 50_000, hot: '16MiB', populated: '50%' };
    const logSmall = run({ memory: '512MiB', ...same });
    const logLarge = run({ memory: '4GiB', ...same });
    const ringSmall = run({ memory: '512MiB', ring: 65536, ...same });
    const ringLarge = run({ memory: '4GiB', ring: 65536, ...same });
    for (const r of [logSmall, logLarge, ringSmall, ringLarge]) expect(r.migration!.status).toBe('completed');
    // The log: KVM_GET_DIRTY_LOG per GiB and the word loop, both in proportion to RAM.
    expect(syncHold(logLarge) / syncHold(logSmall)).toBeCloseTo(8, 1);
    expect(syncHold(logLarge)).toBeGreaterThan(2_000_000);
    // The ring: the same dirty pages reaped (4096 at 150 ns); only the walks of the bitmaps grow with RAM (0.5 ns a word).
    expect(syncHold(ringSmall)).toBeGreaterThan(0.9 * 4096 * 150);
    expect(syncHold(ringLarge) - syncHold(ringSmall)).toBeLessThan(50_000);
    expect(syncHold(ringLarge)).toBeLessThan(syncHold(logLarge) / 2);
    expect(logLarge.migration!.dirty_tracking).toBe('log');
    expect(ringLarge.migration!.dirty_tracking).toBe('ring');
  });

  it('grows with the dirty pages for the dirty ring', () => {
    const slow = run({ memory: '1GiB', rate: 4000, ring: 65536 });
    const fast = run({ memory: '1GiB', rate: 8000, ring: 65536 });
    // kvm-reaper collects a second of writes each time: twice the pages, twice the hold.
    const ratio = fast.migration!.dirty_ring!.reap_hold_max_ns / slow.migration!.dirty_ring!.reap_hold_max_ns;
    expect(ratio).toBeGreaterThan(1.8);
    expect(ratio).toBeLessThan(2.2);
    expect(syncHold(fast)).toBeGreaterThan(syncHold(slow));
    // A reap's hold is its entries at dirty_ring_reap (150 ns each).
    const ring = fast.migration!.dirty_ring!;
    expect(ring.reap_hold_max_ns).toBeLessThanOrEqual(ring.reaped_pages * 150);
    expect(ring.reap_hold_max_ns).toBeGreaterThanOrEqual((ring.reaped_pages / ring.reaps) * 150);
  });
});

describe('manual dirty-log protection (clear_bmap)', () => {
  it('reads the log under the BQL, and clears it chunk by chunk on the migration thread', () => {
    const eager = run({ memory: '1GiB', rate: 5000, pattern: 'hotset' });
    const manual = run({ memory: '1GiB', rate: 5000, pattern: 'hotset', manual: true, shift: 14 });
    expect(manual.migration!.status).toBe('completed');
    expect(manual.migration!.verified).toBe(true);
    // KVM_GET_DIRTY_LOG alone: 50 of the 500 us per GiB.
    expect(syncHold(manual)).toBeLessThan(syncHold(eager) / 5);
    const log = manual.migration!.dirty_log!;
    expect(log.manual_protect).toBe(true);
    // The first pass clears all 16 chunks of 64 MiB once; later passes only chunks with dirty pages.
    expect(log.clears).toBeGreaterThanOrEqual(16);
    expect(eager.migration!.dirty_log).toEqual({ manual_protect: false, clear_bitmap_shift: 18, clears: 0 });
  });

  it('sends a page dirtied between the read and its chunk\'s clear once, not twice', () => {
    const eager = run({ memory: '1GiB', rate: 20000, pattern: 'hotset' });
    const manual = run({ memory: '1GiB', rate: 20000, pattern: 'hotset', manual: true });
    expect(manual.migration!.ram.normal).toBeLessThan(eager.migration!.ram.normal);
  });
});

describe('the JSON\'s dirty-tracking fields', () => {
  it('are the log\'s without a ring, and the ring\'s with one', () => {
    const log = run({ memory: '256MiB', rate: 1000 }).migration!;
    expect(log.dirty_tracking).toBe('log');
    expect(log.ring_full_exits).toBe(0);
    expect(log.dirty_ring).toBeNull();
    expect(log['cpu-throttle-percentage']).toBe(0);
    expect(log['dirty-limit-throttle-time-per-round']).toBe(0);
    expect(log['dirty-limit-ring-full-time']).toBe(0);
    const ring = run({ memory: '256MiB', rate: 20000, ring: 1024 }).migration!;
    expect(ring.dirty_tracking).toBe('ring');
    expect(ring.ring_full_exits).toBeGreaterThan(0);
    expect(ring.dirty_ring).toMatchObject({ size: 1024, ring_full_exits: ring.ring_full_exits });
    expect(ring.dirty_ring!.reaps).toBeGreaterThan(0);
    expect(ring.dirty_ring!.reaped_pages).toBeGreaterThan(ring.dirty_ring!.reaps);
    expect(ring.dirty_log).toBeNull();
  });
});

describe('scenario checks', () => {
  const bad = (vm: string, profile = '9.2', extra = ''): string => {
    try {
      parseScenario(`name: bad\nduration: 10s\nqemu: { version: ${profile} }\nvm: { ${vm} }\n${extra}`, 'bad.yaml');
    } catch (e) {
      if (e instanceof ScenarioError) return e.message.split('\n')[0]!;
      throw e;
    }
    throw new Error('no error');
  };

  it('takes a power-of-two ring of 1024 to 65536 entries, from QEMU 6.1 on', () => {
    expect(bad('dirty_ring_size: 3000')).toMatch(/^bad\.yaml:\d+:\d+: vm\.dirty_ring_size: 3000 is not a power of two from 1024 to 65536/);
    expect(bad('dirty_ring_size: 512')).toMatch(/vm\.dirty_ring_size: 512 is not a power of two/);
    expect(bad('dirty_ring_size: 131072')).toMatch(/vm\.dirty_ring_size/);
    expect(bad('dirty_ring_size: 4096', '5.2')).toMatch(/vm\.dirty_ring_size: the KVM dirty ring came with QEMU 6\.1; this scenario follows QEMU 5\.2/);
    expect(() => parseScenario('name: ok\nduration: 10s\nqemu: { version: 7.2 }\nvm: { dirty_ring_size: 4096 }\n', 'ok.yaml')).not.toThrow();
  });

  it('refuses manual protection with the ring, and before QEMU 4.1', () => {
    expect(bad('dirty_ring_size: 4096, manual_dirty_log_protect: true')).toMatch(/vm\.manual_dirty_log_protect: QEMU does not use manual protection with the dirty ring/);
    expect(bad('manual_dirty_log_protect: true', '2.12')).toMatch(/KVM_CLEAR_DIRTY_LOG came with QEMU 4\.1/);
    expect(bad('memory: 1GiB', '9.2', 'migration: { clear_bitmap_shift: 5 }')).toMatch(/migration\.clear_bitmap_shift/);
  });
});
