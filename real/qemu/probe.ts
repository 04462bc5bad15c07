// What this host can do of the QEMU backend: the QEMU binary's version (from
// --version), whether /dev/kvm is usable, whether the trace events run.ts
// needs exist (-trace help), and whether the guest payload is built.
// Leaves out: checking machine types or devices beyond what a run uses.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { TRACE_EVENTS } from './trace.ts';

export const DEFAULT_QEMU = '/usr/bin/qemu-system-x86_64';
export const GUEST_ELF = join(dirname(fileURLToPath(import.meta.url)), 'guest', 'build', 'guest.elf');

export interface QemuProbe {
  /** Everything a run needs is here. */
  readonly available: boolean;
  /** One line: why not (empty when available). */
  readonly reason: string;
  readonly binary: string;
  /** "7.2.22", or "" when the binary does not run. */
  readonly version: string;
  readonly major: number;
  readonly minor: number;
  readonly micro: number;
  /** The distribution's package string, e.g. "Debian 1:7.2+dfsg-7+deb12u18+b3". */
  readonly package: string;
  readonly kvm: boolean;
  readonly kvm_reason: string;
  readonly missing_trace_events: readonly string[];
  readonly guest_built: boolean;
  readonly guest_path: string;
}

export function probeQemu(binary: string = DEFAULT_QEMU): QemuProbe {
  const v = spawnSync(binary, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  let version = '';
  let pkg = '';
  if (!v.error && v.status === 0) {
    const m = /version (\d+)\.(\d+)\.(\d+)(?:\s*\(([^)]*)\))?/.exec(v.stdout);
    if (m) {
      version = `${m[1]}.${m[2]}.${m[3]}`;
      pkg = m[4] ?? '';
    }
  }
  const [major, minor, micro] = version ? version.split('.').map(Number) as [number, number, number] : [0, 0, 0];
  let kvm = false;
  let kvmReason = '';
  if (!existsSync('/dev/kvm')) kvmReason = '/dev/kvm does not exist';
  else {
    try {
      accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
      kvm = true;
    } catch {
      kvmReason = 'no read/write permission on /dev/kvm';
    }
  }
  let missing: string[] = [...TRACE_EVENTS];
  if (version) {
    const t = spawnSync(binary, ['-trace', 'help'], { encoding: 'utf8', timeout: 10_000 });
    const names = new Set(`${t.stdout}\n${t.stderr}`.split('\n').map((l) => l.trim()));
    missing = TRACE_EVENTS.filter((e) => !names.has(e));
  }
  const guestBuilt = existsSync(GUEST_ELF);
  const reason = !version
    ? `${binary} does not run${v.error ? `: ${v.error.message}` : ''}`
    : !kvm
      ? kvmReason
      : missing.length === TRACE_EVENTS.length
        ? `${binary} has no trace backend that lists the migration events`
        : !guestBuilt
          ? `the QEMU guest payload is not built (node real/qemu/guest/build.mjs)`
          : '';
  return {
    available: reason === '',
    reason,
    binary,
    version,
    major,
    minor,
    micro,
    package: pkg,
    kvm,
    kvm_reason: kvmReason,
    missing_trace_events: missing,
    guest_built: guestBuilt,
    guest_path: GUEST_ELF,
  };
}
