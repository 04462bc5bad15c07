// The errors the command line turns into one line on stderr, never a stack
// trace: a mistake in how a command was used (a bad option value, a missing
// file, options that exclude each other) is a UsageError, exit 2; an output
// that could not be written is an OutputError (reports/output.ts), exit 9.
export { OutputError } from '../reports/output.ts';

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
