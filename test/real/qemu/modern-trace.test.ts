// The trace-derived figures of multifd, the dirty ring and postcopy (no QEMU
// needed): QEMU 7.2 log-backend lines in the formats of its trace-events.
import { describe, expect, it } from 'vitest';

import { dirtyRingFigures, multifdChannels, postcopyFaults, quantile } from '../../../real/qemu/modern-trace.ts';
import { parseTraceLog } from '../../../real/qemu/trace.ts';

const LOG = `
9395@1000.000000:multifd_send_thread_end channel 1 packets 120 normal pages 15360
9394@1000.000100:multifd_send_thread_end channel 0 packets 121 normal pages 15488
9380@1000.100000:kvm_dirty_ring_full vcpu 0
9381@1000.100200:kvm_dirty_ring_reap reaped 4096 pages (took 850 us)
9380@1000.300000:kvm_dirty_ring_full vcpu 0
9381@1000.300300:kvm_dirty_ring_reap reaped 4090 pages (took 1210 us)
9395@1001.000000:kvm_dirty_ring_reap reaped 12 pages (took 5 us)
7001@2000.000000:postcopy_ram_fault_thread_request Request for HVA=0x7f0000201123 rb=pc.ram offset=0x201000 pid=7005
7001@2000.000500:postcopy_ram_fault_thread_request Request for HVA=0x7f0000201fff rb=pc.ram offset=0x201000 pid=7005
7002@2000.002000:postcopy_place_page host=0x7f0000300000
7002@2000.003000:postcopy_place_page host=0x7f0000201000
7001@2000.010000:postcopy_ram_fault_thread_request Request for HVA=0x7f0000500040 rb=pc.ram offset=0x500000 pid=7005
7002@2000.014500:postcopy_place_page_zero host=0x7f0000500000
7001@2000.020000:postcopy_ram_fault_thread_request Request for HVA=0x7f0000600000 rb=pc.ram offset=0x600000 pid=7005
`;

describe('modern migration trace figures', () => {
  const events = parseTraceLog(LOG);

  it('multifd: one row per channel, in channel order', () => {
    expect(multifdChannels(events)).toEqual([
      { channel: 0, packets: 121, normal_pages: 15488 },
      { channel: 1, packets: 120, normal_pages: 15360 },
    ]);
  });

  it('the dirty ring: full exits, reaps, pages, and the longest reap', () => {
    expect(dirtyRingFigures(events)).toEqual({ ring_full_exits: 2, reaps: 3, reaped_pages: 8198, reap_max_us: 1210 });
  });

  it('postcopy: a fault waits from its request to its page\'s placement; a second request for the same page is not a second wait', () => {
    const f = postcopyFaults(events);
    expect(f.faults).toBe(4);
    expect(f.latencies_ms.map((x) => Math.round(x * 1000) / 1000)).toEqual([3, 4.5]);
    expect(f.unanswered).toBe(1);
    expect(quantile(f.latencies_ms, 0.5)).toBe(f.latencies_ms[0]);
    expect(quantile([], 0.99)).toBe(0);
  });
});
