// Dirty-limit (QEMU 8.1's migration capability): triggered as auto-converge
// is, it holds each vCPU's dirty rate near vcpu-dirty-limit by making a vCPU
// whose dirty ring fills sleep after the ring-full exit; a vCPU that dirties
// little is left alone, where auto-converge throttles every vCPU. Also its
// query-migrate fields and the scenario's checks.
import { describe, expect, it } from 'vitest';
import { simulate } from '../../../sim/run.ts';
import { DIRTYLIMIT_TOLERANCE_RANGE } from '../../../sim/migration/dirty-limit.ts';
import { parseScenario, ScenarioError } from '../../../cli/scenario-file.ts';
import { scenario } from '../helpers.ts';

// vcpu0 dirties 234 MB/s over 4 GiB, far more than the 128 MiB/s the migration moves; vcpu1 only runs.
const guest = (policy: string, extra = '') => scenario(`
name: dirty-limit
seed: 5
duration: 120s
vm: { memory: 4GiB, vcpus: 2, populated: 50%, dirty_ring_size: 4096 }
guest:
  workloads:
    - vcpus: [0]
      dirty: { rate: 60000/s, pattern: uniform }
migration:
  start: 1s
  policy: ${policy}
  ${extra}
  max_bandwidth: 128MiB/s
  link: { bandwidth: 10Gbit/s }
`);

describe('dirty-limit', () => {
  const { result, world } = simulate(guest('dirty-limit', 'dirty_limit: { vcpu_dirty_limit: 20 }'));
  const m = result.migration!;
  const dl = m.dirty_limit!;

  it('converges a migration the guest outran, throttling only the vCPU that dirties', () => {
    expect(result.error).toBeNull();
    expect(m.status).toBe('completed');
    expect(m.verified).toBe(true);
    expect(dl.started_at_ms).toBeGreaterThan(1000);
    const [v0, v1] = dl.vcpus;
    expect(v0!.sleeps).toBeGreaterThan(0);
    expect(v0!.throttle_us_per_full).toBeGreaterThan(0);
    expect(v1).toMatchObject({ sleeps: 0, ring_full_exits: 0, throttle_us_per_full: 0 });
    expect(result.guest.vcpus[1]!.stall_total_ns).toBeLessThan(100_000_000);
    // auto-converge is not in play.
    expect(m['cpu-throttle-percentage']).toBe(0);
    expect(m.throttle_steps).toEqual([]);
  });

  it('holds the dirtying vCPU within the tolerance of its quota', () => {
    // The rate the last period measured, in MB/s: from 234 down to the quota's neighbourhood.
    expect(dl.vcpus[0]!.current_rate).toBeLessThanOrEqual(dl.vcpu_dirty_limit + DIRTYLIMIT_TOLERANCE_RANGE);
    expect(dl.vcpus[0]!.current_rate).toBeGreaterThan(0);
    expect(dl.periods).toBeGreaterThan(5);
    // The guest's own writes: what it wrote while limited is a fraction of its unthrottled rate.
    const limitedS = (m.transitions.at(-1)!.t_ns - dl.started_at_ms * 1e6) / 1e9;
    const sleptS = dl.vcpus[0]!.sleep_ns / 1e9;
    expect(sleptS / limitedS).toBeGreaterThan(0.6);
  });

  it('shows QEMU 8.1\'s query-migrate fields while it is in service, and keeps kvm-reaper asleep', () => {
    const before = m.snapshots.filter((s) => s.t_ns < dl.started_at_ms * 1e6);
    const during = m.snapshots.filter((s) => s['dirty-limit-throttle-time-per-round'] !== undefined);
    expect(before.some((s) => s['dirty-limit-throttle-time-per-round'] !== undefined)).toBe(false);
    expect(during.length).toBeGreaterThan(10);
    expect(Math.max(...during.map((s) => s['dirty-limit-throttle-time-per-round']!))).toBe(m['dirty-limit-throttle-time-per-round']);
    // QEMU: ring MiB x 1e6 / the highest rate seen (16 MiB at 234 MB/s: 68 ms).
    expect(m['dirty-limit-ring-full-time']).toBeGreaterThan(60_000);
    expect(m['dirty-limit-ring-full-time']).toBeLessThan(80_000);
    expect(m['dirty-limit-throttle-time-per-round']).toBeLessThanOrEqual(m['dirty-limit-ring-full-time'] * 99);
    // kvm-reaper reaps every second, except while dirty-limit is in service.
    const reaper = world.guest.kvmDirtyRing!.reaperIteration;
    const endS = m.transitions.at(-1)!.t_ns / 1e9;
    expect(reaper).toBeLessThanOrEqual(Math.ceil(dl.started_at_ms / 1000) + Math.ceil(120 - endS) + 1);
    expect(reaper).toBeLessThan(120 - (endS - dl.started_at_ms / 1000) + 2);
  });

  it('leaves the vCPU that only runs alone, where auto-converge throttles it too', () => {
    const ac = simulate(guest('auto-converge')).result;
    expect(ac.migration!.status).toBe('completed');
    expect(ac.migration!['cpu-throttle-percentage']).toBeGreaterThan(50);
    expect(ac.guest.vcpus[1]!.stall_total_ns).toBeGreaterThan(100 * result.guest.vcpus[1]!.stall_total_ns);
    expect(ac.migration!.dirty_limit).toBeNull();
  });
});

describe('dirty-limit scenario checks', () => {
  const bad = (text: string): string => {
    try {
      parseScenario(`name: bad\nduration: 10s\n${text}`, 'bad.yaml');
    } catch (e) {
      if (e instanceof ScenarioError) return e.message.split('\n')[0]!;
      throw e;
    }
    throw new Error('no error');
  };

  it('needs the dirty ring, excludes auto-converge, and came with QEMU 8.1', () => {
    expect(bad('migration: { policy: dirty-limit }')).toMatch(/^bad\.yaml:\d+:\d+: migration\.policy: dirty-limit needs the KVM dirty ring: set vm\.dirty_ring_size/);
    expect(bad('vm: { dirty_ring_size: 4096 }\nmigration: { policy: [dirty-limit, auto-converge] }')).toMatch(/dirty-limit conflicts with auto-converge/);
    expect(bad('qemu: { version: 7.2 }\nvm: { dirty_ring_size: 4096 }\nmigration: { policy: dirty-limit }')).toMatch(/the dirty-limit capability came with QEMU 8\.1; this scenario follows QEMU 7\.2/);
    expect(bad('vm: { dirty_ring_size: 4096 }\nmigration: { policy: dirty-limit, dirty_limit: { period: 2s } }')).toMatch(/migration\.dirty_limit\.period: 2s is above the limit of 1000ms/);
    expect(bad('vm: { dirty_ring_size: 4096 }\nmigration: { policy: dirty-limit, dirty_limit: { vcpu_dirty_limit: 0 } }')).toMatch(/migration\.dirty_limit\.vcpu_dirty_limit/);
  });

  it('defaults to QEMU 8.1\'s 1 MB/s every 1000 ms', () => {
    const s = parseScenario('name: ok\nduration: 10s\nvm: { dirty_ring_size: 4096 }\nmigration: { policy: dirty-limit }\n', 'ok.yaml');
    expect(s.migration!.dirty_limit).toEqual({ vcpu_dirty_limit: 1, period_ns: 1_000_000_000 });
    expect(s.vm.dirty_ring_size).toBe(4096);
  });
});
