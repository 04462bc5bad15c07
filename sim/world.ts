// Builds everything a scenario declares on a Platform: the Machine (main
// loop, BQL, vCPUs), the guest and its workloads, synthetic main-loop work,
// devices and their backends, the fault schedule, and migration. The same
// builder serves the simulator and the real backend: a WorldBackend supplies
// what differs on KVM (the guest, the device glue, the migration's far end).
import type { Platform } from './platform.ts';
import { Machine } from './machine.ts';
import type { Scenario } from './scenario/scenario.ts';
import { installSyntheticHandler } from './main-loop/synthetic.ts';
import { Guest, type GuestPort } from './guest/guest.ts';
import { Devices, type DeviceGlue } from './devices/devices.ts';
import { Migration } from './migration/migration.ts';
import type { Destination, MigrationDestination } from './migration/destination.ts';

export interface World<G extends GuestPort = Guest, D extends MigrationDestination = Destination> {
  readonly scenario: Scenario;
  readonly platform: Platform;
  readonly machine: Machine;
  readonly guest: G;
  readonly devices: Devices;
  readonly migration: Migration<D> | null;
}

/** A world on either backend, for code that only reads it (results, attribution). */
export type AnyWorld = World<GuestPort, MigrationDestination>;

/** What a backend other than the simulator's models puts into the world. */
export interface WorldBackend<G extends GuestPort, D extends MigrationDestination> {
  /** The guest: its memory and what runs on the machine's vCPUs. */
  guest(machine: Machine, scenario: Scenario): G;
  /** Device parts that live in the guest on this backend. */
  glue(guest: G): DeviceGlue;
  /** The migration's far end (called only when the scenario migrates). */
  destination(machine: Machine, guest: G): D;
  /** Runs once devices exist, before the machine starts (binding fds). */
  devicesReady?(machine: Machine, guest: G, devices: Devices): void;
}

export function buildWorld(scenario: Scenario, platform: Platform, keepTrace: boolean, backend?: undefined, fingerprint?: boolean): World;
export function buildWorld<G extends GuestPort, D extends MigrationDestination>(
  scenario: Scenario, platform: Platform, keepTrace: boolean, backend: WorldBackend<G, D>): World<G, D>;
export function buildWorld<G extends GuestPort, D extends MigrationDestination>(
  scenario: Scenario, platform: Platform, keepTrace: boolean, backend?: WorldBackend<G, D>, fingerprint = true,
): World<GuestPort, MigrationDestination> {
  const machine = new Machine(platform, {
    thresholdNs: scenario.threshold_ns,
    qemu: scenario.qemu,
    keepTrace,
    fingerprint,
    initialState: scenario.vm.run_state,
    iothreads: scenario.iothreads,
  });
  const guest: GuestPort = backend ? backend.guest(machine, scenario) : new Guest(machine, scenario.vm, scenario.guest);
  for (const h of scenario.main_loop.handlers) installSyntheticHandler(machine, h);
  const devices = new Devices(machine, guest, scenario.devices, scenario.faults, backend?.glue(guest as G));
  backend?.devicesReady?.(machine, guest as G, devices);
  const dest = backend && scenario.migration ? backend.destination(machine, guest as G) : undefined;
  const migration = scenario.migration ? new Migration(machine, guest, devices, scenario.migration, dest) : null;
  machine.start();
  migration?.schedule();
  return { scenario, platform, machine, guest, devices, migration };
}
