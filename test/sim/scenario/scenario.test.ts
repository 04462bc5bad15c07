// The scenario's meaning without a file: checkScenario on parsed documents
// fills QEMU's defaults section by section and reports an impossible value
// at its path.
import { describe, expect, it } from 'vitest';
import { checkScenario } from '../../../sim/scenario/scenario.ts';
import { DEFAULT_DOWNTIME_LIMIT_NS, DEFAULT_MAX_BANDWIDTH } from '../../../sim/scenario/migration.ts';
import type { Path } from '../../../sim/scenario/fields.ts';

class Reported extends Error {
  constructor(readonly path: Path, readonly detail: string) {
    super(`${path.join('.')}: ${detail}`);
  }
}
const fail = (path: Path, detail: string): never => {
  throw new Reported(path, detail);
};
const check = (doc: Record<string, unknown>) => checkScenario({ name: 't', duration: '10s', ...doc }, 't.yaml', fail);
const reported = (doc: Record<string, unknown>): Reported => {
  try {
    check(doc);
  } catch (e) {
    if (e instanceof Reported) return e;
    throw e;
  }
  throw new Error('no mistake reported');
};

describe('checkScenario', () => {
  it('fills QEMU 7.2 defaults for an empty migration section', () => {
    const s = check({ migration: {} });
    expect(s.migration).toMatchObject({
      max_bandwidth: DEFAULT_MAX_BANDWIDTH,
      downtime_limit_ns: DEFAULT_DOWNTIME_LIMIT_NS,
      auto_converge: { initial: 20, increment: 10, max: 99, trigger: 50 },
      policy: ['legacy'],
      mode: 'thread',
    });
    expect(DEFAULT_MAX_BANDWIDTH).toBe(128 * 2 ** 20);
    expect(s.vm).toMatchObject({ memory_bytes: 2 ** 30, page_size: 4096, vcpus: 1, populated: 1 });
  });

  it('reports each section\'s contradictions at their path', () => {
    expect(reported({ vm: { page_size: '3KiB' } }).path).toEqual(['vm', 'page_size']);
    expect(reported({ guest: { workloads: [{ vcpus: [3] }] } }).detail).toBe('vCPU 3 does not exist (the VM has 1)');
    expect(reported({ devices: { net: [{ name: 'd' }], blk: [{ name: 'd' }] } }).path).toEqual(['devices', 'blk', 0, 'name']);
    expect(reported({ devices: { net: [{ name: 'net0' }] }, faults: [{ name: 'f', device: 'disk9', kind: 'stall', at: '1s', for: '1s' }] }).detail)
      .toBe('no device named "disk9"; devices: net0');
    expect(reported({ migration: { auto_converge: { initial: 50, max: 40 } } }).path).toEqual(['migration', 'auto_converge', 'initial']);
    expect(reported({ expect: { max_downtime: '1s' } }).detail).toBe('max_downtime needs a migration section');
  });

  it('reports contradictions at the item that contradicts', () => {
    const blk = { devices: { blk: [{ name: 'disk0' }] } };
    const stall = (name: string) => ({ name, device: 'disk0', kind: 'stall', at: '1s', for: '1s' });
    expect(reported({ migration: { policy: [] } }).path).toEqual(['migration', 'policy']);
    expect(reported({ migration: { policy: ['flush-timeout', 'min-interval', 'flush-timeout'] } }).path).toEqual(['migration', 'policy', 2]);
    expect(reported({ ...blk, faults: [stall('a'), stall('b'), stall('a')] }).path).toEqual(['faults', 2, 'name']);
    expect(reported({ main_loop: { handlers: [{ name: 'h', type: 'bh', cost: '1us', interval: '0s' }] } }).path).toEqual(['main_loop', 'handlers', 0, 'interval']);
    expect(reported({ main_loop: { handlers: [{ name: 'h', type: 'bh', cost: '1us', interval: { dist: 'uniform', min: '0s', max: '0s' } }] } }).detail)
      .toMatch(/^an interval of 0 activates the handler forever/);
    expect(reported({ ...blk, devices: { blk: [{ name: 'disk0', flush: { dist: 'exponential', mean: '0s' } }] } }).path).toEqual(['devices', 'blk', 0, 'flush', 'mean']);
    expect(reported({ migration: {}, expect: { max_migration_time: '10s', min_migration_time: '11s' } }).path).toEqual(['expect', 'min_migration_time']);
    expect(reported({ expect: { max_userspace_progress: 3, min_userspace_progress: 4 } }).detail).toBe('min_userspace_progress 4 is above max_userspace_progress 3: no run can hold both');
  });

  it('refuses values beyond their plausible range, naming value and limit', () => {
    expect(reported({ vm: { memory: '16TiB' } }).detail).toBe('16TiB is above the limit of 4TiB (plausible: 1B to 4TiB)');
    expect(reported({ guest: { workloads: [{ vcpus: 'all', dirty: { rate: '1e30/s', pattern: 'uniform' } }] } }).path).toEqual(['guest', 'workloads', 0, 'dirty', 'rate']);
    expect(reported({ migration: { device_state: '1024TiB' } }).detail).toBe('1024TiB is above the limit of 64GiB (plausible: 0B to 64GiB)');
    expect(reported({ migration: { link: { bandwidth: '1e300Gbit/s' } } }).detail).toMatch(/^1e300Gbit\/s is above the limit of 1000Gbit\/s/);
  });
});
