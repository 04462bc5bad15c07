// The JSON Schema of scenario files, assembled from the sections' parts and
// written to scenarios/latsim.schema.json (`latsim schema --write`), so editors
// with yaml-language-server complete and check the same rules `latsim check`
// applies.
import { devicesSchema } from './devices.ts';
import { expectSchema } from './expect.ts';
import { faultsSchema } from './faults.ts';
import { fidelitySchema } from './fidelity.ts';
import { guestSchema } from './guest.ts';
import { mainLoopSchema } from './main-loop.ts';
import { migrationSchema } from './migration.ts';
import { distDefinition, duration, int, name, obj, type Schema } from './schema-kit.ts';
import { vmSchema } from './vm.ts';
import { qemuSchema } from './qemu.ts';
import { iothreadsSchema } from './iothreads.ts';
import { EVENTS_MAX_DEFAULT, SEED_MAX, THRESHOLD_LIMIT } from './scenario.ts';
import { BOUND_LIMIT, DURATION_LIMIT } from './limits.ts';

/** Characters a scenario's description may have at most. */
const DESCRIPTION_CHARS_MAX = 65_536;

/** Scenario fragments one scenario may include. */
export const INCLUDES_MAX = 8;

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
      include: {
        oneOf: [
          { type: 'string', minLength: 1, maxLength: 4096 },
          { type: 'array', items: { type: 'string', minLength: 1, maxLength: 4096 }, minItems: 1, maxItems: INCLUDES_MAX },
        ],
        'x-expected': `the path of a scenario fragment, or a list of at most ${INCLUDES_MAX}`,
        description: 'scenario fragments (YAML, paths relative to this file) giving the values this file leaves out, e.g. the host costs latsim qemu calibrate wrote',
      },
      description: { type: 'string', maxLength: DESCRIPTION_CHARS_MAX, 'x-expected': `text of at most ${DESCRIPTION_CHARS_MAX} characters`, description: 'what the scenario shows' },
      seed: int(0, SEED_MAX, 'the seed of every random stream'),
      duration: duration('simulated time to run', DURATION_LIMIT),
      threshold: duration('threshold reporter: report handlers slower than this (default 100ms)', THRESHOLD_LIMIT),
      limits: obj({
        max_events: int(1, 1e12, `liveness bound on events, every 100 page writes counted as one (default ${EVENTS_MAX_DEFAULT.toLocaleString('en-US')}, about a minute of wall time)`),
        max_time: duration('liveness bound in simulated time (default: the duration)', BOUND_LIMIT),
      }, 'hard bounds; crossing one is a liveness failure (exit 3)'),
      qemu: qemuSchema(),
      vm: vmSchema(),
      iothreads: iothreadsSchema(),
      main_loop: mainLoopSchema(),
      guest: guestSchema(),
      devices: devicesSchema(),
      faults: faultsSchema(),
      migration: migrationSchema(),
      expect: expectSchema(),
      fidelity: fidelitySchema(),
      fingerprint: {
        type: 'string', pattern: '^[0-9a-f]{64}$', 'x-expected': 'a SHA-256 in hex',
        description: 'recorded trace fingerprint (latsim run --update-fingerprint)',
      },
    },
  };
}
