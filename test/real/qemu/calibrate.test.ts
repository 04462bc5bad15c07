// `latsim qemu calibrate` on this host's QEMU: one round of the four runs on
// a 128 MiB guest. The costs it finds must be those of a real host (a page
// costs something, a first touch more than a load into preallocated memory,
// a zero page's check on the destination, a guest rate, a link and the
// host's CPUs), the firmware's pages must be found in the idle guest, and
// the fragment written with --write must be a scenario fragment that gives
// a scenario including it exactly those costs.
// Skips without QEMU, /dev/kvm or the payload.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { loadScenarioFile } from '../../../cli/scenario-file.ts';
import { calibrationFragment, QemuCpuSampler, type Calibration } from '../../../real/qemu/calibrate.ts';
import { qemuOrSkip } from './helpers.ts';

const LATSIM = join(import.meta.dirname, '..', '..', '..', 'bin', 'latsim.mjs');

describe('latsim qemu calibrate', () => {
  it('measures the host and writes a fragment that scenarios include', (ctx) => {
    qemuOrSkip(ctx);
    const dir = mkdtempSync(join(tmpdir(), 'latsim-calibrate-'));
    try {
      const out = join(dir, 'host.yaml');
      const json = execFileSync(process.execPath, [LATSIM, 'qemu', 'calibrate', '--repeat', '1', '--memory', '128MiB', '--json', '--write', out], {
        encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 240_000,
      });
      const c = JSON.parse(json) as Calibration;
      expect(c.runs.map((r) => r.what)).toEqual(['idle', 'stream', 'fresh', 'guest']);
      expect(c.runs.slice(0, 3).every((r) => r.status === 'completed')).toBe(true);
      const k = c.costs;
      expect(k.zero_page_scan_ns).toBeGreaterThan(0);
      expect(k.page_send_ns).toBeGreaterThan(0);
      expect(k.dest_first_touch_ns).toBeGreaterThan(k.dest_page_ns);
      // The destination's check of a zero page in its preallocated RAM reads the page: it costs something.
      expect(k.dest_zero_page_ns).toBeGreaterThan(0);
      expect(k.cores).toBeGreaterThan(0);
      expect(k.guest_dirty_rate_max).toBeGreaterThan(1000);
      expect(k.loopback).toBeGreaterThan(10e6);
      expect(k.downtime_floor_ns).toBeGreaterThan(0);
      // Connecting and starting the migration thread take time: every migrating run saw a set-up phase.
      expect(c.runs.slice(0, 3).every((r) => r.setup_ns >= 0)).toBe(true);
      expect(k.migration_setup_ns).toBeGreaterThan(0);
      // SeaBIOS and the payload leave a few hundred KiB below 2 MiB.
      expect(c.firmware_bytes).toBeGreaterThan(64 * 1024);
      expect(c.firmware_bytes).toBeLessThan(2 * 2 ** 20);

      const scenario = join(dir, 'case.yaml');
      writeFileSync(scenario, 'name: case\nduration: 2s\ninclude: host.yaml\nqemu: { version: 7.2 }\n');
      const s = loadScenarioFile(scenario);
      // The fragment rounds to 0.1 us at most.
      expect(Math.abs(s.qemu.host.zero_page_scan_ns - k.zero_page_scan_ns)).toBeLessThanOrEqual(50);
      expect(Math.abs(s.qemu.host.dest_first_touch_ns - k.dest_first_touch_ns)).toBeLessThanOrEqual(50);
      expect(Math.abs(s.qemu.host.dest_zero_page_ns - k.dest_zero_page_ns)).toBeLessThanOrEqual(50);
      expect(s.qemu.host.guest_dirty_rate_max).toBe(k.guest_dirty_rate_max);
      expect(s.qemu.host.cores).toBe(k.cores);
      expect(Math.abs(s.qemu.host.migration_setup_ns - k.migration_setup_ns)).toBeLessThanOrEqual(50);
      expect(s.vm.firmware_bytes).toBe(Math.round(c.firmware_bytes / 1024) * 1024);
      expect(readFileSync(out, 'utf8')).toContain(`QEMU ${c.qemu.version}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 300_000);
});

describe('calibrationFragment', () => {
  it('writes every cost to within 50 ns, a slow host\'s set-up of over 10 ms included', () => {
    const dir = mkdtempSync(join(tmpdir(), 'latsim-fragment-'));
    try {
      const costs = {
        zero_page_scan_ns: 385, page_send_ns: 1600, dirty_sync_ns_per_gib: 296_412, dest_first_touch_ns: 14_633,
        dest_page_ns: 2406, dest_zero_page_ns: 442, downtime_floor_ns: 7_000_000, migration_setup_ns: 17_387_412,
        guest_dirty_rate_max: 38_365, loopback: 628_300_000, cores: 2,
      } as Calibration['costs'];
      const c = { host: 'test host', qemu: { version: '7.2.22', package: '', binary: 'qemu' }, costs, firmware_bytes: 479_232, runs: [] } as unknown as Calibration;
      writeFileSync(join(dir, 'host.yaml'), calibrationFragment(c, '2026-12-02'));
      const scenario = join(dir, 'case.yaml');
      writeFileSync(scenario, 'name: case\nduration: 2s\ninclude: host.yaml\nqemu: { version: 7.2 }\n');
      const h = loadScenarioFile(scenario).qemu.host;
      expect(Math.abs(h.migration_setup_ns - costs.migration_setup_ns)).toBeLessThanOrEqual(50);
      expect(Math.abs(h.dirty_sync_ns_per_gib - costs.dirty_sync_ns_per_gib)).toBeLessThanOrEqual(50);
      expect(Math.abs(h.dest_first_touch_ns - costs.dest_first_touch_ns)).toBeLessThanOrEqual(50);
      expect(h.downtime_floor_ns).toBe(costs.downtime_floor_ns);
      expect(h.zero_page_scan_ns).toBe(costs.zero_page_scan_ns);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('QemuCpuSampler', () => {
  it('counts a thread first seen under its process\'s name by the name it gives itself', async () => {
    // A child whose thread waits, named as its process is, until the sampler
    // has seen it, then names itself (as QEMU's threads do after
    // pthread_create) and spins for 100 ms.
    const script = [
      'import ctypes, threading, time',
      'def work():',
      '    time.sleep(0.1)',
      "    ctypes.CDLL(None).prctl(15, b'live_migration', 0, 0, 0)",
      '    end = time.monotonic() + 0.1',
      '    while time.monotonic() < end: pass',
      't = threading.Thread(target=work); t.start(); t.join()',
      'time.sleep(0.05)',
    ].join('\n');
    const sampler = new QemuCpuSampler('python3');
    sampler.start();
    const child = spawn('/usr/bin/python3', ['-c', script], { stdio: 'ignore' });
    await new Promise((resolve) => child.on('exit', resolve));
    sampler.stop();
    expect(sampler.cpuNs((t) => t.comm === 'live_migration')).toBeGreaterThan(20_000_000);
  });
});
