// Builds everything a scenario declares on a Platform: the Machine (main
// loop, BQL, vCPUs), the guest and its workloads, synthetic main-loop work,
// devices and their backends, the fault schedule, and migration. The same
// builder serves the simulator and the real backend.
import type { Platform } from './platform.ts';
import { Machine } from './machine.ts';
import type { Scenario } from './scenario.ts';
import { installSyntheticHandler } from './synthetic.ts';
import { Guest } from './guest/guest.ts';
import { Devices } from './devices/devices.ts';
import { Migration } from './migration/migration.ts';

export interface World {
  readonly scenario: Scenario;
  readonly platform: Platform;
  readonly machine: Machine;
  readonly guest: Guest;
  readonly devices: Devices;
  readonly migration: Migration | null;
}

export function buildWorld(scenario: Scenario, platform: Platform, keepTrace: boolean): World {
  const machine = new Machine(platform, {
    thresholdNs: scenario.threshold_ns,
    keepTrace,
    initialState: scenario.vm.run_state,
  });
  const guest = new Guest(machine, scenario.vm, scenario.guest);
  for (const h of scenario.main_loop.handlers) installSyntheticHandler(machine, h);
  const devices = new Devices(machine, guest, scenario.devices, scenario.faults);
  const migration = scenario.migration ? new Migration(machine, guest, devices, scenario.migration) : null;
  machine.start();
  migration?.schedule();
  return { scenario, platform, machine, guest, devices, migration };
}
