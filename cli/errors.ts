// The errors the command line turns into one line on stderr, never a stack
// trace: a mistake in how a command was used (a bad option value, a missing
// file, options that exclude each other) is a UsageError, exit 2; an output
// that could not be written is an OutputError (reports/output.ts), exit 9.
// A mistake in a scenario file is a ScenarioError (cli/scenario-file.ts places
// it in the file), exit 2.
export { OutputError } from '../reports/output.ts';

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** A file name as messages show it: control and bidirectional characters escaped, so a name cannot forge a line. */
export function printableName(file: string): string {
  return file.replace(/[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, (c) => {
    const code = c.charCodeAt(0);
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

export class ScenarioError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly col: number,
    readonly path: string,
    readonly detail: string,
  ) {
    super(`${printableName(file)}${line > 0 ? `:${line}:${col}` : ''}: ${path ? `${path}: ` : ''}${detail}`);
    this.name = 'ScenarioError';
  }
}
