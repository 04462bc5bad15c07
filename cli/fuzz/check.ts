// Judging one fuzz run. Safety phase: the run must not end in an invariant
// violation (the model's own checkers: lost page, lost acknowledged write,
// lock discipline, split brain), must stay within its event bound, and its
// result must satisfy properties no run may break (pings answered <= sent, a
// completed migration verified at the destination, downtime and its phases
// non-negative, percentiles in order, ...). Liveness phase: with faults off,
// the migration must have completed by the end of the run.
// A failure has a class (`lost-page`, `ping-answered`, `not-completed`, ...)
// so shrinking can insist on the same failure, not just any failure.
// A run ends AFTER_END_NS after its migration ends (completed, failed or
// cancelled) rather than at its duration: by then the switchover's checks
// have run (every page and acknowledged write at the destination), or the
// failure's (the source runs the guest again, the destination does not),
// and nothing of the migration is left to break. A migration that never
// ends runs on to the end.
// Nothing judges the trace, so it is not written (no fingerprint): a
// regression file's `latsim run` has the fingerprint.
// Leaves out: choosing knobs and shrinking (cli/fuzz/knobs.ts, shrink.ts).
import { scenarioFromObject } from '../scenario-file.ts';
import { simulate } from '../../sim/run.ts';
import type { RunResult } from '../../sim/results.ts';
import type { Phase, ScenarioText } from './scenario.ts';

/** Simulated time a run goes on after its migration ended (the destination's start, or the source's resumption, and the cleanup). */
export const AFTER_END_NS = 1_000_000_000;

export interface Failure {
  readonly phase: Phase;
  /** safety failures exit 4, liveness failures 3. */
  readonly exit_code: 3 | 4;
  /** What failed, stable across seeds: an invariant kind or a property name. */
  readonly class: string;
  readonly error: string;
}

export interface PhaseRun {
  readonly failure: Failure | null;
  readonly result: RunResult | null;
}

/** Runs a phase's scenario and judges it. */
export function runPhase(s: ScenarioText, phase: Phase): PhaseRun {
  const scenario = scenarioFromObject(s.doc, `${s.name}.yaml`);
  let result: RunResult;
  try {
    result = simulate(scenario, { stopAfterEndNs: AFTER_END_NS, fingerprint: false }).result;
  } catch (e) {
    // The model threw something that is not an invariant: a bug all the same.
    const msg = (e as Error).message ?? String(e);
    return { failure: { phase, exit_code: 4, class: 'internal-error', error: `internal error: ${msg}` }, result: null };
  }
  return { failure: judge(result, phase), result };
}

/** The first broken property of a run, or null. */
export function judge(r: RunResult, phase: Phase): Failure | null {
  const safety = (cls: string, error: string): Failure => ({ phase, exit_code: 4, class: cls, error });
  if (r.outcome === 'invariant') {
    const m = /invariant violated \(([a-z-]+)\)/.exec(r.error ?? '');
    return safety(m ? m[1]! : 'invariant', r.error ?? 'invariant violated');
  }
  if (r.outcome === 'liveness') return { phase, exit_code: 3, class: 'bound', error: r.error ?? 'liveness bound hit' };
  const broken = brokenProperty(r);
  if (broken) return safety(broken[0], broken[1]);
  if (phase === 'liveness') {
    const m = r.migration;
    if (m && m.status !== 'completed') {
      return {
        phase, exit_code: 3, class: 'not-completed',
        error: `migration ${m.status}${m.fail_reason ? ` (${m.fail_reason})` : ''} after ${Math.round(r.sim_time_ns / 1e9)} s with faults off: ` +
          `${m.ram['dirty-sync-count']} dirty syncs, ${m.completion_attempts} completion attempts, ${m.ram.remaining} bytes remaining`,
      };
    }
  }
  return null;
}

/** Properties every result must have: [class, message] of the first one broken. */
function brokenProperty(r: RunResult): [string, string] | null {
  const p = r.guest.ping;
  if (p.answered > p.sent) return ['ping-answered', `${p.answered} pings answered but only ${p.sent} sent`];
  if (p.lost > p.sent) return ['ping-lost', `${p.lost} pings lost but only ${p.sent} sent`];
  if (p.rtt_p50_ns > p.rtt_p99_ns || p.rtt_p99_ns > p.rtt_max_ns) return ['ping-rtt-order', `ping rtt p50 ${p.rtt_p50_ns} > p99 ${p.rtt_p99_ns} or p99 > max ${p.rtt_max_ns}`];
  for (const h of r.handlers) {
    if (h.count < 0 || h.p50_ns > h.p99_ns || h.p99_ns > h.max_ns) {
      return ['handler-percentiles', `handler ${h.name} on ${h.thread}: count ${h.count}, p50 ${h.p50_ns}, p99 ${h.p99_ns}, max ${h.max_ns}`];
    }
  }
  if (r.guest.userspace.progress < 0) return ['userspace-progress', `userspace progress ${r.guest.userspace.progress}`];
  if (r.guest.vcpu_stall_max_ns > r.sim_time_ns) return ['vcpu-stall', `vCPU stall ${r.guest.vcpu_stall_max_ns} ns longer than the run (${r.sim_time_ns} ns)`];
  if (r.main_loop.blocked_max_ns > r.sim_time_ns) return ['main-loop-blocked', `main loop blocked ${r.main_loop.blocked_max_ns} ns, longer than the run`];
  const m = r.migration;
  if (!m) return null;
  if (m.downtime < 0) return ['downtime-negative', `downtime ${m.downtime} ms`];
  if (m.downtime_phases) {
    for (const [k, v] of Object.entries(m.downtime_phases)) if (v < 0) return ['downtime-phase-negative', `downtime phase ${k} is ${v} ms`];
  }
  if (m.completion_attempts !== m.attempts.length) return ['attempts-count', `completion_attempts ${m.completion_attempts} but ${m.attempts.length} attempts recorded`];
  if (m.rollbacks > m.completion_attempts) return ['rollbacks', `${m.rollbacks} rollbacks from ${m.completion_attempts} completion attempts`];
  if (m.ram.remaining < 0 || m.ram.transferred < 0) return ['ram-counters', `ram remaining ${m.ram.remaining}, transferred ${m.ram.transferred}`];
  if (m.status === 'completed') {
    if (!m.verified) return ['not-verified', 'migration completed but the destination check did not verify memory and disk'];
    if (m['total-time'] < m.downtime) return ['total-time', `total-time ${m['total-time']} ms shorter than downtime ${m.downtime} ms`];
    const last = m.transitions[m.transitions.length - 1];
    if (!last || last.to !== 'completed') return ['transitions', `status completed but the last transition is ${last ? `${last.from} -> ${last.to}` : 'none'}`];
  }
  return null;
}
