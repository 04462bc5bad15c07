// Live migration: the statechart's transitions as trace and MIGRATION events,
// the destination check (a planted lost write is caught), the policies
// (flush timeout rolls back, min-interval holds off, abort-on-downtime fails
// and resumes the source, auto-converge throttles), and query-migrate.
import { describe, expect, it } from 'vitest';
import { createActor } from 'xstate';
import { simulate } from '../../../sim/run.ts';
import { migrationMachine, statusOf } from '../../../sim/migration/statechart.ts';
import { Scheduler } from '../../../sim/scheduler/index.ts';
import { scenario, S } from '../helpers.ts';

const stalled = (policy: string, extra = '') => scenario(`
name: mig
seed: 4
duration: 60s
vm: { memory: 128MiB, vcpus: 1 }
guest:
  workloads: [ { vcpus: all, dirty: { rate: 500/s, pattern: hotset, hot_set: 8MiB } } ]
devices:
  blk:
    - { name: disk0, flush: 1ms, io: { rate: 50/s, write_fraction: 0.7, flush_every: 4 } }
faults:
  - { name: nfs, device: disk0, kind: slow-flush, at: 1s, for: 10s, latency: 20s }
migration:
  start: 2s
  policy: ${policy}
  flush_timeout: 500ms
  min_interval: 3s
  abort_downtime: 2s
${extra}
`);

describe('migration statechart', () => {
  it('rolls back from device to active on a completion timeout, and holds off with min-interval in simulated time', () => {
    const s = new Scheduler({ seed: 1 });
    const actor = createActor(migrationMachine, { input: { rollback: true, minIntervalMs: 5000, deviceStatus: 'at-completion' }, clock: s.clock });
    actor.start();
    for (const type of ['START', 'SETUP_DONE', 'CONVERGED', 'COMPLETION_TIMEOUT'] as const) actor.send({ type });
    expect(actor.getSnapshot().value).toEqual({ active: 'holding_off' });
    actor.send({ type: 'CONVERGED' });
    expect(statusOf(actor.getSnapshot())).toBe('active');
    s.run(4_999_999_999);
    expect(actor.getSnapshot().value).toEqual({ active: 'holding_off' });
    s.run(5 * S);
    expect(actor.getSnapshot().value).toEqual({ active: 'may_complete' });
    actor.send({ type: 'CONVERGED' });
    actor.send({ type: 'COMPLETED' });
    expect(statusOf(actor.getSnapshot())).toBe('completed');
    expect(actor.getSnapshot().context).toMatchObject({ rollbacks: 1, attempts: 2 });
  });

  it('fails on a completion timeout when rollback is off', () => {
    const actor = createActor(migrationMachine, { input: { rollback: false, minIntervalMs: 0, deviceStatus: 'at-completion' } });
    actor.start();
    for (const type of ['START', 'SETUP_DONE', 'CONVERGED', 'COMPLETION_TIMEOUT'] as const) actor.send({ type });
    expect(statusOf(actor.getSnapshot())).toBe('failed');
  });
});

describe('migration', () => {
  it('emits every transition as migrate_set_state and MIGRATION, and verifies the destination', () => {
    const { result, world } = simulate(stalled('legacy'));
    const m = result.migration!;
    expect(m.status).toBe('completed');
    expect(m.verified).toBe(true);
    // QEMU 9.2 without pause-before-switchover completes from active.
    expect(m.transitions.map((t) => t.to)).toEqual(['setup', 'active', 'completed']);
    const names = world.machine.trace;
    expect(names.length).toBeGreaterThan(0);
    expect(m.downtime).toBeGreaterThan(15_000);
    expect(m.downtime_phases!.drain + m.downtime_phases!.flush).toBeGreaterThan(15_000);
    for (const k of ['transferred', 'remaining', 'total', 'duplicate', 'normal', 'dirty-pages-rate', 'mbps', 'dirty-sync-count']) {
      expect(m.ram).toHaveProperty(k);
    }
    expect(m.snapshots.length).toBeGreaterThan(5);
    expect(m.snapshots[0]).toHaveProperty('expected-downtime');
  });

  it('rolls back on the flush timeout and keeps the downtime of each attempt near it', () => {
    const { result } = simulate(stalled('flush-timeout'));
    const m = result.migration!;
    expect(m.rollbacks).toBeGreaterThan(3);
    for (const a of m.attempts.filter((x) => x.outcome === 'rollback')) {
      expect(a.downtime_ns).toBeGreaterThanOrEqual(500e6);
      expect(a.downtime_ns).toBeLessThan(600e6);
    }
    expect(m.status).toBe('completed');
  });

  it('holds off the next attempt for min-interval after a rollback', () => {
    const { result } = simulate(stalled('[flush-timeout, min-interval]'));
    const at = result.migration!.attempts.map((a) => a.at_ns);
    for (let i = 1; i < at.length; i++) expect(at[i]! - at[i - 1]!).toBeGreaterThanOrEqual(3 * S);
  });

  it('fails the migration past the downtime limit and resumes the source (abort-on-downtime)', () => {
    const { result, world } = simulate(stalled('abort-on-downtime'));
    const m = result.migration!;
    expect(m.status).toBe('failed');
    expect(m.fail_reason).toMatch(/downtime limit exceeded/);
    expect(world.machine.runstate.running).toBe(true);
    expect(m.attempts[0]!.downtime_ns).toBeLessThan(2.1 * S);
  });

  it('catches a planted lost write: the final flush skipped', () => {
    const s = scenario(`
name: lost-write
seed: 4
duration: 10s
vm: { memory: 64MiB, vcpus: 1 }
devices:
  blk:
    - { name: disk0, io: { rate: 200/s, write_fraction: 1, flush_every: 0 } }
migration: { start: 1s, bug: skip-final-flush }
`);
    expect(simulate({ ...s, migration: { ...s.migration!, bug: 'none' } }).result.migration!.verified).toBe(true);
    const { result } = simulate(s);
    expect(result.outcome).toBe('invariant');
    expect(result.error).toMatch(/lost-write\): disk0 sector \d+: the guest saw write version \d+ acknowledged/);
  });

  it('throttles the vCPUs step by step with auto-converge', () => {
    const s = scenario(`
name: ac
seed: 8
duration: 40s
vm: { memory: 256MiB, vcpus: 2 }
guest: { workloads: [ { vcpus: all, dirty: { rate: 20000/s, pattern: uniform } } ] }
migration: { start: 1s, policy: auto-converge, max_bandwidth: 64MiB/s }
`);
    const { result, world } = simulate(s);
    expect(result.migration!.cpu_throttle_percentage).toBeGreaterThanOrEqual(20);
    expect(result.migration!.status).toBe('completed');
    expect(result.migration!.throttle_steps.map((t) => t.pct)).toEqual([20, 30, 40, 50, 60, 70, 80, 90, 99].slice(0, result.migration!.throttle_steps.length));
    // QEMU: cpu_throttle_stop when the migration ends: the guest runs unthrottled again.
    expect(world.guest.code[0]!.throttlePct).toBe(0);
    expect(result.handlers.some((h) => h.name === 'cpu_throttle_thread')).toBe(true);
  });
});
