// The simulation against the analytic pre-copy model (docs/precopy-model.md):
// uniform random dirtying at D pages/s over N pages, a rate limit of R pages/s,
// threshold R x downtime_limit. The simulated page count follows the
// saturating model within a few percent and never exceeds the geometric one;
// rounds agree within two; the simulated downtime is below the model's,
// because QEMU lifts the rate limit during the downtime.
import { describe, expect, it } from 'vitest';
import { simulate } from '../../../sim/run.ts';
import { geometricPrecopy, saturatingPrecopy } from '../../../sim/migration/analytic.ts';
import { scenario } from '../helpers.ts';

const cases = [
  { mem: 256, rate: 4000, bw: '64MiB/s', dl: '300ms' },
  { mem: 512, rate: 10000, bw: '128MiB/s', dl: '300ms' },
  { mem: 256, rate: 2000, bw: '32MiB/s', dl: '30ms' },
  { mem: 512, rate: 40000, bw: '256MiB/s', dl: '100ms' },
  { mem: 256, rate: 40000, bw: '64MiB/s', dl: '300ms' },
];

describe('pre-copy against the analytic model', () => {
  for (const c of cases) {
    it(`${c.mem} MiB, ${c.rate} pages/s, ${c.bw}, ${c.dl}`, () => {
      const s = scenario(`
name: model
seed: 1
duration: 120s
vm: { memory: ${c.mem}MiB, vcpus: 1 }
guest: { workloads: [ { vcpus: all, dirty: { rate: ${c.rate}/s, pattern: uniform } } ] }
migration: { start: 1s, max_bandwidth: ${c.bw}, downtime_limit: ${c.dl}, link: { bandwidth: 10Gbit/s } }
`);
      const m = simulate(s).result.migration!;
      const inp = {
        pages: c.mem * 256,
        dirtyRate: c.rate,
        pageRate: s.migration!.max_bandwidth / (4096 + s.migration!.page_header_bytes),
        downtimeLimitNs: s.migration!.downtime_limit_ns,
        maxPasses: 60,
      };
      const sat = saturatingPrecopy(inp);
      const geo = geometricPrecopy(inp);
      expect(m.status === 'completed', 'converges as the model says').toBe(sat.converges);
      if (!sat.converges) return;
      const sent = m.ram.normal + m.ram.duplicate;
      expect(Math.abs(sent - sat.totalPages) / sat.totalPages).toBeLessThan(0.05);
      expect(sent).toBeLessThanOrEqual(geo.totalPages);
      // Syncs: one per iterative pass, one when it converged, one in the downtime.
      const rounds = m.ram['dirty-sync-count'] - 2;
      expect(Math.abs(rounds - sat.rounds)).toBeLessThanOrEqual(2);
      expect(m.downtime * 1e6).toBeLessThanOrEqual(Math.max(sat.downtimeNs, 5e6) + 5e6);
      expect(Math.abs(m['total-time'] * 1e6 - sat.totalTimeNs) / sat.totalTimeNs).toBeLessThan(0.15);
    });
  }

  it('the geometric model is the saturating one for a sparse dirty set', () => {
    const inp = { pages: 1 << 30, dirtyRate: 1000, pageRate: 100_000, downtimeLimitNs: 300e6 };
    const g = geometricPrecopy(inp);
    const s = saturatingPrecopy(inp);
    expect(s.rounds).toBe(g.rounds);
    expect(s.totalPages / g.totalPages).toBeCloseTo(1, 3);
    expect(g.volumes[1]! / g.volumes[0]!).toBeCloseTo(0.01, 6);
  });

  it('predicts no convergence when dirtying outruns the link', () => {
    const s = saturatingPrecopy({ pages: 262144, dirtyRate: 60000, pageRate: 32000, downtimeLimitNs: 300e6, maxPasses: 50 });
    expect(s.converges).toBe(false);
  });
});
