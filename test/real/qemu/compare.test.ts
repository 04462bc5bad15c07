// What `latsim qemu compare` simulates: the scenario file on QEMU's measured
// link, with the destination preallocated as QEMU's destinations are
// (-mem-prealloc), so the simulated destination is the compared one.
// Needs no QEMU.
import { describe, expect, it } from 'vitest';
import { simulatedScenario } from '../../../real/qemu/compare.ts';
import { scenario } from '../../sim/helpers.ts';

const file = (prealloc: boolean) => scenario(`
name: compared
duration: 5s
qemu: { version: 7.2 }
vm: { memory: 64MiB }
migration: { start: 1s, destination_prealloc: ${prealloc} }
`);

describe('simulatedScenario', () => {
  it('simulates on the measured link, with the destination QEMU\'s preallocation', () => {
    const s = simulatedScenario(file(false), 1.5e9, true);
    expect(s.migration!.link.bandwidth).toBe(1.5e9);
    expect(s.migration!.destination_prealloc).toBe(true);
    expect(simulatedScenario(file(true), 1.5e9, false).migration!.destination_prealloc).toBe(false);
  });

  it('keeps the file\'s destination_prealloc when the runs\' is not given', () => {
    expect(simulatedScenario(file(true), 1e9).migration!.destination_prealloc).toBe(true);
    expect(simulatedScenario(file(false), 1e9).migration!.destination_prealloc).toBe(false);
  });
});
