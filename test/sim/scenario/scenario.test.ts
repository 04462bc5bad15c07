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
});
