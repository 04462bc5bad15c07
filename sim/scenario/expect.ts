// The `expect` section: the budgets a run must hold to pass (exit 0), each a
// max_ or min_ bound on one of the run's figures; the handlers that must show
// up over the threshold; and the MigrationStatus the run must end in.
import type { Fields, Raw } from './fields.ts';
import { BOUND_LIMIT } from './limits.ts';
import { duration, int, list, name, obj, oneOfWords, type Schema } from './schema-kit.ts';

export type BudgetKey =
  | 'main_loop_block'
  | 'iothread_block'
  | 'bql_wait'
  | 'bql_hold'
  | 'vcpu_stall'
  | 'downtime'
  | 'ping_rtt_p99'
  | 'ping_lost'
  | 'userspace_progress'
  | 'userspace_gap'
  | 'migration_time'
  | 'completion_attempts'
  | 'rollbacks'
  | 'multifd_sync_wait'
  | 'postcopy_faults'
  | 'postcopy_fault_p99'
  | 'postcopy_fault_max'
  | 'postcopy_stall'
  | 'postcopy_recovered'
  | 'sync_bql_hold';

export interface Budget {
  /** The name as written: max_downtime, min_main_loop_block, ... */
  readonly name: string;
  readonly key: BudgetKey;
  readonly bound: 'max' | 'min';
  readonly limit: number;
  /** Unit of limit and value: ns, count. */
  readonly unit: 'ns' | 'count';
}

/** Each budget: what it bounds, and whether its limit is a duration or a count. */
export const BUDGET_KINDS: Record<BudgetKey, [string, 'duration' | 'count']> = {
  main_loop_block: ['longest time the main loop went without polling', 'duration'],
  iothread_block: ['longest time an IOThread went without polling (any IOThread)', 'duration'],
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
  multifd_sync_wait: ['longest wait of the migration thread for the multifd channels in multifd_send_sync_main', 'duration'],
  postcopy_faults: ['guest accesses that waited for a page on the postcopy destination', 'count'],
  postcopy_fault_p99: ['99th percentile postcopy fault latency (fault to the page placed)', 'duration'],
  postcopy_fault_max: ['longest postcopy fault latency', 'duration'],
  postcopy_stall: ['the guest\'s total stall on the destination waiting for pages (all vCPUs)', 'duration'],
  postcopy_recovered: ['recoveries from postcopy-paused (migrate-recover)', 'count'],
  sync_bql_hold: ['longest the BQL is held without a break by a dirty bitmap sync (migration_bitmap_sync with KVM_GET_DIRTY_LOG, or the dirty ring\'s reap)', 'duration'],
};

export const MIGRATION_STATUSES = [
  'none', 'setup', 'active', 'device', 'postcopy-active', 'postcopy-paused', 'postcopy-recover', 'completed', 'failed',
  'cancelling', 'cancelled',
] as const;

/** Handler names `slow_handlers` may list at most. */
const SLOW_HANDLERS_MAX = 256;

const NEEDS_MIGRATION: readonly BudgetKey[] = ['downtime', 'migration_time', 'completion_attempts', 'rollbacks', 'multifd_sync_wait', 'sync_bql_hold'];
const NEEDS_NET: readonly BudgetKey[] = ['ping_rtt_p99', 'ping_lost'];
const NEEDS_POSTCOPY: readonly BudgetKey[] = ['postcopy_faults', 'postcopy_fault_p99', 'postcopy_fault_max', 'postcopy_stall', 'postcopy_recovered'];
const NEEDS_IOTHREAD: readonly BudgetKey[] = ['iothread_block'];

export function expectSchema(): Schema {
  const props: Record<string, Schema> = {};
  for (const [key, [what, kind]] of Object.entries(BUDGET_KINDS)) {
    for (const bound of ['max', 'min'] as const) {
      const d = `${bound === 'max' ? 'at most' : 'at least'}: ${what}`;
      props[`${bound}_${key}`] = kind === 'duration' ? duration(d, BOUND_LIMIT) : int(0, Number.MAX_SAFE_INTEGER, d);
    }
  }
  props.slow_handlers = list(name('handler name (or part of it)'), 'handlers that must be reported over the threshold', SLOW_HANDLERS_MAX, 'handler names');
  props.migration_status = oneOfWords(MIGRATION_STATUSES, 'MigrationStatus the run must end in');
  return obj(props, 'budgets: a run passes (exit 0) only if all hold; a min_ above its max_ can never hold');
}

export interface ExpectSpec {
  readonly budgets: Budget[];
  readonly slow: readonly string[];
  readonly migration_status: string | null;
}

export function checkExpect(e: Raw, has: { migration: boolean; multifd: boolean; net: boolean; postcopy: boolean; iothreads?: boolean }, f: Fields): ExpectSpec {
  const budgets: Budget[] = [];
  for (const [k, v] of Object.entries(e)) {
    if (k === 'slow_handlers' || k === 'migration_status') continue;
    const bound = k.startsWith('max_') ? 'max' : 'min';
    const key = k.slice(4) as BudgetKey;
    const kind = BUDGET_KINDS[key][1];
    if (NEEDS_MIGRATION.includes(key) && !has.migration) f.fail(['expect', k], `${k} needs a migration section`, true);
    if (NEEDS_NET.includes(key) && !has.net) f.fail(['expect', k], `${k} needs a virtio-net device`, true);
    if (key === 'multifd_sync_wait' && has.migration && !has.multifd) f.fail(['expect', k], `${k} needs migration.multifd`, true);
    if (NEEDS_POSTCOPY.includes(key) && !has.postcopy) f.fail(['expect', k], `${k} needs migration.postcopy`, true);
    if (NEEDS_IOTHREAD.includes(key) && !has.iothreads) f.fail(['expect', k], `${k} needs an IOThread (iothreads)`, true);
    budgets.push({
      name: k, key, bound,
      limit: kind === 'duration' ? f.duration(['expect', k], v, 0, BOUND_LIMIT) : (v as number),
      unit: kind === 'duration' ? 'ns' : 'count',
    });
  }
  for (const lo of budgets) {
    const hi = budgets.find((b) => b.bound === 'max' && b.key === lo.key);
    if (lo.bound === 'min' && hi && lo.limit > hi.limit) {
      f.fail(['expect', lo.name], `${lo.name} ${String(e[lo.name])} is above ${hi.name} ${String(e[hi.name])}: no run can hold both`, true);
    }
  }
  if (e.migration_status !== undefined && !has.migration) f.fail(['expect', 'migration_status'], 'needs a migration section', true);
  return {
    budgets,
    slow: (e.slow_handlers as string[] | undefined) ?? [],
    migration_status: (e.migration_status as string | undefined) ?? null,
  };
}
