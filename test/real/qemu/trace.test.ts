// The trace-log parser and the iteration table it gives (no QEMU needed):
// QEMU 7.2 log-backend lines as run.ts enables them.
import { describe, expect, it } from 'vitest';

import { parseTraceLog, switchoverSteps, syncTable, traceArg } from '../../../real/qemu/trace.ts';
import { planGuest, maxGap, parseStatus } from '../../../real/qemu/guest-params.ts';
import { scenario } from './helpers.ts';

// Recorded from a 64 MiB run (thread ids and the epoch shortened).
const LOG = `
9368@1000.000000:vm_state_notify running 1 reason 9 (running)
9368@1005.079897:migrate_set_state new state setup
9395@1005.083425:migration_bitmap_sync_start 
9395@1005.083481:migration_bitmap_sync_end dirty_pages 0
9395@1005.083700:migrate_set_state new state active
9395@1005.083706:migrate_pending pending size 67641344 max 0 (pre = 67641344 compat=0 post=0)
9395@1005.233076:migration_bitmap_sync_start 
9395@1005.233148:migration_bitmap_sync_end dirty_pages 283
9395@1005.233166:migrate_pending pending size 8572928 max 10077414 (pre = 8572928 compat=0 post=0)
9395@1005.900000:migration_bitmap_sync_start 
9395@1005.900100:migration_bitmap_sync_end dirty_pages 500
9395@1005.900166:migrate_pending pending size 4096000 max 10077414 (pre = 4096000 compat=0 post=0)
9395@1006.200000:migration_bitmap_sync_start 
9395@1006.200100:migration_bitmap_sync_end dirty_pages 620
9395@1006.200166:migrate_pending pending size 2048000 max 10077414 (pre = 2048000 compat=0 post=0)
9395@1006.237600:runstate_set current_state 9 (running) new_state 7 (finish-migrate)
9395@1006.237700:vm_state_notify running 0 reason 7 (finish-migrate)
9395@1009.238089:migration_completion_vm_stop ret 0
9395@1009.238100:savevm_state_complete_precopy 
9395@1009.238315:migration_bitmap_sync_start 
9395@1009.238351:migration_bitmap_sync_end dirty_pages 284
9395@1009.286168:migrate_set_state new state completed
`;

describe('QEMU trace log', () => {
  const events = parseTraceLog(LOG);

  it('parses tid, wall time, name and numeric arguments', () => {
    expect(events).toHaveLength(22);
    expect(events[3]).toMatchObject({ tid: 9395, name: 'migration_bitmap_sync_end', args: 'dirty_pages 0' });
    expect(events[3]!.wall_ms).toBeCloseTo(1005083.481, 3);
    expect(traceArg(events[5]!, 'pre')).toBe(67641344);
    expect(traceArg(events[5]!, 'max')).toBe(0);
  });

  it('gives one iteration per bitmap sync, with num_dirty_pages_period differenced within a period', () => {
    const rows = syncTable({ events, originWallMs: 1005000, pageSize: 4096, transferred: [{ t_ns: 0, bytes: 0 }, { t_ns: 2e9, bytes: 2e8 }] });
    expect(rows.map((r) => r.n)).toEqual([1, 2, 3, 4, 5]);
    expect(rows[0]).toMatchObject({ dirty_pages: 16514, new_dirty: 0, remaining_bytes: 67641344, in_completion: false });
    expect(rows[1]).toMatchObject({ dirty_pages: 2093, new_dirty: 283, threshold_bytes: 10077414 });
    // Same period (< 1000 ms since setup): 500 - 283.
    expect(rows[2]!.new_dirty).toBe(217);
    // Sync 4 is the first more than 1000 ms after the period began: still
    // differenced (620 - 500), then QEMU zeroes the period's count...
    expect(rows[3]!.new_dirty).toBe(120);
    // ...so the final sync's 284 are all new. It runs with the VM stopped
    // and has no migrate_pending after it.
    expect(rows[4]).toMatchObject({ new_dirty: 284, in_completion: true, dirty_pages: -1, remaining_bytes: -1 });
    expect(rows[1]!.transferred_bytes).toBe(Math.round(0.233148e9 * 0.1));
  });

  it('finds the switchover steps: stop, pause, drain+flush returned, final pass, end', () => {
    const s = switchoverSteps(events, 1005000)!;
    expect(s.end_state).toBe('completed');
    expect(Math.round(s.paused_ns / 1e6)).toBe(1238);
    expect(Math.round((s.vm_stop_ret_ns - s.paused_ns) / 1e6)).toBe(3000);
    expect(s.stop_ns).toBeLessThan(s.paused_ns);
    expect(s.complete_precopy_ns).toBeGreaterThan(s.vm_stop_ret_ns);
  });
});

describe('QEMU guest plan', () => {
  it('maps patterns, clips ranges to 2 MiB and RAM, folds vCPUs, and lists what it leaves out', () => {
    const s = scenario(`
name: plan
duration: 5s
vm: { memory: 64MiB, vcpus: 2, populated: 25% }
guest:
  workloads:
    - vcpus: all
      exits: { rate: 100/s, cost: 10us }
      dirty: { rate: 1000/s, pattern: hotset, hot_set: 4MiB, cold: 10% }
devices:
  net: [{ name: net0 }]
  blk: [{ name: disk0, io: { rate: 20/s, write_fraction: 0.5, flush_every: 4, disk_size: 16MiB } }]
`);
    const p = planGuest(s, { heartbeatMs: 10, statusMs: 1000, tickUs: 1000 });
    expect(p.workloads).toEqual([{ pattern: 'h', rate: 2000, first_page: 512, pages: 16384 - 512, hot_pages: 1024, cold_permille: 100 }]);
    expect(p.populated_pages).toBe(4096);
    expect(p.disk).toMatchObject({ rate: 20, write_permille: 500, flush_every: 4, blocks: 4096, sectors_per_block: 8 });
    expect(p.append).toContain('w0=h:2000:512:15872:1024:100');
    expect(p.unsupported.join('\n')).toMatch(/exits[\s\S]*vCPUs[\s\S]*net devices/);
  });

  it('parses status lines and finds heartbeat gaps', () => {
    const st = parseStatus('S ms=2000 pages=3712 rate=1986 lost_ticks=133 dw=207 dr=77 df=25 de=0 dflush_max_us=1954 dstate=1', 5);
    expect(st).toMatchObject({ ms: 2000, pages: 3712, rate: 1986, df: 25, host_ms: 5 });
    expect(parseStatus('H n=1', 0)).toBeNull();
    expect(maxGap([0, 10, 20, 520, 530])).toEqual({ gap_ms: 500, at_ms: 20 });
  });
});
