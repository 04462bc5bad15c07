// Invariant violations: a broken safety property of the model or of the
// system it models (lock discipline, a lost page, a lost acknowledged write,
// the VM running on both sides, a page placed twice by postcopy). They end the
// run with exit code 4.

export type InvariantKind =
  | 'lock-discipline'
  | 'lost-page'
  | 'lost-write'
  | 'duplicate-page'
  | 'split-brain'
  | 'model';

export class InvariantError extends Error {
  constructor(readonly kind: InvariantKind, detail: string) {
    super(`invariant violated (${kind}): ${detail}`);
    this.name = 'InvariantError';
  }
}

/** Asserts a condition the model relies on. */
export function invariant(cond: unknown, detail: string): asserts cond {
  if (!cond) throw new InvariantError('model', detail);
}
