// `latsim bisect-param`: in a small migration whose downtime is mostly the
// final flush, it finds the flush latency at which max_downtime 300 ms starts
// to fail, within the precision (checked by running both sides of the answer
// again); the falling direction (largest failing value) on the rate limit;
// exit 1 when both ends agree and exit 2 for a bad range or parameter.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bisectParam } from '../../../cli/commands/bisect-param.ts';
import { readScenarioText, parseScenario } from '../../../cli/scenario-file.ts';
import { simulate } from '../../../sim/run.ts';

const dir = mkdtempSync(join(tmpdir(), 'latsim-bisect-param-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function latsim(...args: string[]) {
  const r = spawnSync(process.execPath, ['bin/latsim.mjs', ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const file = join(dir, 'flush.yaml');
writeFileSync(file, `
name: flush-threshold
seed: 5
duration: 20s
vm: { memory: 128MiB, vcpus: 1 }
guest:
  workloads:
    - { vcpus: all, dirty: { rate: 2000/s, pattern: uniform } }
devices:
  blk:
    - { name: disk0, flush: 1ms, io: { rate: 50/s, write_fraction: 1, flush_every: 0 } }
migration:
  start: 1s
  policy: legacy
  downtime_limit: 300ms
expect:
  max_downtime: 300ms
  max_migration_time: 5s
`);

/** Downtime budget of one run with the flush latency set to ns. */
function downtimeHolds(flushNs: number): boolean {
  const s = parseScenario(readScenarioText(file), file, [{ path: ['devices', 'blk', 0, 'flush'], value: `${flushNs}ns`, source: 'test' }]);
  return simulate(s).result.expect.find((e) => e.name === 'max_downtime')!.pass;
}

describe('latsim bisect-param', () => {
  it('finds the flush latency at which max_downtime 300ms starts to fail, within the precision', async () => {
    const b = await bisectParam(file, { param: 'devices.blk[0].flush', range: '1ms..60s', precision: '10ms', budget: 'max_downtime' });
    expect(b.direction).toBe('rising');
    expect(b.monotonic).toBe(true);
    const t = b.threshold!.value;
    // Downtime is the flush plus a few tens of ms of final RAM and resume.
    expect(t).toBeGreaterThan(150e6);
    expect(t).toBeLessThan(300e6);
    expect(b.failing!.value).toBe(t);
    expect(t - b.passing!.value).toBeLessThanOrEqual(10e6);
    expect(downtimeHolds(t)).toBe(false);
    expect(downtimeHolds(b.passing!.value)).toBe(true);
    expect(b.failing!.metrics.downtime_ms).toBeGreaterThan(300);
    expect(b.passing!.metrics.downtime_ms).toBeLessThanOrEqual(300);
    expect(b.verdict).toMatch(/^max_downtime fails from devices\.blk\[0\]\.flush = \d+ ms upward \(smallest failing value; holds at \d+ ms\), to within 10 ms$/);
    expect(b.steps.length).toBeLessThan(25);
  });

  it('finds the largest failing value when the low end fails', async () => {
    const b = await bisectParam(file, { param: 'migration.max_bandwidth', range: '2MiB/s..128MiB/s', precision: '1MiB/s', budget: 'max_migration_time' });
    expect(b.direction).toBe('falling');
    expect(b.threshold!.value).toBeLessThan(b.passing!.value);
    expect(b.passing!.value - b.threshold!.value).toBeLessThanOrEqual(2 ** 20);
    expect(b.verdict).toContain('largest failing value');
    expect(b.failing!.failed).toContain('max_migration_time');
  });

  it('prints the threshold and exits 0; exits 1 without a threshold and 2 for bad input', async () => {
    const r = latsim('bisect-param', file, '--param', 'devices.blk[0].flush', '--range', '1ms..2s', '--precision', '50ms', '--json');
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.threshold.human).toMatch(/ ms$/);
    expect(j.passing.metrics.budgets.every((x: { pass: boolean }) => x.pass)).toBe(true);

    const none = latsim('bisect-param', file, '--param', 'devices.blk[0].flush', '--range', '1ms..10ms');
    expect(none.code).toBe(1);
    expect(none.stdout).toContain('no threshold in 1 ms..10 ms');

    const flush = { param: 'devices.blk[0].flush', range: '1ms..1s' };
    await expect(bisectParam(file, { ...flush, range: '10ms..1ms' })).rejects.toThrow('HI must be above LO');
    await expect(bisectParam(file, { ...flush, range: '1ms..5GiB' })).rejects.toThrow('is not a duration like');
    await expect(bisectParam(file, { ...flush, budget: 'max_ping_lost' })).rejects.toThrow('has no such budget; it has max_downtime, max_migration_time');
    await expect(bisectParam(file, { ...flush, param: 'devices..x' })).rejects.toThrow('expected a field path');
    const bad = latsim('bisect-param', file, '--param', 'devices.blk[0].flush', '--range', 'soon..later');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--range: "soon" is not a duration');
  });
});
