// Exit codes of a finished run, the same for every backend (simulation, KVM,
// QEMU): 0 every budget held, 1 a budget failed, 3 a liveness bound was hit,
// 4 an invariant was violated; and their mapping onto `git bisect run`.
import type { RunResult } from '../sim/results.ts';

/** The exit code of a run's result. */
export function exitCodeOf(r: Pick<RunResult, 'outcome' | 'pass'>): number {
  if (r.outcome === 'invariant') return 4;
  if (r.outcome === 'liveness') return 3;
  return r.pass ? 0 : 1;
}

/** latsim run's exit code as git bisect run reads it: 0 good, 1 bad, 125 skip. */
export function bisectExitCode(code: number): number {
  if (code === 0) return 0;
  if (code === 1 || code === 3 || code === 4) return 1;
  return 125;
}
