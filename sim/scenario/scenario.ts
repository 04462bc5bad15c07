// A scenario as the model consumes it: every time in integer nanoseconds,
// every size in bytes, every rate per second; and checkScenario, which turns a
// parsed scenario document (shape already checked against schema.ts) into it,
// section by section, reporting impossible values through `fail`. Each section
// file (vm, iothreads, main-loop, guest, devices, faults, migration, expect) holds its
// types, its part of the schema, its QEMU defaults and its semantic checks.
// Reading files and placing errors at file:line:col is the CLI's
// (cli/scenario-file.ts).
import { Fields, section, type Fail, type Raw } from './fields.ts';
import { BOUND_LIMIT, DURATION_LIMIT, limit } from './limits.ts';
import { checkVm, vcpuChecker, type VmSpec } from './vm.ts';
import { checkMainLoop, type SyntheticHandlerSpec } from './main-loop.ts';
import { checkGuest, type GuestSpec } from './guest.ts';
import { checkDevices, type DevicesSpec } from './devices.ts';
import { checkFaults, type FaultSpec } from './faults.ts';
import { checkMigration, type MigrationSpec } from './migration.ts';
import { checkExpect, type Budget } from './expect.ts';
import { checkQemu, type QemuSpec } from './qemu.ts';
import { checkFidelity, type FidelitySpec } from './fidelity.ts';
import { checkIothreads, iothreadIds, type IothreadSpec } from './iothreads.ts';

export type { VmSpec } from './vm.ts';
export type { SyntheticHandlerSpec } from './main-loop.ts';
export type { DirtyPattern, GuestSpec, WorkloadSpec } from './guest.ts';
export type { BlkSpec, DevicesSpec, NetSpec } from './devices.ts';
export type { FaultSpec } from './faults.ts';
export type { LinkBreak, MigrationPolicy, MigrationSpec, MultifdSpec, PostcopySpec, XbzrleSpec, ZeroPageDetection } from './migration.ts';
export type { Budget, BudgetKey } from './expect.ts';
export type { HostCosts, QemuProfile, QemuSpec, QemuVersion } from './qemu.ts';
export type { IothreadSpec } from './iothreads.ts';

export interface Scenario {
  readonly name: string;
  readonly file: string;
  readonly seed: number;
  readonly duration_ns: number;
  readonly threshold_ns: number;
  readonly limits: { readonly max_events: number; readonly max_time_ns: number };
  /** The QEMU whose behaviour the run follows, and its host's costs. */
  readonly qemu: QemuSpec;
  readonly vm: VmSpec;
  /** The IOThreads (-object iothread), in declaration order. */
  readonly iothreads: readonly IothreadSpec[];
  readonly main_loop: { readonly handlers: readonly SyntheticHandlerSpec[] };
  readonly guest: GuestSpec;
  readonly devices: DevicesSpec;
  readonly faults: readonly FaultSpec[];
  readonly migration: MigrationSpec | null;
  readonly expect: readonly Budget[];
  /** Handlers (by name, substring) that must show up over the threshold. */
  readonly expect_slow: readonly string[];
  /** The MigrationStatus the run must end in, if any. */
  readonly expect_migration_status: string | null;
  /** The recorded trace fingerprint, when the file carries one. */
  readonly fingerprint: string | null;
  /** How close the simulation must come to real QEMU (latsim qemu compare); the simulation ignores it. */
  readonly fidelity: FidelitySpec;
}

/** Seeds are 32-bit: a scenario's `seed` and every --seed option take a decimal integer in [0, SEED_MAX]. */
export const SEED_MAX = 2 ** 32 - 1;

/** The threshold reporter's default: handlers slower than 100 ms are reported. */
export const DEFAULT_THRESHOLD_NS = 100_000_000;
/**
 * Events a run may take at most unless the scenario says otherwise
 * (limits.max_events): about a minute of wall time on a 2-core machine. The
 * slowest event mix of the shipped scenarios (virtio-net-358ms, run 50x
 * longer) goes at 335-360 thousand events per second, also with the trace
 * kept; the others at 0.5-1 million. The shipped scenarios take at most
 * 240,000 events, 80 times fewer.
 */
export const EVENTS_MAX_DEFAULT = 20_000_000;
/**
 * The threshold reporter's threshold: from 1 ms. Every run over it is kept
 * (a record per handler run, a vCPU stall per exit) and attributed, so a
 * threshold below the handlers' own costs keeps a record per event.
 */
export const THRESHOLD_LIMIT = limit.duration('1ms', '1h');

/** Checks a parsed scenario document (a mapping the schema accepted); file names it in the result. */
export function checkScenario(r: Raw, file: string, fail: Fail): Scenario {
  const f = new Fields(fail);
  const limits = section(r, 'limits');
  const duration = f.positive(['duration'], f.duration(['duration'], r.duration, 0, DURATION_LIMIT), 'duration');
  const maxTime = f.duration(['limits', 'max_time'], limits.max_time, duration, BOUND_LIMIT);
  if (maxTime < duration) f.fail(['limits', 'max_time'], `max_time ${String(limits.max_time)} is shorter than the duration`);

  const qemu = checkQemu(section(r, 'qemu'), f);
  const vm = checkVm(section(r, 'vm'), qemu.profile, f);
  const vcpuAt = vcpuChecker(vm.vcpus, fail);
  const handlers = checkMainLoop(r.main_loop, duration, f);
  const guest = checkGuest(section(r, 'guest'), vm, vcpuAt, f);
  const iothreads = checkIothreads(r.iothreads, qemu.profile, f);
  const devices = checkDevices(r.devices, vcpuAt, f, iothreadIds(iothreads));
  const faults = checkFaults(r.faults, String(r.duration), duration, devices, f);
  const migration = r.migration ? checkMigration(r.migration as Raw, duration, qemu.profile, vm, faults, f) : null;
  const linkBreak = faults.findIndex((x) => x.kind === 'link-break');
  if (linkBreak >= 0 && !migration) f.fail(['faults', linkBreak, 'kind'], 'a link-break cuts the migration stream: the scenario has no migration section');
  const expect = checkExpect(section(r, 'expect'), {
    migration: migration !== null, multifd: migration?.multifd != null, net: devices.net.length > 0, postcopy: migration?.postcopy != null,
    iothreads: iothreads.length > 0,
  }, f);

  return {
    name: r.name as string,
    file,
    seed: (r.seed as number | undefined) ?? 1,
    duration_ns: duration,
    threshold_ns: f.duration(['threshold'], r.threshold, DEFAULT_THRESHOLD_NS, THRESHOLD_LIMIT),
    limits: { max_events: (limits.max_events as number | undefined) ?? EVENTS_MAX_DEFAULT, max_time_ns: maxTime },
    qemu,
    vm,
    iothreads,
    main_loop: { handlers },
    guest,
    devices,
    faults,
    migration,
    expect: expect.budgets,
    expect_slow: expect.slow,
    expect_migration_status: expect.migration_status,
    fingerprint: (r.fingerprint as string | undefined) ?? null,
    fidelity: checkFidelity(r.fidelity, f),
  };
}
