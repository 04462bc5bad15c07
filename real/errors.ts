// The ways real mode ends other than with a result, each with its exit code:
// unavailable (no addon, no /dev/kvm, no permission, wrong API version, a
// missing capability, no guest payload: 6), a guest that failed (triple fault,
// failed VM entry, KVM internal error: 7), a migration whose other process
// failed or whose stream broke (8), and what the scenario asks that real mode
// cannot do (2). Every one prints as a single line.
// A migration that fails under a fault is a result, not one of these (its
// exit code 8 comes from the result); a broken stream that escapes the
// migration is still classified as the peer's.
// Leaves out: errors of the model itself (invariants are run outcomes, exit 4).
import { MigrationStreamError } from '../sim/migration/destination.ts';

export type RealErrorKind = 'unavailable' | 'guest' | 'peer' | 'unsupported';

export const REAL_EXIT = { unavailable: 6, guest: 7, peer: 8, unsupported: 2 } as const;

/** KvmError codes that mean "this host cannot run real mode". */
const UNAVAILABLE_CODES = new Set(['ENOADDON', 'ENOKVM', 'EACCES', 'EPERM', 'EAPI', 'ENOCAP']);
/** KvmError codes of a vCPU that ended. */
const GUEST_CODES = new Set(['ETRIPLEFAULT', 'EFAILENTRY', 'EINTERNAL', 'ESYSTEMEVENT', 'EEXIT']);

export class RealError extends Error {
  constructor(readonly kind: RealErrorKind, message: string) {
    super(message.split('\n')[0]);
    this.name = 'RealError';
  }

  get exitCode(): number {
    return REAL_EXIT[this.kind];
  }
}

/** A RealError for what a failure means in real mode, or null when it is not one of ours. */
export function classify(e: unknown): RealError | null {
  if (e instanceof RealError) return e;
  if (e instanceof MigrationStreamError) return new RealError('peer', e.message);
  const code = (e as { code?: unknown } | null)?.code;
  if (e instanceof Error && typeof code === 'string') {
    const msg = (e as Error).message.split('\n')[0] ?? '';
    if (GUEST_CODES.has(code)) return new RealError('guest', `the guest failed: ${msg} (${code})`);
    if (UNAVAILABLE_CODES.has(code)) return new RealError('unavailable', msg.startsWith('unavailable: ') ? msg : `unavailable: ${msg}`);
  }
  return null;
}
