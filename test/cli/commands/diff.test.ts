// `latsim diff` end to end: two runs of a small migration, one with 100 ms
// flushes and one with 2 s flushes, each written with --report (result.json
// and trace.json). The diff of a run with itself is empty; the diff of the two
// names the first divergent event, the flush handler and the downtime phase
// that grew, and says B is worse. A report directory whose manifest says it
// is not complete is compared with a warning. Bad input exits 2.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'latsim-diff-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function latsim(...args: string[]) {
  const r = spawnSync(process.execPath, ['bin/latsim.mjs', ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const scenario = (flush: string) => `
name: diff-flush
seed: 2
duration: 20s
vm: { memory: 128MiB, vcpus: 1 }
guest:
  workloads:
    - { vcpus: all, dirty: { rate: 2000/s, pattern: uniform }, exits: { rate: 100/s, cost: 10us } }
devices:
  blk:
    - { name: disk0, flush: ${flush}, io: { rate: 50/s, write_fraction: 0.7, flush_every: 8 } }
migration:
  start: 1s
  policy: legacy
  downtime_limit: 300ms
expect:
  migration_status: completed
  max_downtime: 300ms
`;

const A = join(dir, 'a');
const B = join(dir, 'b');

beforeAll(() => {
  writeFileSync(join(dir, 'a.yaml'), scenario('100ms'));
  writeFileSync(join(dir, 'b.yaml'), scenario('2s'));
  expect(latsim('run', join(dir, 'a.yaml'), '--report', A).code).toBe(0);
  expect(latsim('run', join(dir, 'b.yaml'), '--report', B).code).toBe(1);
});

describe('latsim diff', () => {
  it('finds nothing between a run and itself: exit 0, identical, no deltas', () => {
    for (const [x, y] of [[join(A, 'result.json'), join(A, 'result.json')], [join(A, 'trace.json'), join(A, 'trace.json')], [A, A]]) {
      const r = latsim('diff', x!, y!, '--json');
      expect(r.code, r.stderr).toBe(0);
      const d = JSON.parse(r.stdout);
      expect(d.identical).toBe(true);
      expect(d.first_divergence).toBeNull();
      expect(d.handlers).toEqual([]);
      expect(d.verdict).toBe('identical');
      for (const k of ['bql', 'main_loop', 'migration', 'guest'] as const) {
        if (d[k] !== null) expect(d[k], k).toEqual({});
      }
    }
    const text = latsim('diff', join(A, 'result.json'), join(A, 'result.json'));
    expect(text.stdout.trim().split('\n').pop()).toBe('identical');
  });

  it('names the first divergence, the flush deltas and the verdict for two different results', () => {
    const r = latsim('diff', join(A, 'result.json'), join(B, 'result.json'), '--json');
    expect(r.code).toBe(1);
    const d = JSON.parse(r.stdout);
    expect(d.identical).toBe(false);
    expect(d.first_divergence.source).toBe('result');
    expect(d.first_divergence.trace_sha256.a).not.toBe(d.first_divergence.trace_sha256.b);
    expect(d.first_divergence.a.text).not.toBe(d.first_divergence.b.text);
    expect(d.first_divergence.a.text).toContain('migration_completion');
    // The flush took 1.9 s longer, and so did the downtime, in its flush phase.
    expect(d.migration.downtime_phases_ns.flush.delta).toBe(1_900_000_000);
    expect(d.migration.downtime_ns.delta).toBeGreaterThanOrEqual(1_900_000_000);
    const flush = d.handlers.find((h: { name: string }) => h.name === 'bdrv_flush_all');
    expect(flush).toMatchObject({ thread: 'migration', change: 'changed', delta: { max_ns: 1_900_000_000 } });
    expect(d.main_loop.blocked_max_ns.delta).toBeGreaterThan(1e9);
    expect(d.bql.hold_max_ns.delta).toBeGreaterThan(1e9);
    expect(d.guest.vcpu_stall_max_ns.delta).toBeGreaterThan(1e9);
    expect(d.budgets).toEqual([expect.objectContaining({ name: 'max_downtime', a: expect.objectContaining({ pass: true }), b: expect.objectContaining({ pass: false }) })]);
    expect(d.verdict).toMatch(/^B is worse: budget max_downtime fails, downtime \+\d\.\d\d s \(flush\), main loop blocked \+\d\.\d\d s$/);

    const text = latsim('diff', join(A, 'result.json'), join(B, 'result.json'));
    expect(text.stdout).toContain('first divergence');
    expect(text.stdout).toMatch(/migration bdrv_flush_all \[block\]: \+0, .* \(max 100 ms -> 2\.00 s\)/);
    expect(text.stdout).toMatch(/downtime phases: .*flush 100 ms -> 2\.00 s \(\+1\.90 s\)/);
    expect(text.stdout).toMatch(/verdict: B is worse/);
  });

  it('compares two traces event by event, and report directories with both', () => {
    const r = latsim('diff', join(A, 'trace.json'), join(B, 'trace.json'), '--json');
    expect(r.code).toBe(1);
    const d = JSON.parse(r.stdout);
    const fd = d.first_divergence;
    expect(fd.source).toBe('trace');
    expect(fd.index).toBeGreaterThan(0);
    expect(fd.before.length).toBeGreaterThan(0);
    expect(fd.before.length).toBeLessThanOrEqual(5);
    // The divergent event differs in its time, its text or both.
    expect([fd.a.t_ns, fd.a.text]).not.toEqual([fd.b.t_ns, fd.b.text]);
    expect(fd.before[fd.before.length - 1].index).toBe(fd.index - 1);
    expect(d.handlers.find((h: { name: string }) => h.name === 'bdrv_flush_all').delta.max_ns).toBe(1_900_000_000);

    const both = JSON.parse(latsim('diff', A, B, '--json').stdout);
    expect(both.first_divergence.source).toBe('trace');
    expect(both.first_divergence.index).toBe(fd.index);
    expect(both.migration.downtime_phases_ns.flush.delta).toBe(1_900_000_000);
  });

  it('warns about a report directory whose manifest says it is not complete', () => {
    const cut = join(dir, 'cut');
    cpSync(A, cut, { recursive: true });
    const manifest = JSON.parse(readFileSync(join(cut, 'manifest.json'), 'utf8'));
    expect(manifest.complete).toBe(true);
    writeFileSync(join(cut, 'manifest.json'), JSON.stringify({ ...manifest, complete: false, reason: 'trace.json could not be written' }));
    const r = latsim('diff', A, cut);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe(`latsim: warning: ${cut}: the report directory is not complete (trace.json could not be written)\n`);
    expect(latsim('diff', A, A).stderr).toBe('');
  });

  it('exits 2 for input that is not a run, and for a result against a trace', () => {
    const junk = join(dir, 'junk.json');
    writeFileSync(junk, '{"hello": 1}');
    const r1 = latsim('diff', junk, join(A, 'result.json'));
    expect(r1.code).toBe(2);
    expect(r1.stderr).toMatch(/neither a latsim result .* nor a trace/);
    const r2 = latsim('diff', join(A, 'result.json'), join(B, 'trace.json'));
    expect(r2.code).toBe(2);
    expect(r2.stderr).toContain('cannot compare');
    expect(latsim('diff', join(dir, 'missing.json'), A).code).toBe(2);
  });
});
