/**
 * Shared set-up for the QEMU backend's tests: a probe of QEMU, /dev/kvm and
 * the guest payload (built here if missing), or a skip with the one-line
 * reason (a failure instead when LATSIM_REAL_REQUIRED=1), and scenarios
 * written inline as YAML. Leaves out: the CLI.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

import { parseScenario } from '../../../cli/scenario-file.ts';
import type { Scenario } from '../../../sim/scenario/scenario.ts';
import { probeQemu, type QemuProbe } from '../../../real/qemu/probe.ts';

export const REAL_REQUIRED = process.env['LATSIM_REAL_REQUIRED'] === '1';

interface SkipContext {
  skip(note?: string): never;
}

let built = false;

/** A usable QEMU + KVM + payload, or skip with the reason. */
export function qemuOrSkip(ctx: SkipContext): QemuProbe {
  let p = probeQemu();
  if (!p.guest_built && !built && p.version && p.kvm) {
    built = true;
    spawnSync(process.execPath, [join(import.meta.dirname, '..', '..', '..', 'real', 'qemu', 'guest', 'build.mjs')], { encoding: 'utf8' });
    p = probeQemu();
  }
  if (!p.available) {
    const reason = `QEMU backend unavailable: ${p.reason}`;
    if (REAL_REQUIRED) throw new Error(`real mode required (LATSIM_REAL_REQUIRED=1) but ${reason}`);
    ctx.skip(reason);
  }
  return p;
}

export function scenario(yaml: string): Scenario {
  return parseScenario(yaml, 'inline.yaml');
}
