// Today's migration features of a scenario as QEMU 7.2 is asked for them:
// the multifd capability with multifd-channels, xbzrle with
// xbzrle-cache-size, postcopy-ram (with postcopy-preempt, and
// postcopy-blocktime on the destination to measure the vCPUs' wait) and when
// migrate-start-postcopy is sent, and the KVM dirty ring as the accelerator's
// dirty-ring-size property. What QEMU 7.2 lacks of them (multifd's
// zero-page-detection, 9.0; the dirty-limit capability, 8.1) is listed as
// unsupported and left out.
// Leaves out: the other multifd compression methods, postcopy recovery (a
// broken stream on loopback is not reproduced here).
import type { Scenario } from '../../sim/scenario/scenario.ts';
import type { QemuModernResult } from './result.ts';
import { dirtyRingFigures, multifdChannels, postcopyFaults, quantile } from './modern-trace.ts';
import type { TraceEvent } from './trace.ts';

export interface QemuFeatures {
  /** multifd-channels, or null: multifd off. */
  readonly multifd_channels: number | null;
  /** zero-page-detection (none, legacy, multifd): a parameter of QEMU 9.0 on. */
  readonly zero_page_detection: string | null;
  /** xbzrle-cache-size (bytes), or null: xbzrle off. */
  readonly xbzrle_cache_bytes: number | null;
  /** postcopy-ram and when to switch to it, or null. */
  readonly postcopy: {
    /** migrate-start-postcopy once dirty-sync-count exceeds this many passes (-1: at at_ns). */
    readonly after_passes: number;
    /** ... or at this time from time zero (ns; -1: after_passes). */
    readonly at_ns: number;
    readonly preempt: boolean;
  } | null;
  /** -accel kvm,dirty-ring-size= (0: the dirty log). */
  readonly dirty_ring_size: number;
  /** What of the scenario's features QEMU 7.2 does not have. */
  readonly unsupported: readonly string[];
}

/** The features of the scenario, for a QEMU binary of this version (e.g. 7.2.22). */
export function featuresOf(s: Scenario, binaryVersion: string): QemuFeatures {
  const binaryMajor = Number(binaryVersion.split('.')[0]);
  const m = s.migration;
  const unsupported: string[] = [];
  const mf = m?.multifd ?? null;
  if (mf && mf.zero_page_detection !== 'legacy' && !(binaryMajor >= 9)) {
    unsupported.push(`multifd.zero_page_detection ${mf.zero_page_detection}: QEMU before 9.0 finds zero pages on the migration thread (legacy)`);
  }
  if (m?.policy.includes('dirty-limit')) unsupported.push('policy dirty-limit: the dirty-limit capability came with QEMU 8.1 (runs as legacy)');
  const pc = m?.postcopy ?? null;
  return {
    multifd_channels: mf ? mf.channels : null,
    zero_page_detection: mf && binaryMajor >= 9 ? mf.zero_page_detection : null,
    xbzrle_cache_bytes: m?.xbzrle ? m.xbzrle.cache_size : null,
    postcopy: pc ? { after_passes: pc.start_after_passes, at_ns: pc.start_at_ns, preempt: pc.preempt } : null,
    dirty_ring_size: s.vm.dirty_ring_size,
    unsupported,
  };
}

/** The capabilities to set on both sides (QMP migrate-set-capabilities). */
export function featureCapabilities(f: QemuFeatures, side: 'source' | 'destination'): { capability: string; state: boolean }[] {
  const caps: { capability: string; state: boolean }[] = [];
  if (f.multifd_channels !== null) caps.push({ capability: 'multifd', state: true });
  if (f.xbzrle_cache_bytes !== null && side === 'source') caps.push({ capability: 'xbzrle', state: true });
  if (f.postcopy) {
    caps.push({ capability: 'postcopy-ram', state: true });
    if (f.postcopy.preempt) caps.push({ capability: 'postcopy-preempt', state: true });
    // The vCPUs' time blocked on missing pages (query-migrate's postcopy-blocktime, on the destination).
    if (side === 'destination') caps.push({ capability: 'postcopy-blocktime', state: true });
  }
  return caps;
}

/** The parameters to set on both sides (QMP migrate-set-parameters). */
export function featureParameters(f: QemuFeatures): Record<string, number | string> {
  const p: Record<string, number | string> = {};
  if (f.zero_page_detection !== null) p['zero-page-detection'] = f.zero_page_detection;
  if (f.multifd_channels !== null) p['multifd-channels'] = f.multifd_channels;
  if (f.xbzrle_cache_bytes !== null) p['xbzrle-cache-size'] = f.xbzrle_cache_bytes;
  return p;
}

/** Whether migrate-start-postcopy is due: after the passes (dirty-sync-count counts the setup sync too) or at the time. */
export function postcopyDue(f: QemuFeatures, dirtySyncCount: number, tNs: number): boolean {
  const pc = f.postcopy;
  if (!pc) return false;
  if (pc.after_passes >= 0) return dirtySyncCount > pc.after_passes;
  return pc.at_ns >= 0 && tNs >= pc.at_ns;
}

/**
 * Bytes of a multifd packet besides its pages, QEMU 7.2: MultiFDPacket_t
 * (320 bytes) and its offset array, sized for a full packet (128 pages of
 * 4 KiB) whatever the packet holds.
 */
const MULTIFD_PACKET_OVERHEAD = 320 + 8 * 128;
const PAGE = 4096;

/** The migration result's fields for today's features, from the traces and the last query-migrate. */
export function modernResult(
  f: QemuFeatures,
  srcTrace: readonly TraceEvent[],
  dstTrace: readonly TraceEvent[],
  last: { readonly 'xbzrle-cache'?: Record<string, number> },
  postcopyStartNs: number,
  blocktimeMs: number,
): QemuModernResult {
  const channels = multifdChannels(srcTrace);
  const ring = dirtyRingFigures(srcTrace);
  const faults = postcopyFaults(dstTrace);
  const ns = (ms: number) => Math.round(ms * 1e6);
  const x = last['xbzrle-cache'] ?? {};
  return {
    multifd: f.multifd_channels === null ? null : {
      channels: f.multifd_channels,
      transferred: channels.map((c) => c.normal_pages * PAGE + c.packets * MULTIFD_PACKET_OVERHEAD),
      packets: channels.map((c) => c.packets),
      normal_pages: channels.map((c) => c.normal_pages),
    },
    postcopy: f.postcopy === null ? null : {
      started_at_ns: postcopyStartNs,
      faults: faults.faults,
      fault_latency_p50_ns: ns(quantile(faults.latencies_ms, 0.5)),
      fault_latency_p99_ns: ns(quantile(faults.latencies_ms, 0.99)),
      fault_latency_max_ns: ns(quantile(faults.latencies_ms, 1)),
      stall_ns: blocktimeMs < 0 ? -1 : ns(blocktimeMs),
      preempt: f.postcopy.preempt,
      unanswered: faults.unanswered,
    },
    dirty_tracking: f.dirty_ring_size > 0 ? 'ring' : 'log',
    ring_full_exits: ring.ring_full_exits,
    dirty_ring: f.dirty_ring_size > 0 ? { size: f.dirty_ring_size, ...ring, reap_hold_max_ns: ring.reap_max_us * 1000 } : null,
    xbzrle: f.xbzrle_cache_bytes === null ? null : {
      cache_size: x['cache-size'] ?? f.xbzrle_cache_bytes,
      bytes: x['bytes'] ?? 0,
      pages: x['pages'] ?? 0,
      cache_miss: x['cache-miss'] ?? 0,
      cache_miss_rate: x['cache-miss-rate'] ?? 0,
      encoding_rate: x['encoding-rate'] ?? 0,
      overflow: x['overflow'] ?? 0,
    },
  };
}
