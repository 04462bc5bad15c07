// A mistake in how the command was used (bad option value, missing file):
// one line on stderr and exit code 2.
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Parses an integer option value or throws a UsageError naming the option. */
export function intOption(name: string, value: string, min = 0): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < min) throw new UsageError(`${name}: expected an integer >= ${min}, got ${JSON.stringify(value)}`);
  return n;
}
