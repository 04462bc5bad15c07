// The command line's outputs. stdout and stderr are guarded: a closed stdout
// (EPIPE, as in `latsim run --json | head -1`) ends the command quietly with
// its own exit code, a stdout that cannot be written (a full disk) is one line
// and exit 9, and neither is ever an unhandled 'error' event. Files are
// written whole (reports/output.ts); writeAll writes several and reports
// every failure after writing what it could.
// Leaves out: rendering and report directories (reports/).
import { OutputError, throwOutputErrors } from '../reports/output.ts';

export { checkWritable, ensureDirectory, writeFileAtomic } from '../reports/output.ts';

let guarded = false;
/** A stdout error other than EPIPE, kept for flushStdout. */
let stdoutError: OutputError | null = null;
/** Set once main has returned: a later stdout error is reported by the listener itself. */
let settled = false;

/** Installs the error listeners on stdout and stderr (once per process). */
export function guardStdio(): void {
  settled = false;
  if (guarded) return;
  guarded = true;
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE' || stdoutError) return;
    stdoutError = OutputError.of('stdout', 'write', e);
    if (settled) {
      process.stderr.write(`latsim: ${stdoutError.message}\n`);
      process.exitCode = 9;
    }
  });
  // Nowhere left to say anything.
  process.stderr.on('error', () => {});
}

/** Waits until what was written to stdout is out; returns the error of a stdout that could not be written (EPIPE is not one). */
export async function flushStdout(): Promise<OutputError | null> {
  if (!process.stdout.destroyed && process.stdout.writable) {
    await new Promise<void>((resolve) => {
      process.stdout.write('', (e) => {
        const err = e as NodeJS.ErrnoException | null | undefined;
        if (err && err.code !== 'EPIPE' && !stdoutError) stdoutError = OutputError.of('stdout', 'write', err);
        resolve();
      });
    });
  }
  settled = true;
  const e = stdoutError;
  stdoutError = null;
  return e;
}

/** The OutputErrors an error stands for (an AggregateError of them too), or null when it is something else. */
export function outputErrorsOf(e: unknown): OutputError[] | null {
  if (e instanceof OutputError) return [e];
  if (e instanceof AggregateError && e.errors.length > 0 && e.errors.every((x) => x instanceof OutputError)) return e.errors as OutputError[];
  return null;
}

/** Runs every write, even after one failed, then throws the output errors; anything else is rethrown at once. */
export function writeAll(writes: readonly (() => void)[]): void {
  const errors: OutputError[] = [];
  for (const w of writes) {
    try {
      w();
    } catch (e) {
      const out = outputErrorsOf(e);
      if (!out) throw e;
      errors.push(...out);
    }
  }
  throwOutputErrors(errors);
}
