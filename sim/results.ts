// The result of a run as one JSON-ready object (what `latsim run --json`
// prints), and the evaluation of the scenario's budgets against it. Every
// field is derived from the world after the run; nothing here measures time.
import type { AnyWorld } from './world.ts';
import type { Budget, BudgetKey } from './scenario/scenario.ts';
import type { DrainIteration } from './block/block-layer.ts';
import type { CompletionAttempt, QueryMigrate } from './migration/migration.ts';
import type { SyncRecord } from './migration/ram.ts';
import type { XbzrleStats } from './migration/xbzrle.ts';
import type { PollInfo } from './main-loop/aio.ts';
import { attribute, type AttributionChain } from './instrument/attribution.ts';

export type Outcome = 'ok' | 'liveness' | 'invariant';

export interface HandlerResult {
  name: string;
  kind: string;
  thread: string;
  count: number;
  p50_ns: number;
  p99_ns: number;
  max_ns: number;
  total_ns: number;
}

/** One thread of the run: its longest blocked stretch and the handlers it ran. */
export interface ThreadResult {
  /** main-loop, vcpuN, migration, an IOThread's id, vhost-<netdev>. */
  name: string;
  kind: 'main-loop' | 'vcpu' | 'migration' | 'iothread' | 'vhost' | 'other';
  /**
   * The longest time the thread could not run its handlers: for an event loop
   * (main loop, IOThread, vhost worker) from its wait's return to its next
   * wait; for a vCPU its longest stall; for the migration thread its longest
   * wait (the BQL, an AioContext lock, a drain).
   */
  blocked_max_ns: number;
  blocked_max_at_ns: number;
  /** Names of the handlers that ran on it, sorted. */
  handlers: string[];
  /** An IOThread's adaptive polling (QEMU's poll-max-ns, poll-grow, poll-shrink and what they did). */
  poll?: {
    poll_max_ns: number;
    poll_grow: number;
    poll_shrink: number;
    poll_ns: number;
    poll_ns_max: number;
    polled_ns: number;
    poll_hits: number;
    grows: number;
    shrinks: number;
    iterations: number;
  };
}

export interface BudgetResult {
  name: string;
  limit: number;
  value: number;
  unit: 'ns' | 'count';
  pass: boolean;
}

/** Postcopy's figures (times in ns). */
export interface PostcopyResult {
  /** When postcopy_start began; null: migrate-start-postcopy never took effect. */
  started_at_ns: number | null;
  /** Guest accesses on the destination that waited for a missing page. */
  faults: number;
  fault_latency_p50_ns: number;
  fault_latency_p99_ns: number;
  fault_latency_max_ns: number;
  /** The guest's total stall on the destination waiting for pages (all vCPUs). */
  stall_ns: number;
  /** The postcopy-preempt capability. */
  preempt: boolean;
  /** Pages the source sent because the destination asked for them. */
  requested_pages: number;
  /** Pages the background stream sent after the switch. */
  background_pages: number;
  /** QEMU: postcopy-requests: page requests the source received. */
  postcopy_requests: number;
  /** Times the migration entered postcopy-paused, and was recovered from it. */
  paused: number;
  recovered: number;
  /** Pages lost in flight to link-breaks (sent again after recovery). */
  lost_in_flight: number;
}

export interface MigrationResult {
  status: string;
  'total-time': number;
  'setup-time': number;
  /** QEMU's downtime: the source's stop to its last write (ms). */
  downtime: number;
  /** What the guest saw: the source's stop to the destination's start (ms; QEMU has no such field). */
  guest_downtime: number;
  /** The QEMU version the model followed. */
  qemu_version: string;
  /** Each auto-converge step: its time since the run's start and the percentage it set (cpu-throttle-percentage). */
  throttle_steps: { at_ms: number; pct: number }[];
  'expected-downtime': number;
  ram: QueryMigrate['ram'];
  downtime_phases: Record<'stop' | 'drain' | 'flush' | 'final_ram' | 'device_state' | 'resume', number> | null;
  completion_attempts: number;
  rollbacks: number;
  verified: boolean;
  policy: string[];
  mode: string;
  fail_reason: string;
  cpu_throttle_percentage: number;
  /** The same, under QEMU's query-migrate name. */
  'cpu-throttle-percentage': number;
  /** The multifd channels, or null when the capability is off. */
  multifd: MultifdResult | null;
  /** QEMU's query-migrate xbzrle-cache counters, or null when the capability is off. */
  xbzrle: XbzrleStats | null;
  /** How KVM tracked dirty pages: the dirty log (KVM_GET_DIRTY_LOG) or the dirty ring. */
  dirty_tracking: 'log' | 'ring';
  /** KVM_EXIT_DIRTY_RING_FULL exits (0 with the log). */
  ring_full_exits: number;
  /** The dirty ring's figures; null with the log. */
  dirty_ring: {
    size: number;
    ring_full_exits: number;
    /** kvm_dirty_ring_reap calls that collected entries, and the entries. */
    reaps: number;
    reaped_pages: number;
    /** The longest reap (all of it under the BQL). */
    reap_hold_max_ns: number;
  } | null;
  /** The dirty log's figures; null with the ring. */
  dirty_log: { manual_protect: boolean; clear_bitmap_shift: number; clears: number } | null;
  /** QEMU 8.1 query-migrate: the largest throttle_us_per_full (us); 0 without dirty-limit. */
  'dirty-limit-throttle-time-per-round': number;
  /** QEMU 8.1 query-migrate: the ring-full time at the vCPUs' mean dirty rate (us); 0 without dirty-limit. */
  'dirty-limit-ring-full-time': number;
  /** Dirty-limit's state per vCPU, with the dirty-limit policy; null otherwise. */
  dirty_limit: {
    vcpu_dirty_limit: number;
    period_ms: number;
    /** When it was put in service (ms since the run's start); -1: never triggered. */
    started_at_ms: number;
    periods: number;
    vcpus: { name: string; quota: number; current_rate: number; throttle_us_per_full: number; sleeps: number; sleep_ns: number; ring_full_exits: number }[];
  } | null;
  attempts: CompletionAttempt[];
  iterations: SyncRecord[];
  snapshots: QueryMigrate[];
  transitions: { t_ns: number; from: string; to: string }[];
  /** null when postcopy is off. */
  postcopy: PostcopyResult | null;
}

export interface MultifdResult {
  /** multifd-channels. */
  channels: number;
  /** Bytes each channel's stream carried (packet headers and pages); with the main stream's they make ram.transferred. */
  transferred: number[];
  /** Packets each channel wrote (page packets and SYNC packets). */
  packets: number[];
  /** multifd_send_sync_main calls, and the migration thread's time waiting in them for the channels. */
  sync_waits: number;
  sync_wait_total_ns: number;
  sync_wait_max_ns: number;
  /** Who found zero pages: none, legacy (the migration thread) or multifd (the channels). */
  zero_page_detection: string;
}

export interface RunResult {
  scenario: string;
  file: string;
  seed: number;
  outcome: Outcome;
  error: string | null;
  trace_sha256: string;
  events: number;
  sim_time_ns: number;
  wall_ms: number;
  handlers: HandlerResult[];
  /** Every thread: main-loop, vcpuN, migration, each IOThread by id, each vhost worker. */
  threads: ThreadResult[];
  slow: { name: string; kind: string; thread: string; at_ns: number; duration_ns: number; waited_on: string; waited_ns: number; stack: readonly string[] }[];
  main_loop: { blocked_max_ns: number; blocked_max_at_ns: number; blocked_p99_ns: number; iterations: number };
  bql: {
    wait_max_ns: number;
    hold_max_ns: number;
    table: { thread: string; site: string; waits: number; wait_total_ns: number; wait_max_ns: number; holds: number; hold_total_ns: number; hold_max_ns: number }[];
  };
  guest: {
    ping: { sent: number; answered: number; lost: number; late: number; rtt_p50_ns: number; rtt_p99_ns: number; rtt_max_ns: number };
    userspace: { progress: number; gap_max_ns: number; gap_max_at_ns: number };
    vcpu_stall_max_ns: number;
    vcpus: { name: string; exits: number; stall_max_ns: number; stall_max_at_ns: number; stall_total_ns: number }[];
    dirty_writes: number;
  };
  block: { name: string; reads: number; writes: number; flushes: number; errors: number; merged: number; restarted: number; in_flight: number }[];
  drain: DrainIteration[];
  migration: MigrationResult | null;
  /** Chains of causes, one per guest-visible stall over the threshold and per downtime. */
  attribution: AttributionChain[];
  expect: BudgetResult[];
  pass: boolean;
  /** Series for plots (not part of the fingerprint). */
  series: {
    ping: { t_ns: number; rtt_ns: number }[];
    userspace: { t_ns: number; progress: number }[];
    main_loop_polls: PollInfo[];
  };
}

export function collectResult(
  world: AnyWorld,
  seed: number,
  events: number,
  outcome: Outcome,
  error: string | null,
  traceSha256: string,
): RunResult {
  const { machine: m, guest, devices, migration, scenario } = world;
  const now = world.platform.nowNs();
  const inst = m.inst;
  const handlers = inst.handlerList().map((h) => ({
    name: h.name, kind: h.kind, thread: h.thread, count: h.hist.count,
    p50_ns: h.hist.quantile(0.5), p99_ns: h.hist.quantile(0.99), max_ns: h.hist.maxNs, total_ns: h.hist.sumNs,
  }));
  let sent = 0, answered = 0, lost = 0, late = 0;
  let p50 = 0, p99 = 0, max = 0;
  const pingSeries: { t_ns: number; rtt_ns: number }[] = [];
  for (const n of devices.net) {
    sent += n.peer.sent;
    answered += n.peer.answered;
    lost += n.peer.lost(now);
    late += n.peer.late;
    p50 = Math.max(p50, n.peer.rtt.quantile(0.5));
    p99 = Math.max(p99, n.peer.rtt.quantile(0.99));
    max = Math.max(max, n.peer.rtt.maxNs);
    pingSeries.push(...n.peer.samples);
  }
  const bqlTable = m.bql.table().map((s) => ({
    thread: s.thread, site: s.site, waits: s.waits, wait_total_ns: s.waitTotalNs, wait_max_ns: s.waitMaxNs,
    holds: s.holds, hold_total_ns: s.holdTotalNs, hold_max_ns: s.holdMaxNs,
  }));
  const result: RunResult = {
    scenario: scenario.name,
    file: scenario.file,
    seed,
    outcome,
    error,
    trace_sha256: traceSha256,
    events,
    sim_time_ns: now,
    wall_ms: 0,
    handlers,
    threads: threadResults(world, handlers),
    // In start order, outer handlers before the ones they ran.
    slow: inst.slow.map((s) => ({ ...s })).sort((a, b) => a.at_ns - b.at_ns || a.stack.length - b.stack.length),
    main_loop: {
      blocked_max_ns: inst.mainLoopBlocked.maxNs,
      blocked_max_at_ns: inst.mainLoopBlockedMaxAtNs,
      blocked_p99_ns: inst.mainLoopBlocked.quantile(0.99),
      iterations: m.mainLoop.iterations,
    },
    bql: { wait_max_ns: m.bql.waitMaxNs(), hold_max_ns: m.bql.holdMaxNs(), table: bqlTable },
    guest: {
      ping: { sent, answered, lost, late, rtt_p50_ns: p50, rtt_p99_ns: p99, rtt_max_ns: max },
      userspace: {
        progress: guest.userspace.progress,
        gap_max_ns: guest.userspace.gapMaxNs,
        gap_max_at_ns: guest.userspace.gapMaxAtNs,
      },
      vcpu_stall_max_ns: m.vcpuStallMaxNs(),
      vcpus: m.vcpus.map((v) => ({
        name: v.name, exits: v.exits, stall_max_ns: v.stallMaxUntil(now), stall_max_at_ns: v.stallMaxAtNs,
        stall_total_ns: v.stallTotalNs,
      })),
      dirty_writes: guest.ram.writes,
    },
    block: devices.blk.map((b) => ({
      name: b.dev.spec.name, reads: b.backend.counts.read, writes: b.backend.counts.write,
      flushes: b.backend.counts.flush, errors: b.backend.counts.errors, merged: b.dev.merged,
      restarted: b.dev.restarted, in_flight: b.backend.inFlight,
    })),
    drain: [...devices.block.iterations],
    migration: migration ? migrationResult(world) : null,
    attribution: attribute(world),
    expect: [],
    pass: true,
    series: {
      ping: pingSeries.sort((a, b) => a.t_ns - b.t_ns),
      userspace: guest.userspace.samples,
      main_loop_polls: [...m.mainLoop.aioContext.polls],
    },
  };
  result.expect = evaluateBudgets(scenario.expect, result);
  const slowOk = scenario.expect_slow.every((name) => result.slow.some((s) => s.name.includes(name)));
  if (scenario.expect_slow.length > 0) {
    result.expect.push({ name: 'slow_handlers', limit: scenario.expect_slow.length, value: scenario.expect_slow.filter((n) => result.slow.some((s) => s.name.includes(n))).length, unit: 'count', pass: slowOk });
  }
  if (scenario.expect_migration_status !== null) {
    const ok = result.migration?.status === scenario.expect_migration_status;
    result.expect.push({ name: `migration_status=${scenario.expect_migration_status}`, limit: 1, value: ok ? 1 : 0, unit: 'count', pass: ok });
  }
  result.pass = outcome === 'ok' && result.expect.every((e) => e.pass);
  return result;
}

/** QEMU's threads as the run had them, in a fixed order: main loop, vCPUs, migration, IOThreads, vhost workers. */
function threadResults(world: AnyWorld, handlers: readonly HandlerResult[]): ThreadResult[] {
  const { machine: m, devices, migration } = world;
  const now = world.platform.nowNs();
  const inst = m.inst;
  const namesOn = (thread: string) => [...new Set(handlers.filter((h) => h.thread === thread).map((h) => h.name))].sort();
  const noted = (thread: string) => inst.blocked.get(thread) ?? { maxNs: 0, atNs: 0 };
  const out: ThreadResult[] = [{
    name: 'main-loop', kind: 'main-loop', blocked_max_ns: inst.mainLoopBlocked.maxNs,
    blocked_max_at_ns: inst.mainLoopBlockedMaxAtNs, handlers: namesOn('main-loop'),
  }];
  for (const v of m.vcpus) {
    out.push({ name: v.name, kind: 'vcpu', blocked_max_ns: v.stallMaxUntil(now), blocked_max_at_ns: v.stallMaxAtNs, handlers: namesOn(v.name) });
  }
  if (migration && migration.spec.mode === 'thread' && migration.startNs >= 0) {
    const b = noted('migration');
    out.push({ name: 'migration', kind: 'migration', blocked_max_ns: b.maxNs, blocked_max_at_ns: b.atNs, handlers: namesOn('migration') });
  }
  for (const t of m.iothreads.values()) {
    const b = noted(t.id);
    const ps = t.ctx.pollStats;
    out.push({
      name: t.id, kind: 'iothread', blocked_max_ns: b.maxNs, blocked_max_at_ns: b.atNs, handlers: namesOn(t.id),
      poll: {
        poll_max_ns: t.spec.poll_max_ns, poll_grow: t.spec.poll_grow, poll_shrink: t.spec.poll_shrink,
        poll_ns: t.ctx.pollNs, poll_ns_max: ps.pollNsMax, polled_ns: ps.polledNs, poll_hits: ps.pollHits,
        grows: ps.grows, shrinks: ps.shrinks, iterations: t.iterations,
      },
    });
  }
  for (const n of devices.net) {
    if (!n.vhost) continue;
    const b = noted(n.vhost.thread);
    out.push({ name: n.vhost.thread, kind: 'vhost', blocked_max_ns: b.maxNs, blocked_max_at_ns: b.atNs, handlers: namesOn(n.vhost.thread) });
  }
  // Handlers on any other thread (none in the model today) are not lost.
  const known = new Set(out.map((t) => t.name));
  for (const thread of [...new Set(handlers.map((h) => h.thread))].sort()) {
    if (known.has(thread)) continue;
    const b = noted(thread);
    out.push({ name: thread, kind: 'other', blocked_max_ns: b.maxNs, blocked_max_at_ns: b.atNs, handlers: namesOn(thread) });
  }
  return out;
}

function migrationResult(world: AnyWorld): MigrationResult {
  const mig = world.migration!;
  const q = mig.query();
  const ms = (ns: number) => Math.round(ns / 1e6);
  const ph = mig.downtimePhases;
  return {
    status: mig.status,
    'total-time': mig.startNs < 0 ? 0 : q['total-time'],
    'setup-time': ms(mig.setupNs),
    downtime: ms(mig.downtimeNs),
    guest_downtime: ms(mig.guestDowntimeNs),
    qemu_version: world.machine.qemu.profile.version,
    'expected-downtime': q['expected-downtime'],
    ram: q.ram,
    downtime_phases: ph
      ? {
        stop: ms(ph.stop_ns), drain: ms(ph.drain_ns), flush: ms(ph.flush_ns),
        final_ram: ms(ph.final_ram_ns), device_state: ms(ph.device_state_ns), resume: ms(ph.resume_ns),
      }
      : null,
    completion_attempts: mig.attempts.length,
    rollbacks: mig.rollbacks,
    verified: mig.verified,
    policy: [...mig.spec.policy],
    mode: mig.spec.mode,
    fail_reason: mig.failReason,
    cpu_throttle_percentage: mig.ram.throttlePct,
    'cpu-throttle-percentage': mig.ram.throttlePct,
    multifd: mig.multifd
      ? {
        channels: mig.multifd.channels.length,
        transferred: mig.multifd.channels.map((c) => c.transferred),
        packets: mig.multifd.channels.map((c) => c.packets),
        sync_waits: mig.multifd.syncWaits,
        sync_wait_total_ns: mig.multifd.syncWaitTotalNs,
        sync_wait_max_ns: mig.multifd.syncWaitMaxNs,
        zero_page_detection: mig.multifd.detection,
      }
      : null,
    xbzrle: mig.ram.xbzrle ? mig.ram.xbzrle.stats() : null,
    ...dirtyTracking(world),
    throttle_steps: mig.ram.throttleSteps.map((t) => ({ at_ms: Math.round(t.at_ns / 1e6), pct: t.pct })),
    attempts: [...mig.attempts],
    iterations: [...mig.ram.syncs],
    snapshots: [...mig.snapshots],
    transitions: [...mig.transitions],
    postcopy: postcopyResult(world),
  };
}

function postcopyResult(world: AnyWorld): PostcopyResult | null {
  const pc = world.migration!.postcopy;
  if (!pc) return null;
  const h = pc.faultLatency;
  return {
    started_at_ns: pc.startedAtNs < 0 ? null : pc.startedAtNs,
    faults: pc.faults,
    fault_latency_p50_ns: h.quantile(0.5),
    fault_latency_p99_ns: h.quantile(0.99),
    fault_latency_max_ns: h.maxNs,
    stall_ns: pc.stallNs,
    preempt: pc.preempt,
    requested_pages: pc.requestedPages,
    background_pages: pc.backgroundPages,
    postcopy_requests: pc.requests,
    paused: pc.paused,
    recovered: pc.recovered,
    lost_in_flight: pc.lostInFlight,
  };
}

/** The dirty-tracking part of the migration result: log or ring, and dirty-limit. */
function dirtyTracking(world: AnyWorld): Pick<MigrationResult,
  'dirty_tracking' | 'ring_full_exits' | 'dirty_ring' | 'dirty_log' | 'dirty-limit-throttle-time-per-round' | 'dirty-limit-ring-full-time' | 'dirty_limit'> {
  const mig = world.migration!;
  const ring = world.guest.kvmDirtyRing;
  const dl = mig.dirtyLimit;
  return {
    dirty_tracking: ring ? 'ring' : 'log',
    ring_full_exits: ring ? ring.ringFullExits : 0,
    dirty_ring: ring
      ? { size: ring.size, ring_full_exits: ring.ringFullExits, reaps: ring.reaps, reaped_pages: ring.reapedPages, reap_hold_max_ns: ring.reapHoldMaxNs }
      : null,
    dirty_log: ring ? null : { manual_protect: world.guest.ram.manualLog !== null, clear_bitmap_shift: mig.spec.clear_bitmap_shift, clears: mig.ram.logClears },
    'dirty-limit-throttle-time-per-round': dl ? dl.throttleTimePerRound() : 0,
    'dirty-limit-ring-full-time': dl ? dl.ringFullTime() : 0,
    dirty_limit: dl ? {
      vcpu_dirty_limit: dl.spec.vcpu_dirty_limit,
      period_ms: Math.round(dl.spec.period_ns / 1e6),
      started_at_ms: dl.startNs < 0 ? -1 : Math.round(dl.startNs / 1e6),
      periods: dl.periods,
      vcpus: dl.vcpus.map((v, i) => ({
        name: `vcpu${i}`, quota: v.quota, current_rate: v.currentRate, throttle_us_per_full: v.throttleUsPerFull,
        sleeps: v.sleeps, sleep_ns: v.sleepNs, ring_full_exits: ring!.ringFullExitsPerVcpu[i] ?? 0,
      })),
    } : null,
  };
}

/** The value a budget key reads from a result (ns or a count). */
export function budgetValue(key: BudgetKey, r: RunResult): number {
  const mig = r.migration;
  switch (key) {
    case 'main_loop_block': return r.main_loop.blocked_max_ns;
    case 'iothread_block': return r.threads.filter((t) => t.kind === 'iothread').reduce((m, t) => Math.max(m, t.blocked_max_ns), 0);
    case 'bql_wait': return r.bql.wait_max_ns;
    case 'bql_hold': return r.bql.hold_max_ns;
    case 'vcpu_stall': return r.guest.vcpu_stall_max_ns;
    case 'downtime': return mig && mig.status === 'completed' ? mig.downtime * 1e6 : Infinity;
    case 'ping_rtt_p99': return r.guest.ping.rtt_p99_ns;
    case 'ping_lost': return r.guest.ping.lost;
    case 'userspace_progress': return r.guest.userspace.progress;
    case 'userspace_gap': return r.guest.userspace.gap_max_ns;
    case 'migration_time': return mig && mig.status === 'completed' ? mig['total-time'] * 1e6 : Infinity;
    case 'completion_attempts': return mig ? mig.completion_attempts : 0;
    case 'rollbacks': return mig ? mig.rollbacks : 0;
    case 'multifd_sync_wait': return mig?.multifd ? mig.multifd.sync_wait_max_ns : 0;
    case 'postcopy_faults': return mig?.postcopy?.faults ?? 0;
    case 'postcopy_fault_p99': return mig?.postcopy?.fault_latency_p99_ns ?? 0;
    case 'postcopy_fault_max': return mig?.postcopy?.fault_latency_max_ns ?? 0;
    case 'postcopy_stall': return mig?.postcopy?.stall_ns ?? 0;
    case 'postcopy_recovered': return mig?.postcopy?.recovered ?? 0;
    case 'sync_bql_hold': return mig ? mig.iterations.reduce((m, s) => Math.max(m, s.bql_hold_ns), 0) : 0;
  }
}

export function evaluateBudgets(budgets: readonly Budget[], r: RunResult): BudgetResult[] {
  return budgets.map((b) => {
    const value = budgetValue(b.key, r);
    const pass = b.bound === 'max' ? value <= b.limit : value >= b.limit;
    return { name: b.name, limit: b.limit, value: Number.isFinite(value) ? value : -1, unit: b.unit, pass };
  });
}
