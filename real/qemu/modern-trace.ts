// Today's migration features as QEMU 7.2's trace log shows them: multifd's
// per-channel packets and pages (multifd_send_thread_end, one line per
// channel when its thread ends), the KVM dirty ring's full exits and reaps
// (kvm_dirty_ring_full, kvm_dirty_ring_reap), and postcopy's page faults on
// the destination: each userfault request (postcopy_ram_fault_thread_request,
// by host address) until the page is placed (postcopy_place_page /
// postcopy_place_page_zero at the same page), which is the fault latency a
// vCPU waits.
// Leaves out: multifd's receive side (its counts equal the send side's), the
// dirty ring's per-page events (kvm_dirty_ring_page: one per page, too many
// to enable), faults of threads other than the vCPUs (none in the payload).
import type { TraceEvent } from './trace.ts';

/** The trace events these figures need, besides trace.ts's. */
export const MODERN_TRACE_EVENTS = [
  'multifd_send_thread_end',
  'kvm_dirty_ring_full',
  'kvm_dirty_ring_reap',
  'postcopy_ram_fault_thread_request',
  'postcopy_place_page',
  'postcopy_place_page_zero',
] as const;

export interface MultifdChannel {
  readonly channel: number;
  readonly packets: number;
  readonly normal_pages: number;
}

/** One entry per multifd channel whose send thread ended ("channel 0 packets 257 normal pages 16384"). */
export function multifdChannels(events: readonly TraceEvent[]): MultifdChannel[] {
  const out: MultifdChannel[] = [];
  for (const e of events) {
    if (e.name !== 'multifd_send_thread_end') continue;
    const m = /channel (\d+) packets (\d+) normal pages (\d+)/.exec(e.args);
    if (m) out.push({ channel: Number(m[1]), packets: Number(m[2]), normal_pages: Number(m[3]) });
  }
  return out.sort((a, b) => a.channel - b.channel);
}

export interface DirtyRingFigures {
  /** KVM_EXIT_DIRTY_RING_FULL exits (kvm_dirty_ring_full: a vCPU stopped until the reaper ran). */
  readonly ring_full_exits: number;
  /** Reaps of all rings (the reaper thread's and each migration sync's). */
  readonly reaps: number;
  readonly reaped_pages: number;
  /** The longest reap (it runs under the BQL), us as QEMU traces it. */
  readonly reap_max_us: number;
}

export function dirtyRingFigures(events: readonly TraceEvent[]): DirtyRingFigures {
  let full = 0;
  let reaps = 0;
  let pages = 0;
  let maxUs = 0;
  for (const e of events) {
    if (e.name === 'kvm_dirty_ring_full') full++;
    else if (e.name === 'kvm_dirty_ring_reap') {
      const m = /reaped (\d+) pages \(took (\d+) us\)/.exec(e.args);
      reaps++;
      if (m) {
        pages += Number(m[1]);
        maxUs = Math.max(maxUs, Number(m[2]));
      }
    }
  }
  return { ring_full_exits: full, reaps, reaped_pages: pages, reap_max_us: maxUs };
}

export interface PostcopyFaults {
  /** Page requests the destination's fault thread made (one per faulting page). */
  readonly faults: number;
  /** Request to placement of each fault, ms, in request order. */
  readonly latencies_ms: readonly number[];
  /** Faults whose page was never placed in the trace (the run ended first). */
  readonly unanswered: number;
}

const PAGE_MASK = ~0xfffn;

function hostPage(text: string): bigint | null {
  const m = /0x([0-9a-f]+)/i.exec(text);
  return m ? BigInt(`0x${m[1]}`) & PAGE_MASK : null;
}

/**
 * Each postcopy fault's latency: a request ("Request for HVA=0x7f12...")
 * is answered by the first placement of the same host page after it.
 */
export function postcopyFaults(events: readonly TraceEvent[]): PostcopyFaults {
  const pending = new Map<bigint, number>();
  const latencies: number[] = [];
  let faults = 0;
  for (const e of events) {
    if (e.name === 'postcopy_ram_fault_thread_request') {
      const page = hostPage(/HVA=(0x[0-9a-f]+)/i.exec(e.args)?.[1] ?? '');
      if (page === null) continue;
      faults++;
      if (!pending.has(page)) pending.set(page, e.wall_ms);
    } else if (e.name === 'postcopy_place_page' || e.name === 'postcopy_place_page_zero') {
      const page = hostPage(e.args);
      if (page === null) continue;
      const t = pending.get(page);
      if (t !== undefined) {
        latencies.push(e.wall_ms - t);
        pending.delete(page);
      }
    }
  }
  return { faults, latencies_ms: latencies, unanswered: pending.size };
}

/** The q-quantile of values (nearest rank), 0 for none. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}
