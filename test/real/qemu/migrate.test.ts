// A real migration on QEMU: a 64 MiB guest dirtying 2000 pages/s uniformly,
// its disk on the project's NBD server, migrated over loopback. It must
// complete, with destination memory equal to the source's, an iteration
// table from the trace, query-migrate snapshots, and the guest's achieved
// rate near the target. Then the talk's stall: a slow flush at completion
// (bdrv_drain_all / bdrv_flush_all under the BQL with the VM stopped) shows
// as downtime, as unanswered query-migrate polls and as a heartbeat gap.
// Skips without QEMU, /dev/kvm or the payload.
import { describe, expect, it } from 'vitest';

import { liveQemuCount } from '../../../real/qemu/process.ts';
import { runOnQemu } from '../../../real/qemu/run.ts';
import { qemuOrSkip, scenario } from './helpers.ts';

const SMALL = `
name: qemu-small
seed: 1
duration: 20s
vm: { memory: 64MiB, vcpus: 1 }
guest:
  workloads:
    - vcpus: all
      dirty: { rate: 2000/s, pattern: uniform }
devices:
  blk:
    - name: disk0
      io: { rate: 40/s, write_fraction: 0.7, flush_every: 8, disk_size: 64MiB }
migration:
  start: 1s
  max_bandwidth: 32MiB/s
  downtime_limit: 300ms
`;

describe('migration on real QEMU', () => {
  it('completes a 64 MiB migration with memory verified and the simulation\'s result fields', async (ctx) => {
    const probe = qemuOrSkip(ctx);
    const r = await runOnQemu(scenario(SMALL));
    expect(liveQemuCount()).toBe(0);
    expect(r.error).toBeNull();
    expect(r.outcome).toBe('ok');
    expect(r.qemu.version).toBe(probe.version);
    const m = r.migration!;
    expect(m.status).toBe('completed');
    expect(m.verified).toBe(true);
    expect(r.verify).toMatchObject({ equal: true, differing_pages: 0, bytes: 64 << 20 });
    expect(m['total-time']).toBeGreaterThan(1000); // 64 MiB at 32 MiB/s
    expect(m.downtime).toBeGreaterThan(0);
    expect(m.downtime).toBeLessThan(1000);
    expect(m.ram['dirty-sync-count']).toBe(m.iterations.length);
    expect(m.iterations[0]!.dirty_pages).toBe(m.ram.total / 4096);
    expect(m.iterations.at(-1)!.in_completion).toBe(true);
    expect(m.snapshots.length).toBeGreaterThan(5);
    expect(m.transitions.map((t) => t.to)).toEqual(['setup', 'active', 'completed']);
    // Paced at 2000/s; a busy 2-core host takes some of it (1316/s seen once).
    expect(r.guest.achieved_rate).toBeGreaterThan(1000);
    expect(r.guest.achieved_rate).toBeLessThan(2100);
    expect(r.guest.destination_achieved_rate).toBeGreaterThan(500);
    expect(r.block[0]!.writes).toBeGreaterThan(10);
    expect(r.block[0]!.flushes).toBeGreaterThan(1);
    expect(r.qmp.poll_latency_max_ms).toBeLessThan(500);
  });

  it('reproduces the flush stall: a 2 s flush at completion stops the guest and QMP', async (ctx) => {
    qemuOrSkip(ctx);
    const s = scenario(`
name: qemu-flush-stall
seed: 2012
duration: 30s
vm: { memory: 64MiB, vcpus: 1 }
guest:
  workloads:
    - vcpus: all
      dirty: { rate: 1000/s, pattern: hotset, hot_set: 8MiB, cold: 5% }
devices:
  blk:
    - name: disk0
      io: { rate: 50/s, write_fraction: 1, flush_every: 0, disk_size: 16MiB }
faults:
  - { name: nfs-stall, device: disk0, kind: slow-flush, at: 500ms, for: 20s, latency: 2s }
migration:
  start: 1s
  max_bandwidth: 128MiB/s
  downtime_limit: 300ms
`);
    const r = await runOnQemu(s);
    expect(r.error).toBeNull();
    const m = r.migration!;
    expect(m.status).toBe('completed');
    expect(m.verified).toBe(true);
    // The guest never flushes (flush_every 0): the only flush is bdrv_flush_all's.
    expect(r.block[0]!.faults_fired).toEqual(['nfs-stall']);
    expect(m.downtime).toBeGreaterThanOrEqual(2000);
    expect(m.downtime_phases!.flush).toBeGreaterThanOrEqual(1900);
    expect(r.qmp.poll_latency_max_ms).toBeGreaterThanOrEqual(1500);
    expect(r.guest.switchover_stall_ms).toBeGreaterThanOrEqual(1800);
    expect(liveQemuCount()).toBe(0);
  });
});
