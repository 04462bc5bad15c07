// `latsim qemu` end to end in separate processes. Without QEMU: exit 6 with
// one line, 125 under --bisect, 2 for bad options, and the bisect mapping.
// With QEMU and /dev/kvm (else skipped with the reason): probe --json, a
// repeated run with medians, ranges, budgets and a report directory, compare
// after measuring QEMU's stream (the simulated link is the measured one),
// exit 7 for a guest that cannot boot and exit 8 for a migration the
// destination refuses (a wrapper gives it less memory than the source).
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { qemuBisectExitCode } from '../../../cli/commands/qemu.ts';
import { DEFAULT_QEMU } from '../../../real/qemu/probe.ts';
import { qemuOrSkip } from '../../real/qemu/helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'latsim-qemu-cli-'));

function latsim(...args: string[]) {
  const r = spawnSync(process.execPath, ['bin/latsim.mjs', ...args], { encoding: 'utf8', timeout: 300_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function file(name: string, text: string, mode?: number): string {
  const f = join(dir, name);
  writeFileSync(f, text);
  if (mode !== undefined) chmodSync(f, mode);
  return f;
}

const SMALL = `
name: qemu-cli-small
seed: 3
duration: 15s
vm: { memory: 48MiB, vcpus: 1 }
guest:
  workloads:
    - vcpus: all
      dirty: { rate: 1000/s, pattern: uniform, start: 2MiB }
migration:
  start: 300ms
  max_bandwidth: 64MiB/s
  downtime_limit: 300ms
expect:
  migration_status: completed
  max_migration_time: 1ms
  max_bql_wait: 1s
`;

/** A QEMU that gives the destination half the source's memory: the migration fails. */
const HALF_MEMORY_DESTINATION = `#!/bin/bash
incoming=0
for a in "$@"; do [ "$a" = "-incoming" ] && incoming=1; done
args=(); prev=""
for a in "$@"; do
  if [ "$prev" = "-m" ] && [ "$incoming" = 1 ]; then a="$(( \${a%M} / 2 ))M"; fi
  args+=("$a"); prev="$a"
done
exec ${DEFAULT_QEMU} "\${args[@]}"
`;

/** A QEMU whose source boots no kernel QEMU can load: the guest never starts. */
const NO_KERNEL_SOURCE = `#!/bin/bash
incoming=0
for a in "$@"; do [ "$a" = "-incoming" ] && incoming=1; done
args=(); prev=""
for a in "$@"; do
  if [ "$prev" = "-kernel" ] && [ "$incoming" = 0 ]; then a="/dev/null"; fi
  args+=("$a"); prev="$a"
done
exec ${DEFAULT_QEMU} "\${args[@]}"
`;

describe('latsim qemu without QEMU', () => {
  it('exits 6 with one line when the binary does not run, 125 under --bisect, 2 for bad options', () => {
    const s = file('small.yaml', SMALL);
    for (const args of [['probe'], ['run', s], ['compare', s]]) {
      const r = latsim('qemu', ...args, '--qemu', join(dir, 'no-such-qemu'));
      expect(r.code, args.join(' ')).toBe(6);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/^latsim: qemu: QEMU backend unavailable: .*does not run/);
      expect(r.stdout).toBe('');
    }
    const probe = JSON.parse(latsim('qemu', 'probe', '--json', '--qemu', join(dir, 'no-such-qemu')).stdout);
    expect(probe.available).toBe(false);
    const b = latsim('qemu', 'run', s, '--qemu', join(dir, 'no-such-qemu'), '--bisect');
    expect(b.code).toBe(125);
    expect(b.stderr).toContain('skipping this commit (exit 125)');
    expect(latsim('qemu', 'run', s, '--repeat', '0').code).toBe(2);
    expect(latsim('qemu', 'compare', s, '--link', 'fast').code).toBe(2);
    expect(latsim('qemu', 'run', join(dir, 'missing.yaml')).code).toBe(2);
  });

  it('maps outcomes onto git bisect run: good, bad (budget, memory, migration failed), skip (unavailable, guest failed)', () => {
    expect([0, 1, 4, 8, 6, 7, 2, 5].map(qemuBisectExitCode)).toEqual([0, 1, 1, 1, 125, 125, 125, 125]);
  });
});

describe('latsim qemu on QEMU', () => {
  it('probe --json names the binary, version, accelerator and migration capabilities', (ctx) => {
    const p = qemuOrSkip(ctx);
    const r = latsim('qemu', 'probe', '--json');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({ available: true, binary: DEFAULT_QEMU, version: p.version, accelerator: 'kvm' });
    expect(j.capabilities.migration_capabilities).toContain('auto-converge');
    expect(j.capabilities.migration_parameters).toContain('downtime-limit');
    expect(j.capabilities.kvm).toEqual({ enabled: true, present: true });
  });

  it('run --repeat 2 reports medians with ranges, the budgets (exit 1: one fails) and a report directory', (ctx) => {
    qemuOrSkip(ctx);
    const s = file('small.yaml', SMALL);
    const out = join(dir, 'report');
    const r = latsim('qemu', 'run', s, '--repeat', '2', '--json', '--report', out);
    expect(r.code, r.stderr).toBe(1);
    const j = JSON.parse(r.stdout);
    expect(j.backend).toBe('qemu');
    expect(j.repeat).toBe(2);
    expect(j.qemu.version).toMatch(/^\d+\.\d+\.\d+$/);
    expect(j.runs).toHaveLength(2);
    expect(j.summary.status).toBe('completed');
    expect(j.summary.verified).toBe(2);
    const tt = j.summary.metrics['migration.total-time'];
    expect(tt.values).toHaveLength(2);
    expect(tt.min).toBeLessThanOrEqual(tt.median);
    expect(tt.median).toBeLessThanOrEqual(tt.max);
    expect(j.summary.metrics['guest.achieved_rate'].median).toBeGreaterThan(100);
    for (const run of j.runs) {
      expect(run.migration.ram['dirty-sync-count']).toBeGreaterThanOrEqual(2);
      expect(run.guest.achieved_rate).toBeGreaterThan(0);
    }
    const byName = Object.fromEntries(j.expect.map((b: { name: string }) => [b.name, b]));
    expect(byName['migration_status=completed'].pass).toBe(true);
    expect(byName['max_migration_time'].pass).toBe(false);
    expect(byName['max_bql_wait']).toMatchObject({ measured: false, pass: true });
    expect(j.pass).toBe(false);
    expect(JSON.parse(readFileSync(join(out, 'result.json'), 'utf8')).summary.runs).toBe(2);
    expect(readFileSync(join(out, 'report.txt'), 'utf8')).toContain('median [min..max]');
    expect(JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8'))).toMatchObject({ command: 'qemu run', complete: true });
  });

  it('compare measures QEMU\'s stream, simulates on it, and prints both sides with their gaps', (ctx) => {
    qemuOrSkip(ctx);
    const s = file('small.yaml', SMALL);
    const r = latsim('qemu', 'compare', s, '--json');
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.link.source).toBe('measured');
    expect(j.link.destination_prealloc).toBe(true);
    expect(j.link.qemu_stream.bandwidth).toBeGreaterThan(10e6);
    expect(j.link.simulated_bandwidth).toBe(j.link.qemu_stream.bandwidth);
    expect(j.link.scenario_bandwidth).toBe(10e9 / 8);
    expect(j.sim.migration.status).toBe('completed');
    expect(j.runs[0].migration.verified).toBe(true);
    const metrics = j.rows.map((x: { metric: string }) => x.metric);
    for (const m of ['status', 'dirty-sync-count', 'ram.transferred', 'ram.duplicate (zero pages)', 'ram.normal', 'total-time', 'setup-time', 'downtime', 'expected-downtime']) {
      expect(metrics).toContain(m);
    }
    const status = j.rows.find((x: { metric: string }) => x.metric === 'status');
    expect(status).toMatchObject({ sim: 'completed', qemu: 'completed', within: true });
    const tt = j.rows.find((x: { metric: string }) => x.metric === 'total-time');
    expect(tt.gap).toBeCloseTo((tt.qemu - tt.sim) / tt.sim, 6);
    const text = latsim('qemu', 'compare', s, '--link', '400MB/s');
    expect(text.code).toBe(0);
    expect(text.stdout).toContain('migration.link.bandwidth overridden: 1250.0 MB/s in the file -> 400.0 MB/s (given with --link)');
    expect(text.stdout).toMatch(/dirty-sync-count\s+count\s+\d+\s+\d+/);
  });

  it('exits 7 when the guest does not boot and 8 when the migration fails', (ctx) => {
    qemuOrSkip(ctx);
    const s = file('small.yaml', SMALL);
    const noKernel = file('no-kernel-qemu', NO_KERNEL_SOURCE, 0o755);
    const g = latsim('qemu', 'run', s, '--qemu', noKernel, '--json');
    expect(g.code, g.stderr).toBe(7);
    expect(JSON.parse(g.stdout)).toMatchObject({ outcome: 'error', failure: 'guest' });
    const half = file('half-memory-qemu', HALF_MEMORY_DESTINATION, 0o755);
    const m = latsim('qemu', 'run', s, '--qemu', half, '--json');
    expect(m.code, m.stderr).toBe(8);
    const j = JSON.parse(m.stdout);
    expect(j.failure).toBe('migration');
    expect(j.migration.status).toBe('failed');
    expect(latsim('qemu', 'run', s, '--qemu', half, '--bisect').code).toBe(1);
    expect(existsSync(half)).toBe(true);
  });
});
