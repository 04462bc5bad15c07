// The JSON Schema of scenario files, built here and written to
// scenarios/latsim.schema.json (`latsim schema --write`), so editors with
// yaml-language-server complete and check the same rules `latsim check`
// applies. Units are strings checked by the patterns of cli/units.ts;
// "x-expected" says in words what a field takes, for error messages.
import {
  BANDWIDTH_PATTERN, DURATION_PATTERN, PERCENT_PATTERN, RATE_PATTERN, SIZE_PATTERN,
} from './units.ts';

type Schema = Record<string, unknown>;

const str = (pattern: string, expected: string, description: string): Schema => ({
  type: 'string', pattern, 'x-expected': expected, description,
});
const duration = (d: string) => str(DURATION_PATTERN, 'a duration like "358ms" or "40s"', d);
const size = (d: string) => str(SIZE_PATTERN, 'a size like "4GiB" or "512MB"', d);
const bandwidth = (d: string) => str(BANDWIDTH_PATTERN, 'a bandwidth like "1Gbit/s" or "200MB/s"', d);
const rate = (d: string) => str(RATE_PATTERN, 'a rate like "100/s"', d);
const percent = (d: string) => str(PERCENT_PATTERN, 'a percentage like "50%"', d);
const int = (minimum: number, maximum: number, d: string): Schema => ({
  type: 'integer', minimum, maximum, 'x-expected': `an integer from ${minimum} to ${maximum}`, description: d,
});
const num = (minimum: number, maximum: number, d: string): Schema => ({
  type: 'number', minimum, maximum, 'x-expected': `a number from ${minimum} to ${maximum}`, description: d,
});
const oneOfWords = (values: readonly string[], d: string): Schema => ({
  type: 'string', enum: values, 'x-expected': `one of ${values.join(', ')}`, description: d,
});
const obj = (properties: Record<string, Schema>, description: string, required: string[] = []): Schema => ({
  type: 'object', properties, required, additionalProperties: false, description,
  'x-expected': 'a mapping',
});
const list = (items: Schema, description: string): Schema => ({
  type: 'array', items, description, 'x-expected': 'a list',
});
const name = (d: string): Schema => ({
  type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*$', 'x-expected': 'a name of letters, digits, "_", "." and "-"', description: d,
});

/** A cost or latency: a duration, or a distribution. */
export const DIST_KINDS = ['fixed', 'uniform', 'exponential', 'normal', 'lognormal', 'mixture'] as const;
const dist = (description: string): Schema => ({
  $ref: '#/$defs/dist',
  description,
});

const budgets: Record<string, [string, 'duration' | 'count']> = {
  main_loop_block: ['longest time the main loop went without polling', 'duration'],
  bql_wait: ['longest wait for the BQL', 'duration'],
  bql_hold: ['longest BQL hold', 'duration'],
  vcpu_stall: ['longest vCPU stall (stopped or waiting for the BQL)', 'duration'],
  downtime: ['migration downtime (a migration that did not complete fails a max_ budget)', 'duration'],
  ping_rtt_p99: ['99th percentile ping round-trip time', 'duration'],
  ping_lost: ['pings without an answer within the timeout', 'count'],
  userspace_progress: ['guest userspace progress, in quanta', 'count'],
  userspace_gap: ['longest time without guest userspace progress', 'duration'],
  migration_time: ['total migration time (a migration that did not complete fails a max_ budget)', 'duration'],
  completion_attempts: ['migration completion attempts', 'count'],
  rollbacks: ['rollbacks from device back to active', 'count'],
};

function expectSchema(): Schema {
  const props: Record<string, Schema> = {};
  for (const [key, [what, kind]] of Object.entries(budgets)) {
    for (const bound of ['max', 'min'] as const) {
      const d = `${bound === 'max' ? 'at most' : 'at least'}: ${what}`;
      props[`${bound}_${key}`] = kind === 'duration' ? duration(d) : int(0, Number.MAX_SAFE_INTEGER, d);
    }
  }
  props.slow_handlers = list(name('handler name (or part of it)'), 'handlers that must be reported over the threshold');
  props.migration_status = oneOfWords(
    ['none', 'setup', 'active', 'device', 'completed', 'failed', 'cancelling', 'cancelled'],
    'MigrationStatus the run must end in',
  );
  return obj(props, 'budgets: a run passes (exit 0) only if all hold');
}

export const BUDGET_KINDS = budgets;

export function scenarioSchema(): Schema {
  const handler = obj({
    name: name('handler name, reported by the threshold reporter'),
    type: oneOfWords(['fd', 'aio-fd', 'bh', 'timer'], 'fd: an iohandler; aio-fd: in qemu_aio_context; bh; timer'),
    cost: dist('CPU time of one run'),
    rate: rate('activations per second (Poisson)'),
    interval: dist('time between activations (instead of rate)'),
    clock: oneOfWords(['realtime', 'virtual', 'host'], 'timer clock (QEMU_CLOCK_*)'),
    start: duration('first activation'),
  }, 'a synthetic main-loop handler', ['name', 'type', 'cost']);

  const workload = obj({
    vcpus: { oneOf: [list(int(0, 1023, 'vCPU index'), 'vCPU indices'), { const: 'all' }], description: 'vCPUs running this workload ("all" or indices)', 'x-expected': '"all" or a list of vCPU indices' },
    dirty: obj({
      rate: rate('pages written per second, per vCPU'),
      pattern: oneOfWords(['uniform', 'hotset', 'sequential', 'increment'], 'which pages get written'),
      start: size('start of the written range in guest memory'),
      size: size('length of the written range (default: all memory)'),
      hot_set: size('size of the hot set (hotset pattern)'),
      cold: percent('share of writes outside the hot set (hotset pattern)'),
    }, 'page dirtying', ['rate', 'pattern']),
    exits: obj({
      rate: rate('exits to userspace per second'),
      cost: dist('handler time under the BQL'),
      kind: oneOfWords(['pio', 'mmio'], 'exit kind'),
    }, 'PIO/MMIO exits that take the BQL', ['rate']),
  }, 'what vCPUs run', ['vcpus']);

  const peer = obj({
    ping_interval: duration('time between pings (0s: no ping)'),
    ping_timeout: duration('a reply later than this counts as lost'),
    wire_latency: duration('one-way latency between peer and tap'),
    background: rate('background packets per second to the guest'),
  }, 'the external peer on the tap');

  const net = obj({
    name: name('device id, e.g. net0'),
    vcpu: int(0, 1023, 'vCPU that takes the interrupts'),
    host_notifier_cost: dist('host-notifier read handler cost (the talk: 358ms)'),
    tx_bh_cost: dist('tx bottom half cost'),
    rx_cost: dist('receive path cost per packet'),
    tx_burst: int(1, 4096, 'packets per tx bottom half (tx_burst)'),
    peer,
  }, 'a virtio-net device with a tap backend', ['name']);

  const blk = obj({
    name: name('device id, e.g. disk0'),
    vcpu: int(0, 1023, 'vCPU that issues requests and takes interrupts'),
    queue_depth: int(1, 1024, 'requests in flight at the backend'),
    read: dist('read latency'),
    write: dist('write latency'),
    flush: dist('flush latency'),
    request_cost: dist('device handler cost per request'),
    on_error: oneOfWords(['report', 'stop'], 'werror/rerror: report to the guest, or stop the VM'),
    retry_interval: duration('how often a stalled backend still wakes aio_poll (NFS retries); 0s: never'),
    io: obj({
      rate: rate('guest requests per second'),
      pattern: oneOfWords(['random', 'sequential'], 'which blocks requests hit'),
      write_fraction: num(0, 1, 'share of writes'),
      flush_every: int(0, 1_000_000, 'a flush after this many writes (0: never)'),
      disk_size: size('disk size'),
      request_size: size('bytes per request'),
    }, 'the guest I/O workload'),
  }, 'a virtio-blk device and its block backend', ['name']);

  const fault = obj({
    name: name('fault name, used in attribution'),
    device: name('device id'),
    kind: oneOfWords(['stall', 'slow-flush', 'io-error', 'handler-cost'], 'what goes wrong'),
    at: duration('when it starts'),
    for: duration('how long it lasts'),
    latency: dist('slow-flush: flush latency; handler-cost: handler cost'),
    ops: list(oneOfWords(['read', 'write', 'flush'], 'operation'), 'io-error: failing operations'),
  }, 'a fault on a device', ['name', 'device', 'kind', 'at', 'for']);

  const policies = ['legacy', 'flush-timeout', 'min-interval', 'abort-on-downtime', 'auto-converge'];
  const migration = obj({
    start: duration('when migration starts'),
    policy: {
      oneOf: [oneOfWords(policies, 'policy'), list(oneOfWords(policies, 'policy'), 'policies')],
      'x-expected': `one of ${policies.join(', ')}, or a list of them`,
      description: 'completion policy',
    },
    mode: oneOfWords(['thread', 'main-loop'], 'migration thread (QEMU >= 1.3) or main-loop timer (2012)'),
    max_bandwidth: bandwidth('rate limit (QEMU default 128MiB/s; 32MiB/s in 2012)'),
    downtime_limit: duration('downtime-limit (QEMU default 300ms; 30ms in 2012)'),
    link: obj({
      bandwidth: bandwidth('link bandwidth'),
      latency: duration('one-way latency'),
    }, 'the link to the destination'),
    max_iterations: int(0, 1_000_000, 'complete after this many dirty syncs regardless (0: no cap)'),
    flush_timeout: duration('flush-timeout policy: give up the completion after this'),
    min_interval: duration('min-interval policy: no completion attempt this soon after a rollback'),
    abort_downtime: duration('abort-on-downtime policy: fail and resume the source past this downtime'),
    auto_converge: obj({
      initial: int(1, 99, 'cpu-throttle-initial'),
      increment: int(1, 99, 'cpu-throttle-increment'),
      max: int(1, 99, 'max-cpu-throttle'),
      trigger: int(1, 100, 'throttle-trigger-threshold (percent)'),
    }, 'auto-converge parameters'),
    device_state: size('device state sent during downtime'),
    page_header: size('bytes of header per page'),
    bug: oneOfWords(['none', 'sync-drops-new-bits', 'skip-final-flush'], 'planted fault, to check the checkers'),
  }, 'live migration');

  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: 'https://latsim.dev/latsim.schema.json',
    title: 'latsim scenario',
    description: 'A latsim scenario: a VM, its devices and guest workload, faults, migration and budgets.',
    type: 'object',
    additionalProperties: false,
    required: ['name', 'duration'],
    'x-expected': 'a mapping',
    $defs: {
      dist: {
        type: ['string', 'object'],
        pattern: DURATION_PATTERN,
        properties: {
          dist: oneOfWords(DIST_KINDS, 'distribution'),
          value: duration('fixed value'),
          min: duration('uniform: lowest'),
          max: duration('uniform: highest'),
          mean: duration('exponential/normal: mean'),
          stddev: duration('normal: standard deviation'),
          median: duration('lognormal: median'),
          sigma: num(0, 10, 'lognormal: sigma'),
          of: list(obj({ p: num(0, 1, 'probability'), value: { $ref: '#/$defs/dist' } }, 'a part of a mixture', ['p', 'value']), 'mixture parts'),
        },
        required: ['dist'],
        additionalProperties: false,
        'x-expected': 'a duration like "358ms" or a distribution like {dist: exponential, mean: 1ms}',
      },
    },
    properties: {
      name: name('scenario name'),
      description: { type: 'string', description: 'what the scenario shows' },
      seed: int(0, 2 ** 31 - 1, 'the seed of every random stream'),
      duration: duration('simulated time to run'),
      threshold: duration('threshold reporter: report handlers slower than this (default 100ms)'),
      limits: obj({
        max_events: int(1, 1e12, 'liveness bound on events'),
        max_time: duration('liveness bound on simulated time'),
      }, 'hard bounds; crossing one is a liveness failure (exit 3)'),
      vm: obj({
        memory: size('guest RAM'),
        page_size: size('target page size (a power of two, default 4KiB)'),
        vcpus: int(1, 1024, 'vCPU count'),
        run_state: oneOfWords(['running', 'paused', 'prelaunch'], 'initial run state'),
        populated: percent('share of guest memory holding data at start; the rest are zero pages (default 100%)'),
      }, 'the virtual machine'),
      main_loop: obj({ handlers: list(handler, 'synthetic handlers') }, 'synthetic main-loop work'),
      guest: obj({
        workloads: list(workload, 'workloads'),
        userspace: obj({
          quantum: duration('uninterrupted run time guest userspace needs for one unit of progress'),
          tolerance: duration('stalls up to this do not interrupt a run'),
        }, 'guest userspace'),
        slice: duration('model granularity of guest execution'),
        ping_reply_cost: duration('guest kernel time to answer a ping'),
      }, 'the guest'),
      devices: obj({ net: list(net, 'virtio-net devices'), blk: list(blk, 'virtio-blk devices') }, 'devices'),
      faults: list(fault, 'the fault schedule'),
      migration,
      expect: expectSchema(),
      fingerprint: {
        type: 'string', pattern: '^[0-9a-f]{64}$', 'x-expected': 'a SHA-256 in hex',
        description: 'recorded trace fingerprint (latsim run --update-fingerprint)',
      },
    },
  };
}
