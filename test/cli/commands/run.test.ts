// `latsim run` end to end in separate processes: determinism of the trace
// fingerprint across processes, seeds that change it, exit codes for a
// liveness bound (3), a planted invariant violation (4) and bad input (2).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'latsim-run-'));

function latsim(...args: string[]) {
  const r = spawnSync(process.execPath, ['bin/latsim.mjs', ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function file(name: string, text: string): string {
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
}

const randomWork = `
name: random-work
seed: 11
duration: 5s
vm: { memory: 64MiB, vcpus: 2 }
main_loop:
  handlers:
    - { name: chardev.read, type: fd, rate: 200/s, cost: { dist: exponential, mean: 2ms } }
    - { name: monitor.bh, type: bh, rate: 50/s, cost: { dist: uniform, min: 1ms, max: 150ms } }
    - { name: rtc.timer, type: timer, interval: 100ms, clock: virtual, cost: 50us }
guest:
  workloads:
    - { vcpus: all, exits: { rate: 300/s, cost: 20us } }
expect:
  max_bql_wait: 1s
`;

describe('latsim run', () => {
  it('gives the same trace_sha256 in two separate processes, and another one for another seed', () => {
    const f = file('random.yaml', randomWork);
    const a = JSON.parse(latsim('run', f, '--json').stdout);
    const b = JSON.parse(latsim('run', f, '--json').stdout);
    const c = JSON.parse(latsim('run', f, '--json', '--seed', '12').stdout);
    expect(a.trace_sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(b.trace_sha256).toBe(a.trace_sha256);
    expect(c.trace_sha256).not.toBe(a.trace_sha256);
    expect(c.seed).toBe(12);
    expect(a.slow.map((s: { name: string }) => s.name)).toContain('monitor.bh');
    for (const key of ['scenario', 'seed', 'trace_sha256', 'events', 'sim_time_ns', 'wall_ms', 'handlers', 'slow', 'main_loop', 'bql', 'expect']) {
      expect(a).toHaveProperty(key);
    }
    expect(a.main_loop).toHaveProperty('blocked_max_ns');
    expect(a.bql).toHaveProperty('wait_max_ns');
    expect(a.bql).toHaveProperty('hold_max_ns');
    expect(a.handlers[0]).toEqual(expect.objectContaining({ name: expect.any(String), thread: 'main-loop', count: expect.any(Number), p50_ns: expect.any(Number), p99_ns: expect.any(Number), max_ns: expect.any(Number) }));
    expect(a.expect[0]).toEqual({ name: 'max_bql_wait', limit: 1e9, value: expect.any(Number), unit: 'ns', pass: true });
  });

  it('exits 3 with the seed when a liveness bound is hit', () => {
    const f = file('bounded.yaml', `${randomWork}limits: { max_events: 500 }\n`);
    const r = latsim('run', f);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/liveness bound hit \(events\).*seed 11/);
    expect(r.stderr).toContain(`latsim run ${f} --seed 11`);
  });

  it('counts page writes toward the event bound: billions of writes in a few thousand events end as a liveness failure, not a run of minutes', () => {
    // 20 vCPUs writing 3 M random pages/s each over 1 GiB, 70 s: 4.2 G writes in about 18,000 events.
    const f = file('writer.yaml', [
      'name: writer', 'seed: 5', 'duration: 70s', 'vm: { memory: 1GiB, vcpus: 20 }',
      'guest:', '  workloads:', '    - { vcpus: all, dirty: { rate: 3000000/s, pattern: uniform } }',
      'limits: { max_events: 100000 }', '',
    ].join('\n'));
    const r = latsim('run', f);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/liveness bound hit \(events\): more than 100000 events \(\d+ fired, \d+ in bulk work: page writes\); seed 5/);
  });

  it('exits 1 when a budget fails', () => {
    const f = file('tight.yaml', randomWork.replace('max_bql_wait: 1s', 'max_bql_wait: 1us'));
    const r = latsim('run', f);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/FAIL max_bql_wait/);
  });

  it('exits 2 with one line naming file, line and field for a bad scenario', () => {
    const f = file('bad.yaml', randomWork.replace('duration: 5s', 'duration: 5 parsecs'));
    const r = latsim('run', f);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(`${f}:4:11: duration: expected a duration`);
  });

  it('exits 4 naming the first lost page when a planted bug drops dirty bits', () => {
    const f = file('buggy.yaml', `
name: planted-sync-bug
seed: 3
duration: 20s
vm: { memory: 256MiB, vcpus: 1 }
guest:
  workloads:
    - { vcpus: all, dirty: { rate: 5000/s, pattern: uniform } }
migration:
  start: 1s
  bug: sync-drops-new-bits
`);
    const r = latsim('run', f, '--json');
    expect(r.code).toBe(4);
    const j = JSON.parse(r.stdout);
    expect(j.outcome).toBe('invariant');
    expect(j.error).toMatch(/invariant violated \(lost-page\): page \d+ .* differs at switchover/);
    expect(j.error).toContain('seed 3');
  });
});
