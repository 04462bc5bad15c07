/**
 * IOThreads on the real-KVM backend: the shipped iothread-358ms scenario (a
 * virtio-blk dataplane in iothread0, shortened and with every submission
 * slow) runs with `latsim real`; the dataplane's handlers run on iothread0, a
 * coroutine thread of its own with its own event loop, whose CPU time is a
 * suspension (ownCore) so the main loop keeps serving the guest meanwhile;
 * the same disk without iothread= blocks the main loop. vhost is refused in
 * one line. Skips with the reason without /dev/kvm or the addon.
 * Leaves out: timing bounds tighter than the 358 ms the test is about (the
 * nested test VM is ~100x slower).
 */
import { spawnSync } from 'node:child_process';

import { describe, expect, it } from 'vitest';

import { loadScenarioFile } from '../../cli/scenario-file.ts';
import { realRun } from '../../real/run.ts';
import { adaptScenario } from '../../real/scenario.ts';
import { RealError } from '../../real/errors.ts';
import type { Scenario } from '../../sim/scenario/scenario.ts';
import { kvmOrSkip } from './helpers.ts';

const T = { timeout: 240_000 };
const MS = 1_000_000;

/** The shipped scenario, 4 s long, 64 MiB, every disk request's submission 358 ms. */
function everySlow(file: string): Scenario {
  const s = adaptScenario(loadScenarioFile(file), { durationNs: 4_000 * MS, memoryBytes: 64 * 2 ** 20 });
  const blk = s.devices.blk.map((b) => ({ ...b, request_cost: { dist: 'fixed' as const, value_ns: 358 * MS }, io: { ...b.io, rate: 2 } }));
  return { ...s, devices: { ...s.devices, blk } };
}

describe('IOThreads on KVM', () => {
  it('runs the dataplane in iothread0: the 358 ms handler blocks iothread0, not the main loop', T, (ctx) => {
    kvmOrSkip(ctx).close();
    const run = realRun(everySlow('scenarios/iothread-358ms.yaml'));
    const r = run.result;
    expect(r.outcome).toBe('ok');
    const thread = (name: string) => r.handlers.find((h) => h.name === name)?.thread;
    expect(thread('virtio-blk.disk0.host-notifier-read')).toBe('iothread0');
    expect(thread('virtio-blk.disk0.aio-completion')).toBe('iothread0');
    const slow = r.slow.filter((s) => s.name === 'virtio-blk.disk0.host-notifier-read');
    expect(slow.length).toBeGreaterThan(0);
    expect(slow.every((s) => s.thread === 'iothread0')).toBe(true);
    const io = r.threads.find((t) => t.name === 'iothread0')!;
    expect(io.kind).toBe('iothread');
    expect(io.blocked_max_ns).toBeGreaterThanOrEqual(358 * MS);
    // The main loop went on serving the guest's exits and the pings meanwhile.
    expect(r.main_loop.blocked_max_ns).toBeLessThan(200 * MS);
    expect(r.bql.wait_max_ns).toBeLessThan(200 * MS);
    expect(r.guest.ping.answered).toBeGreaterThan(0);
    expect(run.real.loop.threads_cpu_ms['iothread0']).toBeGreaterThanOrEqual(358);
  });

  it('the same disk on the main loop blocks it for the 358 ms', T, (ctx) => {
    kvmOrSkip(ctx).close();
    const r = realRun(everySlow('scenarios/iothread-358ms-main-loop.yaml')).result;
    expect(r.handlers.find((h) => h.name === 'virtio-blk.disk0.host-notifier-read')?.thread).toBe('main-loop');
    expect(r.main_loop.blocked_max_ns).toBeGreaterThanOrEqual(358 * MS);
    expect(r.threads.map((t) => t.name)).not.toContain('iothread0');
  });

  it('latsim real runs the shipped IOThread scenario file, and refuses vhost in one line', T, (ctx) => {
    kvmOrSkip(ctx).close();
    const r = spawnSync(process.execPath, ['bin/latsim.mjs', 'real', 'run', 'scenarios/iothread-flush-stall.yaml', '--duration', '3s', '--memory', '64MiB', '--json'],
      { encoding: 'utf8', timeout: 200_000 });
    expect(r.stderr).not.toMatch(/\n\s+at /);
    const result = JSON.parse(r.stdout);
    expect(result.threads.map((t: { name: string }) => t.name)).toContain('iothread0');
    expect(result.handlers.find((h: { name: string }) => h.name === 'virtio-blk.disk0.host-notifier-read')?.thread).toBe('iothread0');
    expect(() => realRun(adaptScenario(loadScenarioFile('scenarios/vhost-net-vs-userspace.yaml'), { durationNs: 1_000 * MS })))
      .toThrow(RealError);
    const v = spawnSync(process.execPath, ['bin/latsim.mjs', 'real', 'run', 'scenarios/vhost-net-vs-userspace.yaml', '--duration', '1s'], { encoding: 'utf8' });
    expect(v.status).toBe(2);
    const lines = v.stderr.trim().split('\n').filter((l) => l.startsWith('latsim: real:'));
    expect(lines).toEqual(['latsim: real: real mode has no vhost-net (net0: vhost: true); run it in the simulation']);
  });
});
