// The scenario's `fidelity` section (sim/scenario/fidelity.ts): the goals as
// defaults, each tolerance as a percentage, an absolute value in the metric's
// unit, or both; its mistakes placed in the file like any other; and the
// check that a QEMU figure is within one. Every scenarios/fidelity file has
// the section. (The suite itself is fidelity.suite.ts, npm run test:qemu.)
import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

import { loadScenarioFile, parseScenario } from '../../cli/scenario-file.ts';
import { DEFAULT_FIDELITY, withinTolerance } from '../../sim/scenario/fidelity.ts';

const BASE = `
name: f
duration: 5s
vm: { memory: 64MiB }
migration: { start: 1s }
`;

describe('the fidelity section', () => {
  it('defaults to the goals when absent', () => {
    const s = parseScenario(BASE, 'f.yaml');
    expect(s.fidelity).toEqual(DEFAULT_FIDELITY);
    expect(s.fidelity.tolerances.downtime).toEqual({ relative: 0.25, absolute: 5_000_000 });
    expect(s.fidelity.tolerances.dirty_sync_count).toEqual({ relative: null, absolute: 1 });
    expect(s.fidelity.tolerances.setup_time).toBeNull();
  });

  it('reads percentages, counts, sizes, durations and {relative, absolute}', () => {
    const s = parseScenario(`${BASE}fidelity:
  outcome: ignore
  dirty_sync_count: 2
  ram_transferred: { relative: 5%, absolute: 1MiB }
  total_time: 200ms
  downtime: { relative: 50% }
  setup_time: 20%
  duplicate: 100
`, 'f.yaml');
    const t = s.fidelity.tolerances;
    expect(s.fidelity.outcome).toBe('ignore');
    expect(t.dirty_sync_count).toEqual({ relative: null, absolute: 2 });
    expect(t.ram_transferred).toEqual({ relative: 0.05, absolute: 2 ** 20 });
    expect(t.total_time).toEqual({ relative: null, absolute: 200_000_000 });
    expect(t.downtime).toEqual({ relative: 0.5, absolute: null });
    expect(t.setup_time).toEqual({ relative: 0.2, absolute: null });
    expect(t.duplicate).toEqual({ relative: null, absolute: 100 });
    expect(t.normal).toBeNull();
  });

  it('places its mistakes in the file', () => {
    expect(() => parseScenario(`${BASE}fidelity:\n  downtime_max: 5ms\n`, 'f.yaml')).toThrow(/f\.yaml:7:3: fidelity\.downtime_max: unknown key/);
    expect(() => parseScenario(`${BASE}fidelity:\n  total_time: fast\n`, 'f.yaml')).toThrow(/fidelity\.total_time: expected a percentage like "10%", a duration like "5ms", or \{relative, absolute\}/);
    expect(() => parseScenario(`${BASE}fidelity:\n  downtime: {}\n`, 'f.yaml')).toThrow(/fidelity\.downtime: give relative, absolute or both/);
    expect(() => parseScenario(`${BASE}fidelity:\n  outcome: close\n`, 'f.yaml')).toThrow(/fidelity\.outcome/);
  });

  it('is within a tolerance when either bound holds', () => {
    const t = { relative: 0.25, absolute: 5 };
    expect(withinTolerance(t, 10, 14)).toBe(true); // 4 <= 5
    expect(withinTolerance(t, 100, 124)).toBe(true); // 24%
    expect(withinTolerance(t, 100, 130)).toBe(false);
    expect(withinTolerance({ relative: 0.1, absolute: null }, 0, 0)).toBe(true);
    expect(withinTolerance({ relative: 0.1, absolute: null }, 0, 1)).toBe(false);
    expect(withinTolerance(null, 1, 2)).toBeNull();
  });

  it('is in every scenarios/fidelity file, which the suite needs ten of', () => {
    const files = readdirSync('scenarios/fidelity').filter((f) => f.endsWith('.yaml'));
    expect(files.length).toBeGreaterThanOrEqual(10);
    for (const f of files) {
      const s = loadScenarioFile(`scenarios/fidelity/${f}`);
      expect(s.migration, f).not.toBeNull();
      expect(s.fidelity, f).toEqual(DEFAULT_FIDELITY);
    }
  });
});
