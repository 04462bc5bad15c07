// The JSON Schema of scenario files, assembled from the sections' parts and
// written to scenarios/latsim.schema.json (`latsim schema --write`), so editors
// with yaml-language-server complete and check the same rules `latsim check`
// applies.
import { devicesSchema } from './devices.ts';
import { expectSchema } from './expect.ts';
import { faultsSchema } from './faults.ts';
import { guestSchema } from './guest.ts';
import { mainLoopSchema } from './main-loop.ts';
import { migrationSchema } from './migration.ts';
import { distDefinition, duration, int, name, obj, type Schema } from './schema-kit.ts';
import { vmSchema } from './vm.ts';
import { qemuSchema } from './qemu.ts';
import { SEED_MAX } from './scenario.ts';

export function scenarioSchema(): Schema {
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: 'https://latsim.dev/latsim.schema.json',
    title: 'latsim scenario',
    description: 'A latsim scenario: a VM, its devices and guest workload, faults, migration and budgets.',
    type: 'object',
    additionalProperties: false,
    required: ['name', 'duration'],
    'x-expected': 'a mapping',
    $defs: { dist: distDefinition() },
    properties: {
      name: name('scenario name'),
      description: { type: 'string', description: 'what the scenario shows' },
      seed: int(0, SEED_MAX, 'the seed of every random stream'),
      duration: duration('simulated time to run'),
      threshold: duration('threshold reporter: report handlers slower than this (default 100ms)'),
      limits: obj({
        max_events: int(1, 1e12, 'liveness bound on events'),
        max_time: duration('liveness bound in simulated time'),
      }, 'hard bounds; crossing one is a liveness failure (exit 3)'),
      qemu: qemuSchema(),
      vm: vmSchema(),
      main_loop: mainLoopSchema(),
      guest: guestSchema(),
      devices: devicesSchema(),
      faults: faultsSchema(),
      migration: migrationSchema(),
      expect: expectSchema(),
      fingerprint: {
        type: 'string', pattern: '^[0-9a-f]{64}$', 'x-expected': 'a SHA-256 in hex',
        description: 'recorded trace fingerprint (latsim run --update-fingerprint)',
      },
    },
  };
}
