/**
 * Real mode end to end: `latsim real probe`; a small scenario run on KVM with
 * the model's main loop and virtio-net on the payload's ring in guest memory;
 * a live migration to a second process that arrives with identical memory and
 * keeps running; `real compare` printing both columns; a triple-faulting guest
 * (exit 7). Skip with the reason without /dev/kvm or the addon (fail instead
 * under `npm run test:kvm`). The last two cases run everywhere: without KVM every
 * real command says so in one line and exits 6, and postcopy or a link-break
 * is refused in one line (exit 2) before anything starts.
 * Leaves out: timing assertions (the nested test VM is ~100x slower).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { parseScenario } from '../../../cli/scenario-file.ts';
import { realRun } from '../../../real/run.ts';
import { realMigrate } from '../../../real/migrate.ts';
import { RealError } from '../../../real/errors.ts';
import { kvmOrSkip } from '../helpers.ts';

const T = { timeout: 240_000 };
const dir = mkdtempSync(join(tmpdir(), 'latsim-real-cli-'));

const SMALL = `
name: real-small
seed: 5
duration: 2s
vm: { memory: 16MiB, vcpus: 1 }
guest:
  workloads:
    - vcpus: all
      exits: { rate: 100/s, cost: 10us }
      dirty: { rate: 1000/s, pattern: uniform }
devices:
  net:
    - name: net0
      peer: { ping_interval: 100ms, ping_timeout: 5s }
migration:
  start: 500ms
  max_bandwidth: 64MiB/s
  downtime_limit: 300ms
`;

const file = join(dir, 'small.yaml');
writeFileSync(file, SMALL);
/** The same scenario with a longer bound, for a migration in a slow (nested) VM. */
const migrating = parseScenario(SMALL.replace('duration: 2s', 'duration: 120s'), file);

function latsim(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, ['bin/latsim.mjs', ...args], {
    encoding: 'utf8', env: { ...process.env, ...env }, timeout: 200_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('latsim real', () => {
  it('probe: API version 12 and the dirty-log modes', T, (ctx) => {
    kvmOrSkip(ctx).close();
    const r = latsim(['real', 'probe', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const p = JSON.parse(r.stdout);
    expect(p).toMatchObject({ available: true, api_version: 12 });
    expect(p.dirty_log.get_dirty_log).toBe(true);
    expect(typeof p.dirty_log.manual_protect).toBe('boolean');
    expect(p.caps.IOEVENTFD).toBeGreaterThan(0);
  });

  it('run: the model\'s main loop, BQL and virtio-net serve a real guest for the scenario\'s duration', T, (ctx) => {
    kvmOrSkip(ctx).close();
    const run = realRun(parseScenario(SMALL, file));
    const r = run.result;
    expect(r.outcome).toBe('ok');
    expect(r.migration).toBeNull();
    expect(r.sim_time_ns).toBeGreaterThanOrEqual(2e9);
    expect(run.real.vcpus[0]!.heartbeat).toBeGreaterThan(0);
    expect(r.guest.dirty_writes).toBeGreaterThan(0);
    const names = r.handlers.map((h) => h.name);
    expect(names).toContain('vcpu0.pio-exit'); // heartbeat exits under the BQL
    expect(names).toContain('virtio-net.net0.host-notifier-read'); // kick -> ioeventfd -> main loop
    expect(names).toContain('virtio-net.net0.tx-bh');
    expect(r.guest.vcpus[0]!.exits).toBeGreaterThan(0);
    // Pings answered by the payload on its tx ring, pushed back used by the device.
    expect(r.guest.ping.answered).toBeGreaterThan(0);
    expect(run.real.net!.ring_used).toBe(run.real.net!.ring_popped);
    expect(run.real.net!.ring_used).toBeGreaterThan(0);
    expect(run.real.net!.broken).toBeNull();
  });

  it('migrate: the guest moves to a second process with identical memory and keeps running there', T, async (ctx) => {
    kvmOrSkip(ctx).close();
    const run = await realMigrate(migrating, { file, passArgs: ['--duration', '120s'], checkNs: 300_000_000 });
    const m = run.result.migration!;
    expect(run.result.error).toBeNull();
    expect(m.status).toBe('completed');
    expect(m.verified).toBe(true); // every 1 MiB chunk's digest equal on both sides
    expect(m.transitions.map((t) => t.to)).toEqual(['setup', 'active', 'completed']);
    expect(m.ram['dirty-sync-count']).toBeGreaterThanOrEqual(1);
    expect(m.ram.normal).toBeGreaterThan(0);
    expect(m.ram.normal + m.ram.duplicate).toBeGreaterThanOrEqual(16 * 256);
    expect(m.downtime_phases).not.toBeNull();
    const d = run.destination;
    expect(d.report?.running).toBe(true);
    expect(d.report!.heartbeat_after).toBeGreaterThan(d.report!.heartbeat_before);
    expect(d.report!.pages_received).toBe(d.pages_sent);
    expect(d.exit_code).toBe(0);
  });

  it('compare: both backends side by side', T, (ctx) => {
    kvmOrSkip(ctx).close();
    const r = latsim(['real', 'compare', file, '--duration', '120s']);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines.find((l) => /^metric\s+unit\s+sim\s+real\s+gap$/.test(l))).toBeDefined();
    for (const metric of ['dirty-sync-count', 'pages transferred', 'iterations', 'downtime']) {
      const row = lines.find((l) => l.startsWith(metric));
      expect(row, metric).toMatch(new RegExp(`^${metric}\\s+\\S+\\s+\\d+(\\.\\d)?\\s+\\d+(\\.\\d)?`));
    }
  });

  it('a guest that triple-faults ends the run: one line, exit 7', T, (ctx) => {
    kvmOrSkip(ctx).close();
    expect(() => realRun(parseScenario(SMALL, file), { crash: true })).toThrow(RealError);
    const r = latsim(['real', 'run', file, '--crash-guest']);
    expect(r.code).toBe(7);
    expect(r.stderr).toMatch(/^latsim: real: the guest failed: .*triple fault.*\(ETRIPLEFAULT\)$/m);
    expect(r.stderr.trim().split('\n').filter((l) => l.startsWith('latsim: real:'))).toHaveLength(1);
  });

  it('without KVM every real command prints one line and exits 6', T, () => {
    // Two commands only: each start of the CLI costs seconds in the nested test VM.
    for (const args of [['real', 'run', file], ['real', 'migrate', file]]) {
      const r = latsim(args, { LATSIM_KVM_DEVICE: '/nonexistent/kvm' });
      expect(r.code, args.join(' ')).toBe(6);
      const lines = r.stderr.trim().split('\n').filter((l) => l.startsWith('latsim: real:'));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^latsim: real: unavailable: /);
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    }
  });

  it('refuses postcopy and link-break faults before anything starts: exit 2, one line naming the field', T, async () => {
    const pc = parseScenario(SMALL.replace('  downtime_limit: 300ms', '  downtime_limit: 300ms\n  postcopy: { start_after_passes: 1 }'), file);
    await expect(realMigrate(pc, { file, checkNs: 0, passArgs: [] })).rejects.toThrow(/migration\.postcopy: real mode migrates by pre-copy only$/);
    const cut = parseScenario(`${SMALL}faults: [ { name: cut, kind: link-break, at: 1s, for: 1s } ]\n`, file);
    await expect(realMigrate(cut, { file, checkNs: 0, passArgs: [] })).rejects.toThrow(/fault cut \(link-break\): real mode does not cut its TCP stream$/);
    const pcFile = join(dir, 'postcopy.yaml');
    writeFileSync(pcFile, SMALL.replace('  downtime_limit: 300ms', '  downtime_limit: 300ms\n  postcopy: { start_after_passes: 1 }'));
    const r = latsim(['real', 'migrate', pcFile]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n').filter((l) => l.startsWith('latsim: real:'))).toEqual([`latsim: real: ${pcFile}: migration.postcopy: real mode migrates by pre-copy only`]);
  });
});
