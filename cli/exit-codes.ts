// Exit codes of latsim, the same for every backend (simulation, KVM, QEMU):
// the verdicts of a finished run (0 every budget held, 1 a budget failed, 3 a
// liveness bound was hit, 4 an invariant was violated), the codes of what
// kept a run from giving one (2 bad input, 5 internal error, 6-8 real mode,
// 9 an output that could not be written, 130 interrupted), and their mapping
// onto `git bisect run`.
import type { RunResult } from '../sim/results.ts';

export const EXIT = {
  ok: 0,
  budget: 1,
  badInput: 2,
  liveness: 3,
  invariant: 4,
  internal: 5,
  realUnavailable: 6,
  guestFailed: 7,
  destinationFailed: 8,
  output: 9,
  interrupted: 130,
} as const;

export const EXIT_CODES_HELP = `
Exit codes:
  0    every budget held
  1    a budget failed (or, for check/diff, a difference was found)
  2    bad input: a malformed scenario, an unknown, empty or conflicting option, a missing file
  3    liveness bound hit (simulated time or event count); the seed is printed
  4    invariant violated (lost page, lost acknowledged write, lock discipline)
  5    internal error
  6    real mode unavailable (no /dev/kvm, no permission, API or capability missing, addon not built)
  7    the real guest failed (e.g. a triple fault)
  8    the real migration's destination process failed or its stream broke
  9    an output could not be written (--trace, --report, --out, stdout): one line with the path and the errno
  130  interrupted (SIGINT or SIGTERM); sweep, fuzz, bisect and bisect-param print what finished, marked partial
`;

/** The exit code of a run's result. */
export function exitCodeOf(r: Pick<RunResult, 'outcome' | 'pass'>): number {
  if (r.outcome === 'invariant') return EXIT.invariant;
  if (r.outcome === 'liveness') return EXIT.liveness;
  return r.pass ? EXIT.ok : EXIT.budget;
}

/** latsim run's exit code as git bisect run reads it: 0 good, 1 bad, 125 skip. */
export function bisectExitCode(code: number): number {
  if (code === EXIT.ok) return 0;
  if (code === EXIT.budget || code === EXIT.liveness || code === EXIT.invariant) return 1;
  return 125;
}
