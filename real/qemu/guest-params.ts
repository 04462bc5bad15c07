// The QEMU guest payload's side of a scenario: the multiboot command line
// (-append) that makes real/qemu/guest/guest.c run the scenario's workload,
// and the parsing of what it prints on the serial port.
//
// Mapping (what the payload can do of sim/scenario.ts):
//  - every workload's dirty spec becomes one payload workload (at most 4),
//    its rate multiplied by its vCPU count: the payload runs on one vCPU;
//  - page ranges are clipped to start at 2 MiB (the payload, its stack and
//    the BIOS live below) and to end inside RAM;
//  - hot set: the cold share (cold_fraction) goes to pages outside the hot set;
//  - VmSpec.populated: a marker in that share of the pages from 2 MiB up;
//  - the first blk device's io: rate, write share, flush_every, requests of
//    request_bytes (up to 8 KiB) over `sectors` blocks, random or sequential;
//  - exits, net devices, main-loop handlers: not run (listed as unsupported).
// Leaves out: more vCPUs, more disks, page sizes other than 4 KiB.
import type { Scenario } from '../../sim/scenario/scenario.ts';

export const GUEST_MIN_PAGE = 512; // 2 MiB
export const MAX_GUEST_WORKLOADS = 4;

export interface GuestPlan {
  /** The -append string. */
  readonly append: string;
  /** Sum of the workloads' target rates (page writes/s). */
  readonly target_rate: number;
  readonly workloads: readonly { pattern: string; rate: number; first_page: number; pages: number; hot_pages: number; cold_permille: number }[];
  readonly populated_pages: number;
  readonly disk: { rate: number; write_permille: number; flush_every: number; blocks: number; sectors_per_block: number; sequential: boolean } | null;
  /** What of the scenario the payload does not run. */
  readonly unsupported: readonly string[];
}

export interface GuestPlanOptions {
  readonly heartbeatMs: number;
  readonly statusMs: number;
  readonly tickUs: number;
}

const PATTERN: Record<string, string> = { uniform: 'u', hotset: 'h', sequential: 's', increment: 'i' };

export function planGuest(s: Scenario, o: GuestPlanOptions): GuestPlan {
  if (s.vm.page_size !== 4096) throw new RangeError(`the QEMU guest uses 4 KiB pages, not ${s.vm.page_size}`);
  const pages = Math.floor(s.vm.memory_bytes / 4096);
  if (pages < GUEST_MIN_PAGE * 2) throw new RangeError('the QEMU guest needs at least 4 MiB of RAM');
  const unsupported: string[] = [];
  const workloads: GuestPlan['workloads'][number][] = [];
  for (const w of s.guest.workloads) {
    if (w.exits) unsupported.push(`workload exits (${w.exits.rate}/s): not run by the QEMU guest`);
    const d = w.dirty;
    if (!d) continue;
    if (workloads.length === MAX_GUEST_WORKLOADS) {
      unsupported.push(`dirty workloads beyond ${MAX_GUEST_WORKLOADS}`);
      continue;
    }
    const first = Math.min(Math.max(d.first_page, GUEST_MIN_PAGE), pages - 1);
    const count = Math.max(1, Math.min(d.pages, pages - first));
    const hot = Math.max(1, Math.min(d.hot_pages, count));
    workloads.push({
      pattern: PATTERN[d.pattern] ?? 'u',
      rate: Math.round(d.rate * w.vcpus.length),
      first_page: first,
      pages: count,
      hot_pages: hot,
      cold_permille: Math.round(d.cold_fraction * 1000),
    });
  }
  if (s.vm.vcpus > 1) unsupported.push(`${s.vm.vcpus} vCPUs: the QEMU guest runs one vCPU with every workload's rate`);
  if (s.devices.net.length > 0) unsupported.push('net devices: not attached');
  if (s.iothreads.length > 0) unsupported.push('IOThreads: the disk is an IDE disk served by the main loop');
  if (s.main_loop.handlers.length > 0) unsupported.push('synthetic main-loop handlers: QEMU runs its own');
  const populated = Math.max(0, Math.min(pages - GUEST_MIN_PAGE, Math.floor(s.vm.populated * pages)));
  let disk: GuestPlan['disk'] = null;
  const b = s.devices.blk[0];
  if (b) {
    if (s.devices.blk.length > 1) unsupported.push('blk devices after the first');
    const spb = Math.max(1, Math.min(16, Math.floor(b.io.request_bytes / 512)));
    if (b.io.request_bytes > 8192) unsupported.push(`request size ${b.io.request_bytes}: the QEMU guest writes at most 8 KiB per request`);
    disk = {
      rate: Math.round(b.io.rate),
      write_permille: Math.round(b.io.write_fraction * 1000),
      flush_every: b.io.flush_every,
      blocks: Math.max(1, Math.min(b.io.sectors, Math.floor(2 ** 28 / spb) - 1)),
      sectors_per_block: spb,
      sequential: b.io.pattern === 'sequential',
    };
  }
  const parts = [`hb=${o.heartbeatMs}`, `st=${o.statusMs}`, `tick=${o.tickUs}`, `seed=${s.seed >>> 0}`];
  if (populated > 0) parts.push(`pop=${GUEST_MIN_PAGE}:${populated}`);
  workloads.forEach((w, i) => parts.push(`w${i}=${w.pattern}:${w.rate}:${w.first_page}:${w.pages}:${w.hot_pages}:${w.cold_permille}`));
  if (disk) {
    parts.push(`blk=${disk.rate}:${disk.write_permille}:${disk.flush_every}:${disk.blocks}:${disk.sectors_per_block}:${disk.sequential ? 's' : 'r'}`);
  }
  return {
    append: parts.join(' '),
    target_rate: workloads.reduce((a, w) => a + w.rate, 0),
    workloads,
    populated_pages: populated,
    disk,
    unsupported,
  };
}

/** One "S ..." status line of the payload. */
export interface GuestStatus {
  readonly host_ms: number;
  /** Guest TSC ms since the workload began. */
  readonly ms: number;
  readonly pages: number;
  /** Page writes per second over the last status interval. */
  readonly rate: number;
  readonly lost_ticks: number;
  readonly dw: number;
  readonly dr: number;
  readonly df: number;
  readonly de: number;
  readonly dflush_max_us: number;
}

export function parseStatus(text: string, host_ms: number): GuestStatus | null {
  if (!text.startsWith('S ')) return null;
  const kv: Record<string, number> = {};
  for (const m of text.matchAll(/(\w+)=(\d+)/g)) kv[m[1]!] = Number(m[2]);
  return {
    host_ms,
    ms: kv['ms'] ?? 0,
    pages: kv['pages'] ?? 0,
    rate: kv['rate'] ?? 0,
    lost_ticks: kv['lost_ticks'] ?? 0,
    dw: kv['dw'] ?? 0,
    dr: kv['dr'] ?? 0,
    df: kv['df'] ?? 0,
    de: kv['de'] ?? 0,
    dflush_max_us: kv['dflush_max_us'] ?? 0,
  };
}

/** Host arrival times (ms) of heartbeat lines. */
export function heartbeats(lines: readonly { host_ms: number; text: string }[]): number[] {
  return lines.filter((l) => l.text.startsWith('H ')).map((l) => l.host_ms);
}

/** The longest gap between consecutive heartbeats in [from, to] (host ms). */
export function maxGap(times: readonly number[], from = -Infinity, to = Infinity): { gap_ms: number; at_ms: number } {
  let gap = 0;
  let at = -1;
  for (let i = 1; i < times.length; i++) {
    const a = times[i - 1]!;
    const b = times[i]!;
    if (a < from || b > to) continue;
    if (b - a > gap) {
      gap = b - a;
      at = a;
    }
  }
  return { gap_ms: gap, at_ms: at };
}
