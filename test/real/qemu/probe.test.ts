// probeQemu's answers (a missing binary, the host's QEMU), runOnQemu refusing
// when the probe says no, and measureLoopback. No VM is started here.
import { describe, expect, it } from 'vitest';

import { measureLoopback } from '../../../real/qemu/loopback.ts';
import { DEFAULT_QEMU, probeQemu } from '../../../real/qemu/probe.ts';
import { QemuUnavailable, runOnQemu } from '../../../real/qemu/run.ts';
import { scenario } from './helpers.ts';

describe('probeQemu', () => {
  it('says why a missing binary cannot run, and runOnQemu refuses with that reason', async () => {
    const p = probeQemu('/nonexistent/qemu-system-x86_64');
    expect(p.available).toBe(false);
    expect(p.version).toBe('');
    expect(p.reason).toMatch(/does not run/);
    const s = scenario('name: x\nduration: 1s\nvm: { memory: 16MiB }\n');
    await expect(runOnQemu(s, { qemu: '/nonexistent/qemu-system-x86_64' })).rejects.toBeInstanceOf(QemuUnavailable);
  });

  it('reads the host QEMU\'s version and trace events when there is one', (ctx) => {
    const p = probeQemu(DEFAULT_QEMU);
    if (!p.version) ctx.skip(`no QEMU at ${DEFAULT_QEMU}`);
    expect(p.version).toMatch(/^\d+\.\d+\.\d+$/);
    expect(p.missing_trace_events).toEqual([]);
  });
});

describe('measureLoopback', () => {
  it('moves the bytes and reports a bandwidth', async () => {
    const r = await measureLoopback(32 << 20);
    expect(r.bytes).toBeGreaterThanOrEqual(32 << 20);
    expect(r.bandwidth).toBeGreaterThan(10e6);
    expect(r.mbps).toBeCloseTo((r.bandwidth * 8) / 1e6, 0);
  });
});
