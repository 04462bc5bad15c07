// Runs a scenario's VM on KVM for its duration in real time and collects the
// same result object a simulated run gives (sim/results.ts), plus a `real`
// section with what only a real run knows: the payload's own counters, how
// each vCPU's workload was mapped, the loop's blocked time. The migration
// section of the scenario is left out here (latsim real migrate moves a guest
// between two processes: real/migrate.ts).
// Leaves out: the determinism of the simulator (a real trace fingerprint
// differs from run to run).
import type { Scenario } from '../sim/scenario/scenario.ts';
import { collectResult, type Outcome, type RunResult } from '../sim/results.ts';
import { InvariantError } from '../sim/invariant.ts';
import type { MigrationDestination } from '../sim/migration/destination.ts';
import { withoutMigration } from './scenario.ts';
import { RealSession, type RealWorld } from './world.ts';
import { classify } from './errors.ts';

/** What a real run adds to the result. */
export interface RealInfo {
  backend: 'kvm';
  kvm: { api_version: number; manual_dirty_log: boolean; dirty_ring_cap: string | null };
  /** How KVM tracked dirty pages: the dirty log or the dirty ring (vm.dirty_ring_size). */
  dirty_tracking: 'log' | 'ring';
  /** KVM_EXIT_DIRTY_RING_FULL exits (0 with the log). */
  ring_full_exits: number;
  /** The ring's reaps (null with the log). */
  dirty_ring: { size: number; reaps: number; reaped_pages: number; reap_hold_max_ns: number } | null;
  vcpus: {
    name: string;
    workload: string;
    tick_hz: number;
    dirty_rate: number;
    exit_rate: number;
    heartbeat: number;
    pages_written: number;
    exits: number;
    state: number;
  }[];
  net: {
    ring_popped: number;
    ring_used: number;
    kicks: number;
    kicks_suppressed: number;
    replies: number;
    pings_waiting: number;
    broken: string | null;
  } | null;
  loop: { events: number; blocked_waits: number; blocked_ms: number; threads_cpu_ms: Record<string, number> };
  dirty_log_reads: number;
  debug: string[];
}

export interface RealRun<D extends MigrationDestination = MigrationDestination> {
  readonly result: RunResult;
  readonly world: RealWorld<D>;
  readonly error: Error | null;
  readonly real: RealInfo;
}

export interface RealRunOptions {
  readonly keepTrace?: boolean;
  /** Run the payload's triple-fault workload on vCPU 0. */
  readonly crash?: boolean;
}

/** Runs the scenario (without its migration) on KVM for its duration. */
export function realRun(scenario: Scenario, o: RealRunOptions = {}): RealRun {
  const s = RealSession.open(withoutMigration(scenario), { keepTrace: o.keepTrace ?? false, crash: o.crash ?? false });
  try {
    const t0 = performance.now();
    const { outcome, error } = runGuarded(() => s.platform.run(scenario.duration_ns));
    return collectRealRun(s, outcome, error, t0);
  } finally {
    s.close();
  }
}

/** Runs body; an invariant violation ends the run as an outcome, a real-mode failure as a RealError. */
export function runGuarded(body: () => void): { outcome: Outcome; error: Error | null } {
  try {
    body();
    return { outcome: 'ok', error: null };
  } catch (e) {
    if (e instanceof InvariantError) return { outcome: 'invariant', error: e };
    throw classify(e) ?? e;
  }
}

/** Closes the books of a session the way simulate() does and builds the result. */
export function collectRealRun<D extends MigrationDestination>(
  s: RealSession<D>, outcome: Outcome, error: Error | null, t0Ms: number,
): RealRun<D> {
  const w = s.world;
  const p = s.platform;
  const now = p.nowNs();
  w.machine.finish();
  w.guest.userspace.finish(now);
  w.machine.trace.event('latsim', 'run_end', { outcome, events: p.scheduler.events });
  const message = error ? error.message : null;
  const result = collectResult(w, w.scenario.seed, p.scheduler.events, outcome, message, w.machine.trace.sha256());
  result.wall_ms = Math.round(performance.now() - t0Ms);
  return { result, world: w, error, real: realInfo(s) };
}

function realInfo<D extends MigrationDestination>(s: RealSession<D>): RealInfo {
  const g = s.guest;
  const p = s.platform;
  const mb0 = s.net ? g.mailboxes[s.scenario.devices.net[0]!.vcpu]! : null;
  const cpu: Record<string, number> = {};
  for (const t of p.threads) cpu[t.name] = Math.round(t.cpuNs / 1e4) / 100;
  return {
    backend: 'kvm',
    kvm: { api_version: s.kvm.apiVersion, manual_dirty_log: s.vm.manualDirtyLog, dirty_ring_cap: s.vm.dirtyRingCap },
    dirty_tracking: g.kvmDirtyRing ? 'ring' : 'log',
    ring_full_exits: g.kvmDirtyRing?.ringFullExits ?? 0,
    dirty_ring: g.kvmDirtyRing
      ? { size: g.kvmDirtyRing.size, reaps: g.kvmDirtyRing.reaps, reaped_pages: g.kvmDirtyRing.reapedPages, reap_hold_max_ns: g.kvmDirtyRing.reapHoldMaxNs }
      : null,
    vcpus: g.plans.map((plan, i) => ({
      name: `vcpu${i}`,
      workload: plan.params.workload + (plan.params.pattern && plan.params.workload === 'dirty' ? `/${plan.params.pattern}` : ''),
      tick_hz: plan.tickHz,
      dirty_rate: plan.dirtyRate,
      exit_rate: plan.exitRate,
      heartbeat: g.mailboxes[i]!.get('heartbeat'),
      pages_written: g.mailboxes[i]!.get('pages_written'),
      exits: g.code[i]!.exits,
      state: g.mailboxes[i]!.get('state'),
    })),
    net: s.net && s.netRing && mb0 ? {
      ring_popped: s.netRing.added,
      ring_used: s.netRing.used,
      kicks: mb0.get('vq_kicks'),
      kicks_suppressed: mb0.get('vq_kicks_suppressed'),
      replies: s.net.replies,
      pings_waiting: s.net.waiting.length,
      broken: s.netRing.broken,
    } : null,
    loop: {
      events: p.scheduler.events,
      blocked_waits: p.blockedWaits,
      blocked_ms: Math.round(p.blockedNs / 1e6),
      threads_cpu_ms: cpu,
    },
    dirty_log_reads: g.ram.logReads,
    debug: [...g.debug],
  };
}
