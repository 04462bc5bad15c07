// The text report of a run: the threshold reporter's lines (by name, thread,
// start time and what the handler waited on), the per-handler table, the BQL
// table, what the guest felt, the drain/flush poll iterations (the talk's
// "qaw" lines), migration iterations and downtime phases, the multifd
// channels and the XBZRLE cache, and the budgets.
import type { RunResult } from '../sim/results.ts';
import { formatBytes, formatNs } from '../sim/instrument/format.ts';

const sec = (ns: number) => `${(ns / 1e9).toFixed(6)} s`;

/** A plain table: the first `left` columns left-aligned, the rest right-aligned. */
function table(headers: string[], rows: (string | number)[][], left = 1): string {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  return cells
    .map((r) => r.map((c, i) => (i < left ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd())
    .join('\n');
}

/** One threshold-reporter line, the named successor of "fd read: 0x7ffff7df2390 358 ms". */
export function slowLine(s: RunResult['slow'][number]): string {
  const waited = s.waited_on === 'running' ? 'running' : `waiting ${formatNs(s.waited_ns)} on ${s.waited_on}`;
  return `${s.kind}: ${s.name} ${formatNs(s.duration_ns)} on ${s.thread} at ${sec(s.at_ns)} (${waited})`;
}

export function textReport(r: RunResult, options: { maxSlow?: number } = {}): string {
  const out: string[] = [];
  const maxSlow = options.maxSlow ?? 50;
  out.push(`latsim: ${r.scenario} (${r.file}), seed ${r.seed}`);
  out.push(`simulated ${formatNs(r.sim_time_ns)} in ${r.wall_ms} ms wall, ${r.events} events; trace sha256 ${r.trace_sha256}`);
  if (r.error) out.push(`${r.outcome.toUpperCase()}: ${r.error}`);

  out.push('', `handlers over the threshold: ${r.slow.length}`);
  for (const s of r.slow.slice(0, maxSlow)) out.push(`  ${slowLine(s)}`);
  if (r.slow.length > maxSlow) out.push(`  ... ${r.slow.length - maxSlow} more (see --json)`);

  out.push('', 'handlers:');
  out.push(indent(table(['name', 'kind', 'thread', 'count', 'p50', 'p99', 'max'], r.handlers.map((h) => [
    h.name, h.kind, h.thread, h.count, formatNs(h.p50_ns), formatNs(h.p99_ns), formatNs(h.max_ns),
  ]), 3)));

  out.push('', `main loop: blocked at most ${formatNs(r.main_loop.blocked_max_ns)} (from ${sec(r.main_loop.blocked_max_at_ns)}), ` +
    `p99 ${formatNs(r.main_loop.blocked_p99_ns)}, ${r.main_loop.iterations} iterations`);
  const threads = r.threads ?? [];
  if (threads.length > 0) {
    out.push('', 'threads (blocked: the longest time the thread could not run its handlers):');
    out.push(indent(table(['thread', 'kind', 'blocked max', 'from', 'handlers'], threads.map((t) => [
      t.name, t.kind, formatNs(t.blocked_max_ns), sec(t.blocked_max_at_ns), t.handlers.length,
    ]), 2)));
    for (const t of threads) {
      const p = t.poll;
      if (!p) continue;
      out.push(`  ${t.name} polling: poll-max-ns ${formatNs(p.poll_max_ns)}, poll_ns ${formatNs(p.poll_ns)} (at most ${formatNs(p.poll_ns_max)}), ` +
        `busy-polled ${formatNs(p.polled_ns)}, ${p.poll_hits} polls found an event, ${p.grows} grows, ${p.shrinks} shrinks, ${p.iterations} aio_poll iterations`);
    }
  }

  out.push('', `BQL: wait max ${formatNs(r.bql.wait_max_ns)}, hold max ${formatNs(r.bql.hold_max_ns)}`);
  out.push(indent(table(['thread', 'site', 'waits', 'wait max', 'wait total', 'holds', 'hold max', 'hold total'], r.bql.table.map((b) => [
    b.thread, b.site, b.waits, formatNs(b.wait_max_ns), formatNs(b.wait_total_ns), b.holds, formatNs(b.hold_max_ns), formatNs(b.hold_total_ns),
  ]), 2)));

  const g = r.guest;
  out.push('', 'guest:');
  if (g.ping.sent > 0) {
    out.push(`  ping: ${g.ping.sent} sent, ${g.ping.answered} answered, ${g.ping.lost} lost (${g.ping.late} late); ` +
      `rtt p50 ${formatNs(g.ping.rtt_p50_ns)}, p99 ${formatNs(g.ping.rtt_p99_ns)}, max ${formatNs(g.ping.rtt_max_ns)}`);
  }
  out.push(`  userspace: ${g.userspace.progress} quanta of progress, longest gap ${formatNs(g.userspace.gap_max_ns)} (from ${sec(g.userspace.gap_max_at_ns)})`);
  out.push(`  vCPU stall max ${formatNs(g.vcpu_stall_max_ns)}: ` +
    g.vcpus.map((v) => `${v.name} ${formatNs(v.stall_max_ns)} at ${sec(v.stall_max_at_ns)}, ${v.exits} exits`).join('; '));

  for (const b of r.block) {
    out.push(`  ${b.name}: ${b.reads} reads, ${b.writes} writes, ${b.flushes} flushes, ${b.errors} errors, ` +
      `${b.merged} merged, ${b.restarted} restarted, ${b.in_flight} in flight at the end`);
  }

  if (r.drain.length > 0) {
    out.push('', 'drain/flush: nested aio_poll(qemu_aio_context, true) under the BQL:');
    for (const d of r.drain.slice(0, 200)) {
      const who = d.site ? `${d.site} (blk_${d.phase})` : `bdrv_${d.phase}_all`;
      out.push(`  ${who} aio_poll ${d.n}: ${Math.round(d.elapsed_ns / 1e6)} ms rfd ${d.rfd} wfd ${d.wfd}` +
        ` (waited ${formatNs(d.waited_ns)}, ${d.in_flight} in flight${d.ctx ? `, requests in ${d.ctx}` : ''})`);
    }
    if (r.drain.length > 200) out.push(`  ... ${r.drain.length - 200} more`);
  }

  const m = r.migration;
  if (m) {
    out.push('', `migration: ${m.status}${m.fail_reason ? ` (${m.fail_reason})` : ''}; policy ${m.policy.join('+')}, ${m.mode} mode`);
    out.push(`  total-time ${m['total-time']} ms, setup-time ${m['setup-time']} ms, downtime ${m.downtime} ms, ` +
      `expected-downtime ${m['expected-downtime']} ms`);
    out.push(`  ram: transferred ${formatBytes(m.ram.transferred)}, remaining ${formatBytes(m.ram.remaining)}, ` +
      `total ${formatBytes(m.ram.total)}, duplicate ${m.ram.duplicate}, normal ${m.ram.normal}, ` +
      `dirty-pages-rate ${m.ram['dirty-pages-rate']}/s, mbps ${m.ram.mbps}, dirty-sync-count ${m.ram['dirty-sync-count']}`);
    out.push(`  completion attempts ${m.completion_attempts}, rollbacks ${m.rollbacks}, cpu throttle ${m.cpu_throttle_percentage}%, ` +
      `destination ${m.verified ? 'verified' : 'not verified'}`);
    const mf = m.multifd;
    if (mf) {
      out.push(`  multifd: ${mf.channels} channels, zero-page-detection ${mf.zero_page_detection}; ` +
        `${mf.sync_waits} syncs, the migration thread waited ${formatNs(mf.sync_wait_total_ns)} in all, ${formatNs(mf.sync_wait_max_ns)} at most`);
      const main = m.ram.transferred - mf.transferred.reduce((a, b) => a + b, 0);
      const seconds = m['total-time'] / 1e3;
      const rate = (bytes: number) => (seconds > 0 ? `${formatBytes(Math.round(bytes / seconds))}/s` : '-');
      out.push(indent(table(['stream', 'packets', 'transferred', 'throughput'], [
        ...mf.transferred.map((t, i) => [`multifd_send_${i}`, mf.packets[i]!, formatBytes(t), rate(t)]),
        ['main', '-', formatBytes(main), rate(main)],
      ]), 4));
    }
    const xb = m.xbzrle;
    if (xb) {
      out.push(`  xbzrle: cache ${formatBytes(xb.cache_size)}; ${xb.pages} pages encoded into ${formatBytes(xb.bytes)}, ` +
        `${xb.cache_miss} cache misses (cache-miss-rate ${round3(xb.cache_miss_rate)}), encoding-rate ${round3(xb.encoding_rate)}, ${xb.overflow} overflows`);
    }
    out.push(...dirtyTrackingLines(m));
    for (const a of m.attempts) {
      const p = a.phases;
      out.push(`  attempt ${a.n} at ${sec(a.at_ns)}: ${a.outcome}${a.reason ? ` (${a.reason})` : ''} after ${formatNs(a.downtime_ns)}: ` +
        `stop ${formatNs(p.stop_ns)}, drain ${formatNs(p.drain_ns)}, flush ${formatNs(p.flush_ns)}, ` +
        `final ram ${formatNs(p.final_ram_ns)}, device state ${formatNs(p.device_state_ns)}, resume ${formatNs(p.resume_ns)}`);
    }
    const pc = m.postcopy;
    if (pc) {
      out.push(`  postcopy${pc.preempt ? ' (preempt)' : ''}: ${pc.started_at_ns === null ? 'never started' : `started at ${sec(pc.started_at_ns)}`}, ` +
        `${pc.faults} faults, latency p50 ${formatNs(pc.fault_latency_p50_ns)}, p99 ${formatNs(pc.fault_latency_p99_ns)}, ` +
        `max ${formatNs(pc.fault_latency_max_ns)}, guest stall ${formatNs(pc.stall_ns)}`);
      out.push(`    pages: ${pc.requested_pages} requested (${pc.postcopy_requests} requests), ${pc.background_pages} background; ` +
        `paused ${pc.paused}, recovered ${pc.recovered}, ${pc.lost_in_flight} pages lost in flight`);
    }
    if (m.iterations.length > 0) {
      out.push('  iterations (dirty bitmap syncs):');
      const its = m.iterations.length > 40 ? [...m.iterations.slice(0, 20), ...m.iterations.slice(-20)] : m.iterations;
      out.push(indent(table(['sync', 'at', 'new dirty', 'dirty pages', 'remaining', 'transferred'], its.map((i) => [
        i.n, sec(i.at_ns), i.new_dirty, i.dirty_pages, formatBytes(i.remaining_bytes), formatBytes(i.transferred_bytes),
      ])), 4));
    }
  }

  if (r.attribution.length > 0) {
    out.push('', `attribution (${r.attribution.length} stalls and downtimes over the threshold):`);
    const shown = new Set<string>();
    let n = 0;
    for (const a of r.attribution) {
      // Many vCPUs stall for one cause: show each distinct chain once.
      const key = a.chain.slice(1).join('|') + a.subject;
      if (shown.has(key) && a.subject !== 'downtime') continue;
      shown.add(key);
      if (++n > 20) break;
      out.push(`  at ${sec(a.at_ns)}: ${a.text}`);
    }
  }

  if (r.expect.length > 0) {
    out.push('', 'budgets:');
    for (const e of r.expect) {
      const fmt = (v: number) => (e.unit === 'ns' ? (v < 0 ? 'never' : formatNs(v)) : String(v));
      out.push(`  ${e.pass ? 'ok  ' : 'FAIL'} ${e.name}: ${fmt(e.value)} (limit ${fmt(e.limit)})`);
    }
  }
  out.push('', r.outcome !== 'ok' ? `${r.outcome}` : r.pass ? 'all budgets held' : 'a budget failed');
  return out.join('\n');
}

function round3(v: number): number {
  return Math.round(v * 1000) / 1000;
}

function indent(s: string, n = 2): string {
  const pad = ' '.repeat(n);
  return s.split('\n').map((l) => pad + l).join('\n');
}

/** How the migration's syncs read dirty pages: the log or the ring, what the sync held the BQL for, dirty-limit. */
function dirtyTrackingLines(m: NonNullable<RunResult['migration']>): string[] {
  const hold = formatNs(m.iterations.reduce((x, i) => Math.max(x, i.bql_hold_ns), 0));
  const out: string[] = [];
  const ring = m.dirty_ring;
  if (ring) {
    out.push(`  dirty ring: ${ring.size} entries per vCPU, ${ring.ring_full_exits} ring-full exits, ${ring.reaps} reaps of ` +
      `${ring.reaped_pages} pages (longest ${formatNs(ring.reap_hold_max_ns)}); longest sync BQL hold ${hold}`);
  } else {
    const log = m.dirty_log!;
    out.push(`  dirty log${log.manual_protect ? ` with manual protection: ${log.clears} KVM_CLEAR_DIRTY_LOG of 2^${log.clear_bitmap_shift}-page chunks` : ''}; ` +
      `longest sync BQL hold ${hold}`);
  }
  const dl = m.dirty_limit;
  if (dl) {
    out.push(`  dirty-limit: vcpu-dirty-limit ${dl.vcpu_dirty_limit} MB/s every ${dl.period_ms} ms, ` +
      `${dl.started_at_ms < 0 ? 'never triggered' : `in service from ${(dl.started_at_ms / 1000).toFixed(3)} s`}; ` +
      `throttle per round ${m['dirty-limit-throttle-time-per-round']} us, ring-full time ${m['dirty-limit-ring-full-time']} us`);
    for (const v of dl.vcpus) {
      out.push(`    ${v.name}: ${v.current_rate} MB/s, throttle ${v.throttle_us_per_full} us per full ring, ` +
        `slept ${formatNs(v.sleep_ns)} in ${v.sleeps} sleeps after ${v.ring_full_exits} ring-full exits`);
    }
  }
  return out;
}
