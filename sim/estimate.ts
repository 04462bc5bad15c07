// What a run will cost before it runs: an estimate of the host memory the
// model will hold and of the events it will fire, from the scenario alone, so
// the command line can refuse a scenario that cannot fit (latsim run
// --max-memory) instead of running until the machine swaps. Memory is the
// model's own per-page and per-block state (bitmaps, and the versions of the
// pages the guest writes: sim/guest/ram.ts), plus what grows with the run:
// userspace progress samples, ping samples, packets queued on the tap, the
// migration's query-migrate snapshots, multifd's bitmap of pages sent since
// its last sync, the XBZRLE cache's slots, postcopy's copy of the source
// memory and missing bitmap, and the records kept per event (the trace, with
// --trace or --report). Events are estimated from the rates of what fires
// them (vCPU slices, exits, handler activations, pings, packets, block
// requests, migration chunks, multifd packets, postcopy's writes and faults),
// calibrated on the shipped scenarios, and capped by the event bound.
// Leaves out: the JavaScript heap's own slack, which BASE_BYTES covers for
// small runs.
import type { Scenario } from './scenario/scenario.ts';
import type { Path } from './scenario/fields.ts';
import { distMean } from './scenario/fields.ts';
import { DENSE_PAGES_MAX, RAM_BYTES_PER_PAGE, RAM_BYTES_PER_WRITTEN_PAGE, versionBytesMax } from './guest/ram.ts';
import { SEND_CHUNK_BYTES, SNAPSHOTS_MAX } from './migration/migration.ts';
import { BUFFER_DELAY_NS } from './migration/link.ts';
import { MULTIFD_PACKET_SIZE } from './scenario/migration.ts';
import { cacheSlots, XBZRLE_BYTES_PER_SLOT } from './migration/xbzrle.ts';
import { POSTCOPY_CHUNK_BYTES } from './migration/postcopy.ts';
import { ENTRY_BYTES_MAX } from './util/version-table.ts';

/** Node, the model's code and a small run's bookkeeping (a 1 GiB scenario's RSS is 110-170 MiB). */
export const BASE_BYTES = 160 * 2 ** 20;
/** Migration per page: a migration-bitmap bit, and the destination's received, listed and touched bits. */
export const MIGRATION_BYTES_PER_PAGE = 1 / 8 + 3 / 8;
/**
 * The destination per page the guest rewrote: an entry of its table of
 * differences from the initial image (sim/migration/page-versions.ts), 8
 * bytes at a load of a quarter or more; at most 8 bytes per page of RAM (a
 * dense copy, and the table it replaces).
 */
export const DEST_BYTES_PER_REWRITTEN_PAGE = ENTRY_BYTES_MAX;
/** Postcopy per page: the source memory's bitmaps at the switch (modified, listed) and the missing bitmap's bit; its versions besides. */
export const POSTCOPY_BYTES_PER_PAGE = 3 / 8;
/** A disk per request-sized block: the cache's and the stable copy's versions, and the driver's acknowledged version. */
export const DISK_BYTES_PER_BLOCK = 3 * 4;
/** A block written since the last flush: an entry in the backend's dirty set and in a flush's snapshot of it. */
const DIRTY_BLOCK_BYTES = 2 * 40;
/** One userspace progress sample ({t_ns, progress} in an array). */
const SAMPLE_BYTES = 40;
/** One ping: its RTT sample and its entry among the outstanding requests. */
const PING_BYTES = 80;
/** A packet queued on the tap. */
const PACKET_BYTES = 80;
/** A query-migrate snapshot. */
const SNAPSHOT_BYTES = 600;
/** Records kept per event: the trace's (measured 137-240 B per event, with the poll records) or only the small ones. */
const TRACE_BYTES_PER_EVENT = 256;
const RECORD_BYTES_PER_EVENT = 24;

/** Events per occurrence of what fires them, calibrated on the shipped scenarios (an upper estimate). */
const EVENTS_PER = {
  slice: 1.5,
  exit: 4,
  activation: 4,
  ping: 14,
  packet: 8,
  request: 12,
  chunk: 3,
  window: 6,
  multifd_packet: 5,
  fault: 6,
};
/** The main loop's own timers, per simulated second. */
const BACKGROUND_EVENTS_PER_S = 100;

export interface MemoryPart {
  /** What holds the memory, in words, with its arithmetic: "guest RAM and dirty log: 2^32 pages x 4.125 B". */
  readonly what: string;
  readonly bytes: number;
  /** The scenario field that drives it, for the error message's file:line. */
  readonly path: Path;
}

export interface MemoryEstimate {
  readonly bytes: number;
  /** Events the run is expected to fire (at most the event bound). */
  readonly events: number;
  /** The parts, largest first. */
  readonly parts: readonly MemoryPart[];
}

/** The events a run of s is expected to fire, at most its event bound. */
export function estimateEvents(s: Scenario): number {
  const perS = eventsPerSecond(s);
  return Math.min(s.limits.max_events, Math.ceil(perS * (s.duration_ns / 1e9) + postcopyEvents(s)));
}

/**
 * Postcopy's burst: at most all of memory in its small writes, and while it
 * lasts (the link's time for it, the breaks and their recovery) each vCPU
 * faulting at most once per round trip and at most as often as it writes.
 */
function postcopyEvents(s: Scenario): number {
  const m = s.migration;
  if (!m?.postcopy) return 0;
  const bytes = s.vm.memory_bytes;
  const seconds = bytes / m.link.bandwidth + m.link_breaks.reduce((t, b) => t + (b.for_ns + m.postcopy!.recover_after_ns) / 1e9, 0);
  const writes = s.guest.workloads.reduce((t, w) => t + (w.dirty ? w.dirty.rate * w.vcpus.length : 0), 0);
  const perRoundTrip = (s.vm.vcpus * 1e9) / Math.max(2 * m.link.latency_ns, 10_000);
  const faults = Math.min(perRoundTrip, writes) * seconds;
  return (bytes / POSTCOPY_CHUNK_BYTES) * EVENTS_PER.chunk + faults * EVENTS_PER.fault;
}

function eventsPerSecond(s: Scenario): number {
  let e = BACKGROUND_EVENTS_PER_S + s.vm.vcpus * (1e9 / s.guest.slice_ns) * EVENTS_PER.slice;
  for (const w of s.guest.workloads) if (w.exits) e += w.exits.rate * w.vcpus.length * EVENTS_PER.exit;
  for (const h of s.main_loop.handlers) e += (1e9 / Math.max(1, distMean(h.interval))) * EVENTS_PER.activation;
  for (const n of s.devices.net) {
    if (n.peer.ping_interval_ns > 0) e += (1e9 / n.peer.ping_interval_ns) * EVENTS_PER.ping;
    e += n.peer.background_rate * EVENTS_PER.packet;
  }
  for (const b of s.devices.blk) {
    e += b.io.rate * EVENTS_PER.request;
    if (b.retry_interval_ns > 0) e += 1e9 / b.retry_interval_ns;
  }
  const m = s.migration;
  if (m) {
    const bw = Math.min(m.max_bandwidth, m.link.bandwidth);
    e += (bw / SEND_CHUNK_BYTES) * EVENTS_PER.chunk + (1e9 / BUFFER_DELAY_NS) * EVENTS_PER.window;
    if (m.multifd) e += (bw / MULTIFD_PACKET_SIZE) * EVENTS_PER.multifd_packet;
  }
  return e;
}

/** A count as the messages write it: 2^k for large powers of two, else with thousands separators (as en-US, without loading a locale at every start). */
const fmt = (n: number): string => (Number.isInteger(n) && n >= 2 ** 20 && (n & (n - 1)) === 0 ? `2^${Math.log2(n)}` : groupThousands(Math.round(n)));

function groupThousands(n: number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** The most pages the guest's workloads can rewrite in durS seconds: each workload's range, or its writes if fewer. */
function rewrittenPagesMax(s: Scenario, durS: number): number {
  let n = 0;
  for (const w of s.guest.workloads) if (w.dirty) n += Math.min(w.dirty.pages, Math.ceil(w.dirty.rate * w.vcpus.length * durS));
  return n;
}

/** The host memory a run of s will need, by part. keepTrace: the trace's records are kept (--trace, --report). */
export function estimateMemory(s: Scenario, o: { keepTrace?: boolean } = {}): MemoryEstimate {
  const parts: MemoryPart[] = [];
  const add = (what: string, bytes: number, path: Path) => {
    if (bytes > 0) parts.push({ what, bytes, path });
  };
  const durS = s.duration_ns / 1e9;
  const events = estimateEvents(s);
  const pages = Math.ceil(s.vm.memory_bytes / s.vm.page_size);
  add(`guest RAM's dirty log and bitmaps: ${fmt(pages)} pages x ${RAM_BYTES_PER_PAGE} B`, pages * RAM_BYTES_PER_PAGE, ['vm', 'memory']);
  const written = Math.min(pages, rewrittenPagesMax(s, durS));
  const versionBytes = versionBytesMax(pages, written);
  add(pages <= DENSE_PAGES_MAX
    ? `guest RAM's versions: ${fmt(pages)} pages x 4 B`
    : `guest RAM's versions: up to ${fmt(written)} written pages x ${RAM_BYTES_PER_WRITTEN_PAGE} B (at most 8 B per page)`, versionBytes, ['vm', 'memory']);
  if (s.migration) {
    add(`migration bitmap and destination: ${fmt(pages)} pages x ${MIGRATION_BYTES_PER_PAGE} B`, pages * MIGRATION_BYTES_PER_PAGE, ['vm', 'memory']);
    add(`destination's differences: up to ${fmt(written)} rewritten pages x ${DEST_BYTES_PER_REWRITTEN_PAGE} B (at most 8 B per page)`,
      Math.min(written * DEST_BYTES_PER_REWRITTEN_PAGE, pages * 8), ['guest', 'workloads']);
  }
  if (s.migration?.postcopy) {
    add(`postcopy's copy of the source memory and missing pages: ${fmt(pages)} pages x ${POSTCOPY_BYTES_PER_PAGE} B and the versions again`,
      pages * POSTCOPY_BYTES_PER_PAGE + versionBytes, ['migration', 'postcopy']);
  }
  if (s.vm.dirty_ring_size > 0) {
    const entries = s.vm.vcpus * s.vm.dirty_ring_size;
    add(`dirty rings: ${fmt(pages)} pages x 1/8 B of write protection and ${fmt(entries)} entries x 4 B`, pages / 8 + entries * 4, ['vm', 'dirty_ring_size']);
  }
  if (s.vm.manual_dirty_log_protect) add(`the slot's dirty bitmap (manual protection): ${fmt(pages)} pages x 1/8 B`, pages / 8, ['vm', 'manual_dirty_log_protect']);
  s.devices.blk.forEach((b, i) => {
    const path = ['devices', 'blk', i, 'io', 'disk_size'];
    add(`disk ${b.name}: ${fmt(b.io.sectors)} blocks x ${DISK_BYTES_PER_BLOCK} B`, b.io.sectors * DISK_BYTES_PER_BLOCK, path);
    const dirty = Math.min(b.io.sectors, Math.ceil(b.io.rate * b.io.write_fraction * durS));
    add(`disk ${b.name}: up to ${fmt(dirty)} blocks written before a flush x ${DIRTY_BLOCK_BYTES} B`, dirty * DIRTY_BLOCK_BYTES, path);
  });
  // A sample per quantum of run time; a slice (an event) runs at most slice / quantum of them.
  const samples = Math.min(s.vm.vcpus * Math.ceil(s.duration_ns / s.guest.userspace.quantum_ns), events * Math.ceil(s.guest.slice_ns / s.guest.userspace.quantum_ns));
  add(`userspace progress samples: ${fmt(samples)} (${s.vm.vcpus} vCPUs x duration / quantum) x ${SAMPLE_BYTES} B`, samples * SAMPLE_BYTES, ['guest', 'userspace', 'quantum']);
  s.devices.net.forEach((n, i) => {
    if (n.peer.ping_interval_ns > 0) {
      const pings = Math.min(events, Math.ceil(s.duration_ns / n.peer.ping_interval_ns));
      add(`pings of ${n.name}: ${fmt(pings)} x ${PING_BYTES} B`, pings * PING_BYTES, ['devices', 'net', i, 'peer', 'ping_interval']);
    }
    const packets = Math.min(s.limits.max_events, Math.ceil(n.peer.background_rate * durS));
    add(`packets queued on ${n.name}'s tap: up to ${fmt(packets)} x ${PACKET_BYTES} B`, packets * PACKET_BYTES, ['devices', 'net', i, 'peer', 'background']);
  });
  if (s.migration) {
    const snaps = Math.min(SNAPSHOTS_MAX, Math.ceil(s.duration_ns / BUFFER_DELAY_NS) + 1);
    add(`query-migrate snapshots: ${fmt(snaps)} x ${SNAPSHOT_BYTES} B`, snaps * SNAPSHOT_BYTES, ['migration']);
    if (s.migration.multifd) add(`multifd pages sent since the last sync: ${fmt(pages)} pages x 1/8 B`, pages / 8, ['migration', 'multifd']);
    const xb = s.migration.xbzrle;
    if (xb) {
      const slots = cacheSlots(xb.cache_size, s.vm.page_size, pages);
      add(`XBZRLE cache: ${fmt(slots)} slots x ${XBZRLE_BYTES_PER_SLOT} B`, slots * XBZRLE_BYTES_PER_SLOT, ['migration', 'xbzrle', 'cache_size']);
    }
  }
  const perEvent = o.keepTrace ? TRACE_BYTES_PER_EVENT : RECORD_BYTES_PER_EVENT;
  add(`${o.keepTrace ? 'trace records' : 'records'}: ${fmt(events)} events x ${perEvent} B`, events * perEvent, ['duration']);
  parts.sort((a, b) => b.bytes - a.bytes);
  return { bytes: BASE_BYTES + parts.reduce((t, p) => t + p.bytes, 0), events, parts };
}
