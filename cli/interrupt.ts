// SIGINT and SIGTERM during a long command (sweep, fuzz, bisect,
// bisect-param). The first signal aborts an AbortSignal: the command starts
// no more work, stops its workers and child processes, and prints what it
// finished, marked partial (JSON: `"partial": true` and `interrupted`; text:
// a last line), then exits 130. A second signal runs the cleanups registered
// with onForce (removing worktrees, killing children) and exits 130 at once.
// Work that runs in this thread sees the signal only between two runs.
// Leaves out: what is kept and how it is printed (each command).
import { EXIT } from './exit-codes.ts';

/** Where a command stopped: in JSON outputs as `interrupted`. */
export interface Interruption {
  readonly signal: NodeJS.Signals;
  /** Units of work finished (runs, seeds, commits). */
  readonly done: number;
  /** Units the command meant to do; null when not known in advance (a bisection). */
  readonly total: number | null;
}

export interface Interrupts {
  /** Aborted by the first SIGINT or SIGTERM. */
  readonly signal: AbortSignal;
  /** The signal received, or null. */
  received(): NodeJS.Signals | null;
  /** A cleanup to run before exiting on a second signal; returns a function that unregisters it. */
  onForce(cleanup: () => void): () => void;
  /** Removes the handlers: signals kill the process again as usual. */
  dispose(): void;
}

const SIGNALS = ['SIGINT', 'SIGTERM'] as const;

/** Catches SIGINT and SIGTERM until dispose(). */
export function catchInterrupts(): Interrupts {
  const controller = new AbortController();
  let received: NodeJS.Signals | null = null;
  const cleanups = new Set<() => void>();
  const handler = (sig: NodeJS.Signals) => {
    if (received === null) {
      received = sig;
      controller.abort(new Error(`interrupted by ${sig}`));
      return;
    }
    for (const c of cleanups) {
      try {
        c();
      } catch {
        // Exiting anyway; the other cleanups still run.
      }
    }
    process.exit(EXIT.interrupted);
  };
  for (const s of SIGNALS) process.on(s, handler);
  return {
    signal: controller.signal,
    received: () => received,
    onForce: (c) => {
      cleanups.add(c);
      return () => cleanups.delete(c);
    },
    dispose: () => {
      for (const s of SIGNALS) process.removeListener(s, handler);
    },
  };
}

/** `interrupted by SIGINT after 3 of 10 runs`. */
export function interruptionText(i: Interruption, unit: string): string {
  return `interrupted by ${i.signal} after ${i.done}${i.total === null ? '' : ` of ${i.total}`} ${unit}`;
}
